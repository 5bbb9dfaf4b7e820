/**
 * The exactly-once proof's load, its writers and restarts, and `verify`: shared by tests/integration/exactly_once_test.ts
 * and tests/integration/upgrade_drill_test.ts (an older release's engine replaced by this one on the same deployment).
 */
import { expandBundle, isBundle } from "../../engine/fact_bundle.ts";
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { createDomainLogics } from "../../actors/domain.ts";
import type { AnyActorLogic } from "../../engine/actor.ts";
import type { LogRecord } from "../../engine/log.ts";
import { uuidv7 } from "../../engine/uuid.ts";
import type { EngineProcess } from "./engine_process.ts";
import type { Deployment, LogName, LogView } from "./modes.ts";
import { replayPartition } from "./replay.ts";
import { eventually, FAILOVER_SESSION } from "./services.ts";
import { parseJson } from "../../engine/json_parse.ts";
import { wholeState } from "../../sql/checkpoints.ts";

const PARTITIONS = 6;
/** events and product-events have PARTITIONS partitions, the analytics feed one. */
export const CONSUMED_PARTITIONS = 2 * PARTITIONS + 1;
const PRODUCE_BATCH = 500;
const POST_BATCH = 250;
export const SETTINGS = {
  PARTITIONS: String(PARTITIONS),
  CHECKPOINT_INTERVAL_MS: "300",
  CLOCK_IDLE_MS: String(86_400_000),
  // Actors idle for a second are packed, so the kills also land on actors being packed and unpacked.
  ACTOR_PACK_MS: "1000",
  // Each start after a kill joins the group, which waits for the killed member's session to time out.
  ...FAILOVER_SESSION,
};

/**
 * The load on each log. The embedded engine ingests over HTTP on the one thread it shares with
 * the actors and PGlite (about 4,000 events/s end to end), so its load is smaller.
 */
export const SCALE: Record<LogName, { events: number; users: number; seconds: number; kills: number }> = {
  kafka: { events: 100_000, users: 5_000, seconds: 15, kills: 4 },
  embedded: { events: 16_000, users: 2_000, seconds: 8, kills: 3 },
};

/** An event as posted over HTTP (the server adds receivedAt), keyed by its user. */
export interface Posted {
  readonly key: string;
  readonly event: Record<string, unknown> & { eventId: string };
}

/** A realistic mix of events over `users` shoppers, in event-time order. */
export function workload(total: number, users: number, random: () => number): Posted[] {
  const base = Date.UTC(2026, 10, 1, 8);
  const out: Posted[] = [];
  for (let i = 0; i < total; i++) {
    const userId = `u${Math.floor(random() * users)}`;
    const at = new Date(base + i * 200).toISOString();
    const productId = `p${Math.floor(random() * 300)}`;
    const roll = random();
    const price = Math.round(random() * 20000) / 100;
    let event: Record<string, unknown>;
    if (roll < 0.55) event = { type: "product_viewed", properties: { productId, price, category: "c" } };
    else if (roll < 0.65) event = { type: "page_viewed", properties: { url: "/", loadTime: random() * 4 } };
    else if (roll < 0.72) event = { type: "search_performed", properties: { query: "shoes" } };
    else if (roll < 0.85) event = { type: "product_added_to_cart", properties: { productId, price, quantity: 1 } };
    else if (roll < 0.9) event = { type: "product_removed_from_cart", properties: { productId } };
    else if (roll < 0.95) event = { type: "checkout_started", properties: {} };
    else {
      event = {
        type: "order_completed",
        properties: {
          orderId: `o${i}`,
          items: [{ productId, quantity: 1, price }],
          total: price,
          currency: "USD",
          paymentMethod: random() < 0.5 ? "card" : "paypal",
        },
      };
    }
    out.push({ key: userId, event: { ...event, eventId: uuidv7(base + i), userId, occurredAt: at } });
  }
  return out;
}

/** The values of a metric's series in Prometheus text, optionally only those whose labels contain `labels`. */
function metricValues(text: string, name: string, labels = ""): number[] {
  return text.split("\n")
    .filter((line) => line.startsWith(`${name}{`) && line.includes(labels))
    .map((line) => Number(line.split(" ").at(-1)));
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

/** Actors a process has packed so far, from its metrics; 0 if it does not answer within a second. */
export async function packedActors(engine: EngineProcess): Promise<number> {
  try {
    const response = await fetch(`${engine.url}/metrics`, { signal: AbortSignal.timeout(1_000) });
    return sum(metricValues(await response.text(), "engine_actors_total", 'change="packed"'));
  } catch {
    return 0;
  }
}

/**
 * What a checkpoint logs (LOG_LEVEL=debug) once its outputs are appended, before its transaction commits; aimed at
 * only when it covers records (not only a watermark, whose checkpoint resumes at the same offset committed or not), and
 * only on `topics`, whose outputs have ids naming their records (the global actor's alerts name its timer instead).
 */
function outputsAppended(line: string, topics: readonly string[]): boolean {
  if (!line.includes('"msg":"checkpoint outputs appended"')) return false;
  const { topic, from, nextOffset } = JSON.parse(line);
  return topics.includes(topic) && from < nextOffset;
}

/** How long an aimed kill waits for a checkpoint with outputs before the process is killed anyway. */
const AIM_TIMEOUT_MS = 30_000;

/** Aimed kills per run at most, until one lands between a checkpoint's appended outputs and its commit. */
export const MAX_AIMED_KILLS = 8;

/** A SIGKILL aimed at a checkpoint that had appended the outputs of `topic:partition`'s `from` → `nextOffset`. */
interface AimedKill {
  readonly topic: string;
  readonly partition: number;
  readonly from: number;
  readonly nextOffset: number;
  readonly records: number;
  /** The process started after the kill, by its index in `Current`'s processes. */
  readonly next: number;
}

/** The offset a process's first claim of `topic:partition` resumed from, from its logs; undefined before that claim. */
function claimedOffset(engine: EngineProcess, topic: string, partition: number): number | undefined {
  for (const line of engine.logs().split("\n")) {
    if (!line.includes('"msg":"partition claimed"')) continue;
    const entry = JSON.parse(line);
    if (entry.topic === topic && entry.partition === partition) return entry.nextOffset;
  }
  return undefined;
}

/** The engine process of the moment: replaced at every restart, awaited while it restarts. */
export class Current {
  #engine: Promise<EngineProcess>;
  /** Every process started, in order. */
  readonly #processes: EngineProcess[];
  /** Actors packed by the processes killed so far (read just before each kill). */
  packedBefore = 0;
  /** Kills aimed between a checkpoint's appended outputs and its commit, whether they landed there or later. */
  readonly aimed: AimedKill[] = [];
  constructor(first: EngineProcess) {
    this.#engine = Promise.resolve(first);
    this.#processes = [first];
  }
  get(): Promise<EngineProcess> {
    return this.#engine;
  }
  /** Where an aimed kill's partition resumed: at the first claim of it by a later process; undefined before. */
  resumedAt(kill: AimedKill): number | undefined {
    for (const engine of this.#processes.slice(kill.next)) {
      const at = claimedOffset(engine, kill.topic, kill.partition);
      if (at !== undefined) return at;
    }
    return undefined;
  }
  /**
   * Once every aimed kill's partition was claimed again, those that landed before their checkpoint's commit: the
   * partition resumed where that checkpoint started, not where it would have committed.
   */
  async midCheckpoint(): Promise<AimedKill[]> {
    await eventually(
      "each partition an aimed kill hit to be claimed again",
      () => Promise.resolve(this.aimed.every((k) => this.resumedAt(k) !== undefined) ? true : undefined),
      90_000,
      100,
    );
    return this.aimed.filter((k) => this.resumedAt(k) === k.from);
  }
  /** Replaces the current process by the one `stopAndStart` resolves with (it stops the current one its own way). */
  async replaceWith(stopAndStart: () => Promise<EngineProcess>): Promise<void> {
    const next = Promise.withResolvers<EngineProcess>();
    this.#engine = next.promise;
    stopAndStart().then(next.resolve, next.reject);
    this.#processes.push(await next.promise);
  }
  /** Kills the current process with SIGKILL and starts the next one. */
  async restart(start: () => Promise<EngineProcess>): Promise<void> {
    await this.#replace(start, (engine) => engine.kill("SIGKILL"));
  }
  /** Kills the current process with SIGKILL as it logs a checkpoint of `topics` that appended outputs; starts the next. */
  async restartMidCheckpoint(start: () => Promise<EngineProcess>, topics: readonly string[]): Promise<void> {
    let line: string | undefined;
    await this.#replace(start, async (engine) => {
      const hit = engine.killOnLog((line) => outputsAppended(line, topics));
      const timer = setTimeout(() => engine.kill("SIGKILL"), AIM_TIMEOUT_MS);
      line = await hit.catch(() => undefined);
      clearTimeout(timer);
      await engine.exited;
    }, true);
    if (line === undefined) return;
    const { topic, partition, from, nextOffset, records } = JSON.parse(line);
    this.aimed.push({ topic, partition, from, nextOffset, records, next: this.#processes.length - 1 });
  }
  /** `aimed`: the writer goes on with the old process until it is killed, so that its checkpoints have outputs. */
  async #replace(
    start: () => Promise<EngineProcess>,
    kill: (engine: EngineProcess) => Promise<unknown>,
    aimed = false,
  ): Promise<void> {
    const next = Promise.withResolvers<EngineProcess>();
    const engine = await this.#engine;
    if (!aimed) this.#engine = next.promise;
    this.packedBefore += await packedActors(engine);
    await kill(engine);
    this.#engine = next.promise;
    start().then(next.resolve, next.reject);
    this.#processes.push(await next.promise);
  }
}

/**
 * Where a writer waits while the test has the broker down: the writer passes it before each batch,
 * and `close` resolves once the writer waits there (or has finished), so no send is in flight.
 */
export class Gate {
  #closed: { parked: PromiseWithResolvers<void>; reopened: PromiseWithResolvers<void> } | null = null;
  #finished = false;
  async pass(): Promise<void> {
    const closed = this.#closed;
    if (!closed) return;
    closed.parked.resolve();
    await closed.reopened.promise;
  }
  finish(): void {
    this.#finished = true;
    this.#closed?.parked.resolve();
  }
  close(): Promise<void> {
    this.#closed = { parked: Promise.withResolvers(), reopened: Promise.withResolvers() };
    if (this.#finished) this.#closed.parked.resolve();
    return this.#closed.parked.promise;
  }
  open(): void {
    this.#closed?.reopened.resolve();
    this.#closed = null;
  }
}

/** Writes `load` over about `seconds`; resolves with the ids of the events the log acknowledged. */
export async function write(
  d: Deployment,
  current: Current,
  load: Posted[],
  seconds: number,
  gate = new Gate(),
): Promise<Set<string>> {
  const acknowledged = new Set<string>();
  const size = d.kafkaBrokers ? PRODUCE_BATCH : POST_BATCH;
  const batches = Array.from({ length: Math.ceil(load.length / size) }, (_, b) => load.slice(b * size, (b + 1) * size));
  const started = Date.now();
  const pace = async (b: number) => {
    const due = started + (seconds * 1000 * (b + 1)) / batches.length;
    if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
  };
  if (d.kafkaBrokers) {
    // A producer beside the engine, acks=all: every batch it sends is acknowledged.
    const kafka = new Kafka({ clientId: "exactly-once", brokers: [d.kafkaBrokers], logLevel: logLevel.NOTHING });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    for (const [b, batch] of batches.entries()) {
      await gate.pass();
      const messages = batch.map(({ key, event }) => ({
        key,
        value: JSON.stringify({ ...event, receivedAt: event.occurredAt }),
      }));
      await producer.send({ topic: d.topics.events, acks: -1, messages });
      for (const { event } of batch) acknowledged.add(event.eventId);
      await pace(b);
    }
    gate.finish();
    await producer.disconnect();
    return acknowledged;
  }
  // Through the engine: a request without a 202 (the process died under it, or a 503) is not
  // acknowledged and not retried, so no event can be in the log twice.
  for (const [b, batch] of batches.entries()) {
    const engine = await current.get();
    try {
      const response = await fetch(`${engine.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(batch.map((p) => p.event)),
      });
      const body = await response.text();
      if (response.status === 202) { for (const { event } of batch) acknowledged.add(event.eventId); }
      else if (response.status !== 503) throw new Error(`POST answered ${response.status}: ${body}`);
    } catch (error) {
      if (!(error instanceof TypeError)) throw error; // a refused or broken connection: the engine was killed
    }
    await pace(b);
  }
  return acknowledged;
}

/**
 * Waits until the engines together own every consumed partition, report no lag, and have handled
 * and checkpointed nothing new for a while (a user partition's checkpoint publishes the facts
 * product and global partitions then consume); whether they really caught up is asserted
 * afterwards against the checkpoints. The embedded log's tests use it: its database is the
 * engine's own while it runs. On Kafka, `settled` reads the broker and the database instead.
 */
async function caughtUp(engines: EngineProcess | EngineProcess[], quietMs = 2_000): Promise<void> {
  const all = Array.isArray(engines) ? engines : [engines];
  let last = "";
  let since = Date.now();
  await eventually(
    "the engines to catch up with the log",
    async () => {
      const texts = await Promise.all(all.map(async (engine) => await (await fetch(`${engine.url}/metrics`)).text()));
      const owned = sum(texts.map((text) => Number(/^engine_partitions_owned (\d+)/m.exec(text)?.[1] ?? 0)));
      const lagging = texts.some((text) => metricValues(text, "engine_consumer_lag_records").some((lag) => lag !== 0));
      const progress = texts.map((text) =>
        `${sum(metricValues(text, "engine_events_processed_total"))}/${
          sum(metricValues(text, "engine_checkpoint_duration_seconds_count"))
        }`
      ).join(" ");
      if (owned !== CONSUMED_PARTITIONS || lagging || progress !== last) {
        last = progress;
        since = Date.now();
        return undefined;
      }
      return Date.now() - since >= quietMs ? true : undefined;
    },
    120_000,
    250,
  );
}

/**
 * Waits until every consumed partition's checkpoint is at the partition's end, read from the broker
 * and the database themselves (not from the engine's metrics, which a consumer that stopped
 * fetching leaves as they were), and stays there for `quietMs`.
 */
export async function checkpointedToEnd(d: Deployment, timeoutMs: number, quietMs = 2_000): Promise<void> {
  const kafka = new Kafka({ clientId: "caught-up", brokers: [d.kafkaBrokers!], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  let since = Date.now();
  let behind = "";
  try {
    await eventually(
      "every checkpoint at its partition's end",
      async () => {
        const ends = new Map<string, number>();
        for (const topic of [d.topics.events, d.topics.productEvents, d.topics.analytics]) {
          for (const o of await admin.fetchTopicOffsets(topic)) ends.set(`${topic}:${o.partition}`, Number(o.high));
        }
        const stored = await d.inspect((view) =>
          view.sql<{ tp: string; next_offset: string }[]>`
            select topic || ':' || partition as tp, next_offset from partition_checkpoints
             where group_id = ${d.config.GROUP_ID}`
        );
        const at = new Map(stored.map((r) => [r.tp, Number(r.next_offset)]));
        behind = [...ends].filter(([tp, end]) => (at.get(tp) ?? 0) !== end)
          .map(([tp, end]) => `${tp} at ${at.get(tp) ?? 0} of ${end}`).join(", ");
        if (behind !== "") {
          since = Date.now();
          return undefined;
        }
        return Date.now() - since >= quietMs ? true : undefined;
      },
      timeoutMs,
      500,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; behind: ${behind}`, { cause: error });
  } finally {
    await admin.disconnect();
  }
}

/**
 * Waits until the engines have handled and checkpointed everything in the log: on Kafka by the
 * broker's end offsets and the stored checkpoints (`checkpointedToEnd`), on the embedded log by
 * the engines' metrics (`caughtUp`).
 */
export async function settled(d: Deployment, engines: EngineProcess | EngineProcess[]): Promise<void> {
  if (d.kafkaBrokers) await checkpointedToEnd(d, 120_000);
  else await caughtUp(engines);
}

/** The `events` partitions' claim epochs: compared before and after a stop, they name the partitions claimed between. */
export async function eventsEpochs(d: Deployment): Promise<Map<number, number>> {
  const rows = await d.inspect((view) =>
    view.sql<{ partition: number; epoch: string }[]>`
      select partition, epoch from partition_checkpoints
       where group_id = ${d.config.GROUP_ID} and topic = ${d.topics.events}`
  );
  return new Map(rows.map((r) => [r.partition, Number(r.epoch)]));
}

/**
 * Checks that the records of the analytics partition past its checkpoint are only what a clean stop may leave there:
 * the watermark each `events` partition claimed after the load settled announces (its first housekeeping round, at the
 * clock it resumed from), published while the instance owning analytics was stopping.
 */
function claimWatermarksOnly(
  tail: readonly LogRecord[],
  claimed: ReadonlySet<number>,
  clocks: ReadonlyMap<number, number>,
): void {
  const announced = new Set<number>();
  for (const entry of tail.flatMap((r) => isBundle(r) ? expandBundle(r) : [r])) {
    const value = JSON.parse(new TextDecoder().decode(entry.value!));
    assert.equal(value.fact, "watermark", `past the analytics checkpoint, only watermarks: ${JSON.stringify(value)}`);
    assert.ok(claimed.has(value.partition), `a watermark of events:${value.partition}, claimed after the load settled`);
    assert.ok(!announced.has(value.partition), `one watermark of events:${value.partition} past the checkpoint`);
    assert.equal(
      value.clock,
      clocks.get(value.partition),
      `events:${value.partition}'s watermark is its checkpoint's clock`,
    );
    announced.add(value.partition);
  }
}

/** How `verify` reads what the engine stored. */
export interface VerifyOptions {
  /**
   * States may have been checkpointed by an earlier release (an upgrade drill): each is compared as this release's
   * logic restores and persists it, not byte for byte, since persisted forms change between releases.
   */
  readonly earlierReleaseForms?: boolean;
}

/**
 * Checks the log, the checkpoints, every state and every output id; returns what it compared. Every checkpoint is at
 * its partition's end, but for the claim watermarks of the `events` partitions in `claimedAfterSettle` (claimed after
 * the load settled: an instance taking the partitions of one that stopped first) on the analytics partition, past
 * its checkpoint when that instance stopped before handling them (README, "Shutdown"); the global actor's state is
 * then the fold of the records before its checkpoint.
 */
export async function verify(
  d: Deployment,
  view: LogView,
  acknowledged: Set<string>,
  claimedAfterSettle: ReadonlySet<number> = new Set(),
  options: VerifyOptions = {},
): Promise<{ actors: number; outputs: number; events: number; published: ReadonlyMap<string, number> }> {
  const logics = createDomainLogics();
  const consumed: [string, AnyActorLogic][] = [
    [d.topics.events, logics.user],
    [d.topics.productEvents, logics.product],
    [d.topics.analytics, logics.global],
  ];
  const stored = await view.sql<{ topic: string; partition: number; next_offset: string; clock: string }[]>`
    select topic, partition, next_offset, clock from partition_checkpoints where group_id = ${d.config.GROUP_ID}`;
  const checkpoints = new Map(stored.map((r) => [`${r.topic}:${r.partition}`, Number(r.next_offset)]));
  const eventsClocks = new Map(
    stored.filter((r) => r.topic === d.topics.events).map((r) => [r.partition, Number(r.clock)]),
  );
  const expected = new Map<string, unknown>();
  const inLog = new Map<string, number>();
  /** Each product's counts recounted from the events themselves, by `recountEvent`. */
  const recount = new Map<string, string>();
  /** The events of each minute of event time (epoch ms) by type, recounted from the log. */
  const eventMinutes = new Map<number, Record<string, number>>();
  /** Every output the reference fold publishes, by id: the engine must have published each, with that payload. */
  const folded = new Map<string, string>();
  for (const [topic, logic] of consumed) {
    for (let [partition, records] of await view.records(topic)) {
      const end = records.length === 0 ? 0 : records[records.length - 1].offset + 1;
      const checkpoint = checkpoints.get(`${topic}:${partition}`) ?? 0;
      if (topic === d.topics.analytics && checkpoint < end && claimedAfterSettle.size > 0) {
        const tail = records.filter((r) => r.offset >= checkpoint);
        claimWatermarksOnly(tail, claimedAfterSettle, eventsClocks);
        records = records.filter((r) => r.offset < checkpoint);
      } else {
        assert.equal(checkpoint, end, `the checkpoint of ${topic}:${partition}`);
      }
      if (topic === d.topics.events) {
        for (const record of records) {
          const event = JSON.parse(new TextDecoder().decode(record.value!));
          inLog.set(event.eventId, (inLog.get(event.eventId) ?? 0) + 1);
          recountEvent(recount, event);
          const minute = Math.floor(Date.parse(event.occurredAt) / 60_000) * 60_000;
          const byType = eventMinutes.get(minute) ?? {};
          byType[event.type] = (byType[event.type] ?? 0) + 1;
          eventMinutes.set(minute, byType);
        }
      }
      const { states, outputs } = await replayPartition(logic, records);
      for (const [key, state] of states) {
        expected.set(`${logic.kind}/${key}`, parseJson(JSON.stringify(logic.persist(state))));
      }
      for (const { topic: table, value } of outputs) {
        if (!PUBLISHED_OUTPUTS.has(table)) continue;
        const id = outputIdOf(value);
        if (id !== undefined) folded.set(id, JSON.stringify(value));
      }
    }
  }
  for (const id of acknowledged) assert.equal(inLog.get(id), 1, `acknowledged event ${id} is in the log once`);
  const twice = [...inLog].filter(([, n]) => n > 1);
  assert.deepEqual(twice, [], "no event is in the log twice");

  const rows = await view.sql<
    { kind: string; key: string; state: unknown }[]
  >`select a.kind, a.key, ${wholeState(view.sql)} as state from actor_states a`;
  // Product minutes are added to by checkpoints: their sums must equal the fold's totals exactly. Orders per category
  // too: each order of this load has one line, so it counts once in its category's orders.
  const minutes = await view.sql<{ product_id: string; sums: string }[]>`
    select product_id, concat_ws(',', sum(views), sum(cart_adds), sum(orders), sum(units), sum(revenue_millis),
                                 sum(coalesce(category_orders, orders))) as sums
      from product_minutes group by product_id`;
  const logicOf = new Map(consumed.map(([, logic]) => [logic.kind, logic]));
  // A state an earlier release wrote is compared in the form this release's logic gives it (restored, persisted).
  const form = (kind: string, state: unknown) => {
    const logic = logicOf.get(kind);
    return options.earlierReleaseForms && logic
      ? parseJson(JSON.stringify(logic.persist(logic.restore(state))))
      : state;
  };
  const actual = new Map(rows.map((r) => [`${r.kind}/${r.key}`, form(r.kind, r.state)]));
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), "the same actors exist");
  for (const [id, state] of expected) assert.deepEqual(actual.get(id), state, `state of ${id}`);
  const totals = new Map<string, string>();
  for (const [id, state] of expected) {
    if (!id.startsWith("product/")) continue;
    const p = state as { views: number; cartAdds: number; orders: number; unitsSold: number; revenueMillis: number };
    if (p.views + p.cartAdds + p.orders === 0) continue;
    totals.set(
      id.slice("product/".length),
      [p.views, p.cartAdds, p.orders, p.unitsSold, p.revenueMillis, p.orders].join(","),
    );
  }
  assert.deepEqual(
    new Map(minutes.map((r) => [r.product_id, r.sums])),
    totals,
    "product minutes add up to the products' totals, each fact once",
  );

  // Each fact counted once by its product, by a recount that shares no code with the engine or the fold (both drop a
  // replayed fact in the product actor's logic: were that wrong, states would still equal the fold).
  for (const [id, state] of actual) {
    if (!id.startsWith("product/")) continue;
    const p = state as { views: number; cartAdds: number; orders: number; unitsSold: number };
    const counts = recount.get(id.slice("product/".length)) ?? "0,0,0,0";
    assert.equal(
      [p.views, p.cartAdds, p.orders, p.unitsSold].join(","),
      counts,
      `${id}: views, cart adds, orders, units`,
    );
  }
  for (const productId of recount.keys()) assert.ok(actual.has(`product/${productId}`), `product ${productId} exists`);
  // Each event counted once in the global actor's minutes (in its state, else as stored once finished), recounted the
  // same way: by type, in the minute of its event time.
  const global = actual.get("global/global") as { minutes: { minute: number; events: Record<string, number> }[] };
  const finished = await view.sql<{ minute: Date; events: Record<string, number> }[]>`
    select minute, events from analytics_minutes`;
  const counted = new Map(finished.map((r) => [new Date(r.minute).getTime(), countsOf(r.events)]));
  for (const m of global?.minutes ?? []) counted.set(m.minute, countsOf(m.events));
  // A minute without events (an abandonment dated in a minute whose events the log never got: posted while the engine
  // was down, and given up) counts no event, as the recount does by not listing it.
  for (const [minute, counts] of counted) if (counts === "") counted.delete(minute);
  assert.deepEqual(
    counted,
    new Map([...eventMinutes].map(([minute, events]) => [minute, countsOf(events)])),
    "events by minute",
  );

  // No output id with two different payloads, across every output topic.
  const payloads = new Map<string, string>();
  /** Times each output id is on its topic: more than once after a replay. */
  const published = new Map<string, number>();
  let outputs = 0;
  for (const topic of [d.topics.alerts, d.topics.recommendations, d.topics.productEvents, d.topics.analytics]) {
    for (const records of (await view.records(topic)).values()) {
      for (const record of records.flatMap((r) => isBundle(r) ? expandBundle(r) : [r])) {
        const text = new TextDecoder().decode(record.value!);
        const id = outputIdOf(JSON.parse(text));
        if (id === undefined) continue;
        outputs++;
        const seen = payloads.get(id);
        if (seen !== undefined) assert.equal(text, seen, `output ${id} re-published with a different payload`);
        payloads.set(id, text);
        published.set(id, (published.get(id) ?? 0) + 1);
      }
    }
  }
  // Nothing the fold publishes is missing from its topic (an output lost between a checkpoint and a kill leaves every
  // state equal to the fold of its own partition's log: only this finds it).
  for (const [id, text] of folded) {
    assert.equal(payloads.get(id), text, `output ${id} of the reference fold is published, with the fold's payload`);
  }
  return { actors: actual.size, outputs, events: inLog.size, published };
}

/**
 * Adds an event of the load to its products' counts (`views,cartAdds,orders,unitsSold`), as SPEC.md defines them: every
 * view and cart add of the product, every order with it (the load's order ids are unique) and the units it sold.
 */
function recountEvent(
  recount: Map<string, string>,
  event: { type: string; properties: Record<string, unknown> },
): void {
  const add = (productId: string, delta: readonly number[]) => {
    const counts = (recount.get(productId) ?? "0,0,0,0").split(",").map(Number);
    recount.set(productId, counts.map((n, i) => n + delta[i]).join(","));
  };
  const { type, properties } = event;
  if (type === "product_viewed") add(properties.productId as string, [1, 0, 0, 0]);
  else if (type === "product_added_to_cart") add(properties.productId as string, [0, 1, 0, 0]);
  else if (type === "order_completed") {
    const units = new Map<string, number>();
    for (const item of properties.items as { productId: string; quantity: number }[]) {
      units.set(item.productId, (units.get(item.productId) ?? 0) + item.quantity);
    }
    for (const [productId, n] of units) add(productId, [0, 0, 1, n]);
  }
}

/** Counts by type as one string, types in order, zeros left out: the same counts compare equal however stored. */
function countsOf(events: Readonly<Record<string, number>>): string {
  return Object.entries(events).filter(([, n]) => n > 0).sort(([a], [b]) => a < b ? -1 : 1).map(([t, n]) => `${t}:${n}`)
    .join(",");
}

/** Whether an output id derives from a record of `topic:partition` at an offset in [from, to) (engine outputId). */
export function sourcedIn(id: string, topic: string, partition: number, from: number, to: number): boolean {
  const prefix = `${topic}-${partition}-`;
  if (!id.startsWith(prefix)) return false;
  const offset = Number(/^\d+/.exec(id.slice(prefix.length))?.[0] ?? -1);
  return offset >= from && offset < to;
}

/** The topics (by their name in the topic table) whose outputs are published with an id, not stored only. */
const PUBLISHED_OUTPUTS: ReadonlySet<string> = new Set([
  "alerts",
  "recommendations",
  "productEvents",
  "analytics",
]);

/** An output's id: an alert's, a recommendation's or a fact's; undefined for records without one (watermarks). */
function outputIdOf(value: unknown): string | undefined {
  const v = value as { alertId?: unknown; recommendationId?: unknown; factId?: unknown };
  const id = v.alertId ?? v.recommendationId ?? v.factId;
  return typeof id === "string" ? id : undefined;
}
