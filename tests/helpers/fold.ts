/**
 * The reference runner: folds stored events through the domain logics exactly as the runtime
 * (engine/partition_worker.ts) does, without a log, a database or wall time.
 *
 * - Every input is appended to its topic's partition (`events` by userId; `inventory_updated` to
 *   `product-events` by productId), keys placed by Kafka's partitioner unless `partitionOf` says
 *   otherwise, and gets the next offset of that partition.
 * - Each partition has its own clock, the largest event time it has seen. Before a message is
 *   handled, its key's timers due at that clock fire, earliest first (ties by name), with `ctx.now()` = deadline;
 *   after it, every due timer of the partition fires (the runtime does that at the end of each
 *   batch; this is the batch-of-one schedule).
 * - Output ids are the runtime's: `<topic>-<partition>-<offset>-<rule>` for messages and
 *   `timer-<kind>-<key>-<name>-<deadline>-<rule>` for timers.
 * - Facts emitted to `productEvents` and `analytics` are appended to those topics (analytics has
 *   one partition) and consumed at once, before the next input: a zero-lag schedule. Alerts and
 *   recommendations are collected.
 * - `until` finally advances every partition's clock to that time (as the idle clock does), firing
 *   what comes due, until nothing more does.
 * - `roundTrip` passes every state through persist → JSON → restore after each step, as a
 *   checkpoint and reactivation would, or ("packed") through the packing of idle actors.
 */
import type { ActorContext, AnyActorLogic, OutputTopic } from "../../engine/actor.ts";
import { ValidationError } from "../../engine/errors.ts";
import type { LogRecord } from "../../engine/log.ts";
import { MAX_FIRINGS_PER_KEY } from "../../engine/partition_worker.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { StatePacker } from "../../engine/state_packer.ts";
import { firesBefore } from "../../engine/timer_table.ts";
import type { Alert } from "../../actors/alerts.ts";
import { createDomainLogics, type DomainLogics } from "../../actors/domain.ts";
import type { GlobalState } from "../../actors/global.ts";
import type { ProductState } from "../../actors/product_state.ts";
import type { Recommendation } from "../../actors/recommendations.ts";
import type { DomainSettings } from "../../actors/settings.ts";
import type { UserState } from "../../actors/user_state.ts";
import { parseJson } from "../../engine/json_parse.ts";

/** The topics the fold models. */
export type FoldTopic = "events" | "product-events" | "analytics";

/** How a fold runs. */
export interface FoldOptions {
  readonly settings?: DomainSettings;
  readonly logics?: DomainLogics;
  /** Partitions of `events` (default 12). */
  readonly partitions?: number;
  /** Partitions of `product-events` (default: as `events`). */
  readonly productPartitions?: number;
  /** Overrides Kafka's partitioner, to try other groupings of keys. */
  readonly partitionOf?: (topic: FoldTopic, key: string, partitions: number) => number;
  /** Finally advance every partition clock to this time (epoch ms). */
  readonly until?: number;
  /** true: persist → JSON → restore after each step; "packed": persist → pack → unpack → restore (engine/state_packer.ts). */
  readonly roundTrip?: boolean | "packed";
}

/** A message emitted to a topic, with its value as JSON. */
export interface FoldOutput<T = unknown> {
  readonly topic: OutputTopic;
  readonly key: string;
  readonly value: T;
}

/** A record that could not be decoded. */
export interface FoldDeadLetter {
  readonly topic: FoldTopic;
  readonly key: string;
  readonly error: ValidationError;
}

/** Final states and everything emitted. */
export interface FoldResult {
  readonly users: Map<string, UserState>;
  readonly products: Map<string, ProductState>;
  readonly global: GlobalState | undefined;
  readonly alerts: Alert[];
  readonly recommendations: Recommendation[];
  /** Every output in emission order, facts included. */
  readonly outputs: FoldOutput[];
  readonly deadLetters: FoldDeadLetter[];
  readonly logics: DomainLogics;
  /** The persisted form of an actor's final state, as a checkpoint holds it. */
  persisted(kind: "user" | "product" | "global", key: string): unknown;
}

const encoder = new TextEncoder();

interface Partition {
  readonly topic: FoldTopic;
  readonly index: number;
  readonly logic: AnyActorLogic;
  next: number;
  clock: number;
  readonly timers: Map<string, Map<string, number>>;
  /** No timer of the partition is due before this (a lower bound: cancelling does not raise it). */
  earliest: number;
  readonly states: Map<string, unknown>;
}

interface Delivery {
  readonly topic: FoldTopic;
  readonly key: string;
  readonly value: string;
}

/** Folds `events` (stored events, or any JSON to exercise decoding) through the domain logics. */
export async function fold(events: readonly unknown[], options: FoldOptions = {}): Promise<FoldResult> {
  const logics = options.logics ?? createDomainLogics(options.settings);
  const counts: Record<FoldTopic, number> = {
    events: options.partitions ?? 12,
    "product-events": options.productPartitions ?? options.partitions ?? 12,
    analytics: 1,
  };
  const logicOf: Record<FoldTopic, AnyActorLogic> = {
    events: logics.user,
    "product-events": logics.product,
    analytics: logics.global,
  };
  const partitions = new Map<string, Partition>();
  const partition = (topic: FoldTopic, key: string): Partition => {
    const index = topic === "analytics"
      ? 0
      : (options.partitionOf ?? ((_, k, n) => partitionForKey(k, n)))(topic, key, counts[topic]);
    const id = `${topic}:${index}`;
    let p = partitions.get(id);
    if (!p) {
      p = {
        topic,
        index,
        logic: logicOf[topic],
        next: 0,
        clock: 0,
        timers: new Map(),
        earliest: Infinity,
        states: new Map(),
      };
      partitions.set(id, p);
    }
    return p;
  };

  const outputs: FoldOutput[] = [];
  const deadLetters: FoldDeadLetter[] = [];
  const queue: Delivery[] = [];

  const packer = options.roundTrip === "packed" ? new StatePacker() : undefined;
  const settle = (p: Partition, key: string, state: unknown): void => {
    const logic = p.logic;
    if (!options.roundTrip) p.states.set(key, state);
    else if (packer) p.states.set(key, logic.restore(packer.unpack(packer.pack(logic.persist(state)))));
    else p.states.set(key, logic.restore(parseJson(JSON.stringify(logic.persist(state)))));
  };

  const context = (p: Partition, key: string, now: number, id: (rule: string) => string): ActorContext => ({
    now: () => now,
    emit: (topic, outKey, value) => {
      const json = JSON.stringify(value);
      outputs.push({ topic, key: outKey, value: parseJson(json) });
      if (topic === "productEvents") queue.push({ topic: "product-events", key: outKey, value: json });
      if (topic === "analytics") queue.push({ topic: "analytics", key: outKey, value: json });
    },
    outputId: id,
    setTimer: (name, at) => {
      const timers = p.timers.get(key) ?? new Map<string, number>();
      timers.set(name, at);
      p.timers.set(key, timers);
      p.earliest = Math.min(p.earliest, at);
    },
    cancelTimer: (name) => {
      const timers = p.timers.get(key);
      if (timers?.delete(name) && timers.size === 0) p.timers.delete(key);
    },
    timer: (name) => p.timers.get(key)?.get(name),
  });

  const fireKey = async (p: Partition, key: string, clock: number): Promise<boolean> => {
    let fired = false;
    for (let n = 0; n < MAX_FIRINGS_PER_KEY; n++) {
      const timers = p.timers.get(key);
      if (!timers) return fired;
      let due: [string, number] | undefined;
      for (const entry of timers) if (entry[1] < clock && (!due || firesBefore(entry, due))) due = entry;
      if (!due) return fired;
      const [name, at] = due;
      timers.delete(name);
      if (timers.size === 0) p.timers.delete(key);
      fired = true;
      if (!p.logic.onTimer) continue;
      const state = p.states.get(key) ?? p.logic.initial(key);
      const ctx = context(p, key, at, (rule) => `timer-${p.logic.kind}-${key}-${name}-${at}-${rule}`);
      settle(p, key, await p.logic.onTimer(state, name, ctx));
    }
    return fired;
  };

  const fireAll = async (p: Partition, clock: number): Promise<boolean> => {
    // Scanning every key's timers on every delivery made the fold quadratic in keys with timers.
    if (p.earliest >= clock) return false;
    const due = [...p.timers]
      .map(([key, timers]) => [key, Math.min(...timers.values())] as const)
      .filter(([, at]) => at < clock)
      .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    let fired = false;
    for (const [key] of due) fired = (await fireKey(p, key, clock)) || fired;
    p.earliest = Infinity;
    for (const timers of p.timers.values()) for (const at of timers.values()) p.earliest = Math.min(p.earliest, at);
    return fired;
  };

  const deliver = async ({ topic, key, value }: Delivery): Promise<void> => {
    const p = partition(topic, key);
    const offset = p.next++;
    const record: LogRecord = {
      topic,
      partition: p.index,
      offset,
      key,
      value: encoder.encode(value),
      headers: {},
      timestamp: 0,
    };
    let message: unknown;
    try {
      message = p.logic.decode(record);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      deadLetters.push({ topic, key, error });
      return;
    }
    p.clock = Math.max(p.clock, p.logic.eventTime(message) || 0);
    await fireKey(p, key, p.clock);
    const state = p.states.get(key) ?? p.logic.initial(key);
    const ctx = context(p, key, p.clock, (rule) => `${topic}-${p.index}-${offset}-${rule}`);
    settle(p, key, await p.logic.handle(state, message, ctx));
    await fireAll(p, p.clock);
  };

  const drain = async (): Promise<void> => {
    while (queue.length > 0) await deliver(queue.shift()!);
  };

  for (const event of events) {
    queue.push(inputDelivery(event));
    await drain();
  }

  if (options.until !== undefined) {
    const order: FoldTopic[] = ["events", "product-events", "analytics"];
    for (let pass = 0; pass < 100; pass++) {
      let fired = false;
      for (const topic of order) {
        for (const p of [...partitions.values()].filter((x) => x.topic === topic)) {
          p.clock = Math.max(p.clock, options.until);
          fired = (await fireAll(p, p.clock)) || fired;
          await drain();
        }
      }
      if (!fired) break;
    }
  }

  const statesOf = <S>(topic: FoldTopic): Map<string, S> => {
    const all = new Map<string, S>();
    for (const p of partitions.values()) if (p.topic === topic) { for (const [k, s] of p.states) all.set(k, s as S); }
    return all;
  };
  const users = statesOf<UserState>("events");
  const products = statesOf<ProductState>("product-events");
  const global = statesOf<GlobalState>("analytics").get("global");
  return {
    users,
    products,
    global,
    alerts: outputs.filter((o) => o.topic === "alerts").map((o) => o.value as Alert),
    recommendations: outputs.filter((o) => o.topic === "recommendations").map((o) => o.value as Recommendation),
    outputs,
    deadLetters,
    logics,
    persisted(kind, key) {
      const state = kind === "user" ? users.get(key) : kind === "product" ? products.get(key) : global;
      if (state === undefined) return undefined;
      return parseJson(JSON.stringify(logics[kind].persist(state as never)));
    },
  };
}

/** Where an input goes: inventory updates to product-events by productId, the rest to events by userId. */
function inputDelivery(event: unknown): Delivery {
  const e = event as { type?: string; userId?: string; properties?: { productId?: string } };
  const value = JSON.stringify(event);
  if (e.type === "inventory_updated") return { topic: "product-events", key: e.properties?.productId ?? "", value };
  return { topic: "events", key: e.userId ?? "", value };
}

/** Builds stored events for tests: sequential eventIds, times relative to `t0`. */
export class EventBuilder {
  #n = 0;
  constructor(readonly t0: number = Date.UTC(2026, 0, 5, 10, 0, 0)) {}

  /** `t0` plus `seconds`. */
  time(seconds: number): number {
    return this.t0 + seconds * 1000;
  }

  /** A stored event of `type` for `userId` at `t0 + seconds`. */
  event(
    type: string,
    userId: string,
    seconds: number,
    properties: Record<string, unknown> = {},
    extra: Record<string, unknown> = {},
  ): Record<string, unknown> {
    const at = new Date(this.time(seconds)).toISOString();
    const eventId = `00000000-0000-4000-8000-${(++this.#n).toString(16).padStart(12, "0")}`;
    return { eventId, type, userId, occurredAt: at, receivedAt: at, properties, ...extra };
  }

  /** An `inventory_updated` for `productId` at `t0 + seconds`. */
  inventory(productId: string, stock: number, seconds: number): Record<string, unknown> {
    const { userId: _, ...event } = this.event("inventory_updated", "", seconds, { productId, stock });
    return event;
  }
}
