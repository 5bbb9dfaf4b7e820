/** A runtime on the in-memory log and checkpoint store, for unit tests. */
import type { ActorContext, ActorLogic, AnyActorLogic } from "../../engine/actor.ts";
import assert from "node:assert/strict";
import type { CheckpointWrite, Claim, CommitResult, StoredActor } from "../../engine/checkpoint.ts";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import { topicNames } from "../../engine/config.ts";
import { ValidationError } from "../../engine/errors.ts";
import type { Instrumentation } from "../../engine/instrumentation.ts";
import { silentLogger } from "../../engine/logger.ts";
import type { TopicPartition } from "../../engine/log.ts";
import { type MemoryConsumer, MemoryLog } from "../../engine/memory_log.ts";
import { ActorRuntime } from "../../engine/runtime.ts";

/** State of the recorder actor: every value it handled, in order. */
export interface Recorded {
  readonly key: string;
  readonly values: readonly number[];
}

/** Message of the recorder actor. */
export interface RecorderMessage {
  readonly n: number;
  readonly at: number;
}

/** A test actor that records the `n` of every message; `hooks.handle` may await or throw. */
export function recorderLogic(
  hooks: { handle?: (key: string, message: RecorderMessage) => Promise<void> | void } = {},
): ActorLogic<Recorded, RecorderMessage> {
  return {
    kind: "recorder",
    initial: (key) => ({ key, values: [] }),
    decode: (record) => {
      const value = JSON.parse(new TextDecoder().decode(record.value!));
      if (typeof value.n !== "number") throw new ValidationError("n must be a number");
      return { n: value.n, at: value.at ?? 0 };
    },
    eventTime: (m) => m.at,
    handle: async (state, message) => {
      await hooks.handle?.(state.key, message);
      return { ...state, values: [...state.values, message.n] };
    },
    persist: (state) => state,
    restore: (data) => data as Recorded,
  };
}

/** Emits the alert a test actor raises: its id from `ctx`, the actor as its subject, `ctx.now()` as its time. */
export function emitTestAlert(
  ctx: ActorContext,
  kind: string,
  key: string,
  details: Record<string, unknown> = {},
): void {
  ctx.emit("alerts", key, {
    alertId: ctx.outputId(kind),
    type: kind,
    severity: "info",
    subject: { kind, id: key },
    occurredAt: new Date(ctx.now()).toISOString(),
    details,
  });
}

/** Each alert carries the running total: a payload that depends on the state it was computed from. */
export const totalsLogic: ActorLogic<{ key: string; total: number }, { n: number }> = {
  kind: "totals",
  initial: (key) => ({ key, total: 0 }),
  decode: (record) => JSON.parse(new TextDecoder().decode(record.value!)),
  eventTime: () => 0,
  handle: (state, message, ctx) => {
    const total = state.total + message.n;
    emitTestAlert(ctx, "totals", state.key, { n: message.n, total });
    return { ...state, total };
  },
  persist: (state) => state,
  restore: (data) => data as { key: string; total: number },
};

/** An engine-shaped harness: log, store, runtime and consumer, restartable over the same log and store. */
export class Harness {
  readonly topics = topicNames({ TOPIC_PREFIX: "" });
  readonly log: MemoryLog;
  readonly store: MemoryCheckpointStore;
  runtime!: ActorRuntime;
  consumer!: MemoryConsumer;

  /** Receives the runtime's instrumentation events, when set before `start`. */
  instrumentation: Instrumentation | undefined;
  /** Simulated wall clock (epoch ms), advanced by tests. */
  wall = Date.UTC(2026, 0, 1);

  constructor(
    readonly logic: AnyActorLogic,
    readonly partitions = 3,
    readonly checkpointMaxMessages = 1_000,
    readonly options: {
      maxActors?: number;
      actorIdleMs?: number;
      actorPackMs?: number;
      stateTtlMs?: number;
      alertRetentionMs?: number;
      idleClockMs?: number;
      /** Period of the runtime's own housekeeping (50 ms unless set); tests may drive it with `housekeep()`. */
      checkpointIntervalMs?: number;
      /** A store with other behaviour (e.g. the key order of PostgreSQL's jsonb), or another harness's. */
      store?: MemoryCheckpointStore;
      /** Another harness's log: a second instance beside the first. */
      log?: MemoryLog;
    } = {},
  ) {
    this.store = options.store ?? new MemoryCheckpointStore(() => this.wall);
    this.log = options.log ?? new MemoryLog(() => this.wall);
  }

  async start(owner = "test-instance"): Promise<void> {
    await this.log.ensureTopics(Object.values(this.topics).map((topic) => ({ topic, partitions: this.partitions })));
    this.consumer = this.log.consumer({ maxBatch: 50 });
    const { log: _log, ...options } = this.options;
    this.runtime = new ActorRuntime({
      store: this.store,
      producer: this.log.producer(),
      consumer: this.consumer,
      topics: this.topics,
      groupId: "group",
      owner,
      logger: silentLogger,
      logics: new Map([[this.topics.events, this.logic]]),
      partitionCounts: new Map([[this.topics.events, this.partitions]]),
      checkpointIntervalMs: 50,
      checkpointMaxMessages: this.checkpointMaxMessages,
      retryBackoffMs: { initial: 5, max: 20 },
      wallClock: () => this.wall,
      instrumentation: this.instrumentation,
      ...options,
    });
    this.runtime.start();
    await this.consumer.start([this.topics.events], this.runtime);
  }

  /** Graceful stop: final checkpoints. */
  async stop(): Promise<void> {
    await this.runtime.stopClaiming();
    await this.consumer.stop();
    await this.runtime.stop();
  }

  /** Abrupt stop: memory is lost, nothing more is checkpointed. */
  async crash(): Promise<void> {
    this.store.failWith = new Error("crashed");
    await this.consumer.stop();
    await this.runtime.stop();
    this.store.failWith = null;
  }

  send(key: string, value: unknown): void {
    this.log.appendNow([{ topic: this.topics.events, key, value: JSON.stringify(value) }]);
  }

  /** Waits until every partition's checkpoint reaches the end of the log. */
  async drained(timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const behind = this.log.topicPartitions([this.topics.events]).some((tp) => {
        const row = this.store.partitions.get(`group/${tp.topic}:${tp.partition}`);
        return (row?.nextOffset ?? 0) < this.log.endOffset(tp);
      });
      if (!behind) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error("checkpoints did not reach the end of the log in time");
  }

  async stored(key: string): Promise<Recorded | undefined> {
    return (await this.store.read("recorder", key))?.state as Recorded | undefined;
  }
}

/** Polls `condition` every 10 ms; fails with `what` after 5 s. */
export async function until(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 10) {
    assert.ok(waited < 5_000, what);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A memory store that counts, by method, the calls it refused while `failWith` was set: a test lifts an outage only
 * once the runtime has met it.
 */
export class OutageStore extends MemoryCheckpointStore {
  readonly #refused = new Map<string, number>();

  /** Calls refused so far (of `method` only, if given). */
  refused(method?: string): number {
    if (method !== undefined) return this.#refused.get(method) ?? 0;
    return [...this.#refused.values()].reduce((a, b) => a + b, 0);
  }

  #note(method: string): void {
    if (this.failWith) this.#refused.set(method, (this.#refused.get(method) ?? 0) + 1);
  }

  override claim(tp: TopicPartition, groupId: string, owner: string): Promise<Claim> {
    this.#note("claim");
    return super.claim(tp, groupId, owner);
  }

  override load(kind: string, keys: readonly string[]): Promise<Map<string, StoredActor>> {
    this.#note("load");
    return super.load(kind, keys);
  }

  override loadTimers(
    kind: string,
    partition?: number,
    partitions?: number,
  ): Promise<Map<string, Record<string, number>>> {
    this.#note("loadTimers");
    return super.loadTimers(kind, partition, partitions);
  }

  override commit(write: CheckpointWrite): Promise<CommitResult> {
    this.#note("commit");
    return super.commit(write);
  }

  override stored(tp: TopicPartition, groupId: string): Promise<Claim | null> {
    this.#note("stored");
    return super.stored(tp, groupId);
  }

  override settled(tp: TopicPartition, groupId: string): Promise<Claim | null> {
    this.#note("settled");
    return super.settled(tp, groupId);
  }
}
