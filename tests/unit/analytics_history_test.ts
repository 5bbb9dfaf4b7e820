/**
 * Analytics history beyond the global actor's memory: minutes that leave the retention are emitted
 * once as finished minutes, never re-created, stored by the checkpoint (here MemoryCheckpointStore)
 * and pruned after ANALYTICS_HISTORY_DAYS; windows longer than the memory add the stored minutes to
 * the remembered ones and equal what a memory holding the whole window computes. The SQL side is in
 * tests/integration/checkpoint_store_test.ts and query_api_test.ts.
 */
import assert from "node:assert/strict";
import { windowSpan, windowTotalsWithHistory } from "../../actors/analytics_window.ts";
import type { AnalyticsFact, GlobalMessage } from "../../actors/facts.ts";
import { createGlobalLogic, GLOBAL_KEY, type GlobalState, recentTotals } from "../../actors/global.ts";
import { minuteOf, type StoredMinute, storedMinute } from "../../actors/rollups.ts";
import { domainSettings } from "../../actors/settings.ts";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import { topicNames, topicSpecs } from "../../engine/config.ts";
import { silentLogger } from "../../engine/logger.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import { ActorRuntime } from "../../engine/runtime.ts";
import { createStateReader } from "../../engine/state_reader.ts";
import type { HistoryReader } from "../../http/analytics_window.ts";
import { queryRoutes } from "../../http/query_routes.ts";
import { createHandler } from "../../http/server.ts";
import type { StoredMinutes } from "../../sql/analytics_minutes.ts";
import { noSql } from "./http_fixture.ts";
import { runGlobal } from "../helpers/global_actor.ts";

const MIN = 60_000;
const DAY = 1440 * MIN;
const T0 = Date.UTC(2026, 0, 5, 8, 0, 0);
const SHORT = domainSettings({ ANALYTICS_RETENTION_MINUTES: 60 });
const LONG = domainSettings({ ANALYTICS_RETENTION_MINUTES: 1440 });
// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

/**
 * A shop's activity facts, one batch per minute from `T0 + first` minutes, `every` minutes apart:
 * a page view and a product view each, a cart add every 5th, a checkout and an order every 10th.
 */
function shopFacts(minutes: number, every = 1): AnalyticsFact[] {
  const facts: AnalyticsFact[] = [];
  const add = (at: number, type: string, extra: Record<string, unknown> = {}) => {
    const n = facts.length;
    facts.push({
      fact: "activity",
      factId: `events-${n % 3}-${n}-activity`,
      at,
      userId: `u${n % 11}`,
      session: `s${n % 11}`,
      type,
      ...extra,
    } as AnalyticsFact);
  };
  for (let m = 0; m < minutes; m += every) {
    const at = T0 + m * MIN + 5_000;
    add(at, "page_viewed", { loadTime: 1.5 });
    add(at + 1_000, "product_viewed");
    if (m % 5 === 0) add(at + 2_000, "product_added_to_cart");
    if (m % 10 === 0) {
      add(at + 3_000, "checkout_started", { cartConverted: true });
      add(at + 4_000, "order_completed", { revenueMillis: 25_000, categoryRevenue: { toys: 25_000 } });
    }
  }
  return facts;
}

const run = runGlobal;

/** What `sumAnalyticsMinutes` computes in SQL, over stored minutes in memory. */
function sumMinutes(minutes: readonly StoredMinute[], from: number, to: number): StoredMinutes {
  const inside = minutes.filter((m) => m.minute >= from && m.minute < to);
  const total = {
    minute: from,
    events: {} as Record<string, number>,
    orders: 0,
    revenueMillis: 0,
    pageViews: 0,
    loadTimeMsSum: 0,
    loadTimeSamples: 0,
    checkouts: 0,
    cartsConverted: 0,
    cartsAbandoned: 0,
    checkoutsAbandoned: 0,
    categoryRevenueMillis: {} as Record<string, number>,
    activeUsers: 0,
    activeSessions: 0,
    sessionsReached: {} as Record<string, number>,
  };
  const merge = (into: Record<string, number>, add: Readonly<Record<string, number>>) => {
    for (const [key, n] of Object.entries(add)) into[key] = (into[key] ?? 0) + n;
  };
  for (const m of inside) {
    merge(total.events, m.events);
    merge(total.categoryRevenueMillis, m.categoryRevenueMillis);
    merge(total.sessionsReached, m.sessionsReached);
    for (const key of Object.keys(total) as (keyof typeof total)[]) {
      if (typeof total[key] === "number" && key !== "minute") (total[key] as number) += m[key] as number;
    }
  }
  return { count: inside.length, total };
}

const memoryHistory = (store: MemoryCheckpointStore): HistoryReader => (from, to) =>
  Promise.resolve(sumMinutes([...store.analyticsMinutes.values()], from, to));

Deno.test("minutes that leave the global actor's memory are emitted once as finished minutes; with memory they are what a longer memory holds", () => {
  const facts = shopFacts(240);
  const short = run(SHORT, facts);
  const long = run(LONG, facts);
  const latest = facts.at(-1)!.at;
  const memoryFrom = minuteOf(latest) - 60 * MIN;
  assert.equal(short.state.memoryFrom, memoryFrom);
  const remembered = short.state.minutes.filter((m) => m.minute >= memoryFrom);
  assert.equal(remembered.length, 61, "minutes 179..239");
  assert.deepEqual(
    short.state.minutes.filter((m) => m.minute < memoryFrom).map((m) => m.minute),
    [memoryFrom - MIN],
    "minute 178, finished in the last round, is kept one more round",
  );

  const stored = short.history.flatMap((batch) => batch.minutes);
  assert.equal(stored.length, 179, "minutes 0..178");
  assert.ok(stored.every((m) => m.minute < memoryFrom));
  assert.equal(new Set(stored.map((m) => m.minute)).size, stored.length, "each finished minute once");
  assert.deepEqual(
    [...stored, ...remembered.map(storedMinute)],
    JSON.parse(JSON.stringify(long.state.minutes.map(storedMinute))),
  );
  assert.deepEqual(long.history, [], "nothing left a 24-hour memory");
  assert.ok(short.history.every((batch) => batch.keepFrom % MIN === 0), "keepFrom is a minute boundary");
});

Deno.test("a window longer than the memory: the remembered minutes plus the stored sum equal a whole-window memory's totals", () => {
  const facts = shopFacts(240);
  const short = run(SHORT, facts);
  const long = run(LONG, facts);
  const stored = short.history.flatMap((batch) => batch.minutes);
  // The last round's finished minutes are still in memory: storage is read only before them, so a
  // window is whole even before the checkpoint storing that round's minutes has committed.
  const storedBeforeLastRound = short.history.slice(0, -1).flatMap((batch) => batch.minutes);
  const held = short.state.minutes[0].minute;
  assert.ok(held < short.state.memoryFrom!);
  for (const minutes of [120, 240, 1440]) {
    const span = windowSpan(short.state, minutes)!;
    assert.deepEqual(span.stored, { from: span.from, to: held }, `${minutes}`);
    for (const storage of [stored, storedBeforeLastRound]) {
      const sum = sumMinutes(storage, span.stored!.from, span.stored!.to);
      assert.deepEqual(windowTotalsWithHistory(short.state, span, sum.total), recentTotals(long.state, minutes));
    }
  }
  for (const minutes of [1, 15, 60]) {
    const span = windowSpan(short.state, minutes)!;
    assert.equal(span.stored, null, `${minutes} minutes fit the memory`);
    assert.deepEqual(windowTotalsWithHistory(short.state, span, null), recentTotals(short.state, minutes));
  }
});

Deno.test("a fact for a minute that left memory is too late: counted nowhere, and its minute is not re-created", () => {
  const short = run(SHORT, shopFacts(240));
  const memoryFrom = short.state.memoryFrom!;
  const late = (at: number, n: number): AnalyticsFact => ({
    fact: "activity",
    factId: `events-0-${100_000 + n}-activity`,
    at,
    userId: "late",
    session: "late",
    type: "page_viewed",
  });
  const after = run(SHORT, [late(T0 + 10 * MIN, 1), late(memoryFrom - 1, 2)], short.state);
  assert.equal(after.state.tooLate, short.state.tooLate + 2);
  assert.deepEqual(after.state.minutes.map(storedMinute), short.state.minutes.map(storedMinute));
  assert.deepEqual(after.history, []);
  const onTheEdge = run(SHORT, [late(memoryFrom, 3)], short.state);
  assert.equal(onTheEdge.state.tooLate, short.state.tooLate, "the first remembered minute still counts");
  const edge = (state: GlobalState) => state.minutes.find((m) => m.minute === memoryFrom)!.events.page_viewed;
  assert.equal(edge(onTheEdge.state), edge(short.state) + 1);

  // A longer retention after a restart does not move the boundary back over stored minutes.
  const logic = createGlobalLogic(LONG);
  const restored = logic.restore(JSON.parse(JSON.stringify(createGlobalLogic(SHORT).persist(short.state))));
  assert.equal(restored.memoryFrom, memoryFrom);
  const grown = run(LONG, [late(memoryFrom - 5 * MIN, 4)], restored);
  assert.equal(grown.state.tooLate, short.state.tooLate + 1);
  assert.equal(grown.state.memoryFrom, memoryFrom);
});

Deno.test("an events partition behind another by more than the memory (a historical import): its facts still count, since minutes leave memory only once every partition's watermark has passed them, and do when the last one has", () => {
  // `deno task import` of the UCI file covers a year in 40 s: one partition's checkpoint publishes facts days ahead
  // of another's, whose facts then came after their minutes had left memory (30d funnel: 471 orders of 2,739).
  const facts = shopFacts(240);
  const of = (p: number) =>
    facts.filter((_, i) => i % 2 === p).map((f) => ({ ...f, factId: `events-${p}-${f.factId}` }));
  const mark = (partition: number, clock: number | null): GlobalMessage => ({
    fact: "watermark",
    partition,
    partitions: 3,
    clock,
  });
  const latest = facts.at(-1)!.at;
  const all = run(SHORT, facts);
  // Partition 1 publishes its 4 hours first, then partition 0 its own; partition 2 never had a record.
  const behind = run(SHORT, [
    mark(0, 0),
    mark(1, 0),
    mark(2, null),
    ...of(1),
    mark(1, latest),
    ...of(0),
  ]);
  assert.equal(behind.state.tooLate, 0, "no fact of partition 0 was too late");
  assert.deepEqual(behind.history, [], "held in memory while partition 0 was behind");
  const orders = (minutes: readonly StoredMinute[]) => minutes.reduce((n, m) => n + m.orders, 0);
  assert.equal(orders(behind.state.minutes.map(storedMinute)), 24, "an order every 10th minute of 240");
  // Partition 0's watermark passing them releases the minutes held meanwhile: memory is back to the retention, as if
  // the facts had come in time order, and a fact of a minute before it is too late as before.
  const caughtUp = run(SHORT, [mark(0, latest)], behind.state);
  assert.equal(caughtUp.state.memoryFrom, all.state.memoryFrom);
  const finished = caughtUp.history.flatMap((batch) => batch.minutes);
  // The same minutes, but for the active users and sessions of those already past the sketches' 30 minutes when
  // partition 0's facts came: those minutes keep an estimate, which late facts no longer add to.
  const activeLeftOut = ({ activeUsers: _u, activeSessions: _s, ...rest }: StoredMinute) => rest;
  const inOrder = all.history.flatMap((b) => b.minutes);
  assert.deepEqual(finished.map(activeLeftOut), inOrder.map(activeLeftOut));
  assert.ok(finished.every((m, i) => m.activeUsers <= inOrder[i].activeUsers));
  assert.equal(orders(finished), 18, "the minutes held meanwhile are finished: minutes 0..178, 18 orders");
  const remembered = caughtUp.state.minutes.filter((m) => m.minute >= caughtUp.state.memoryFrom!);
  assert.equal(orders([...finished, ...remembered.map(storedMinute)]), 24);
  const late = run(SHORT, [{ ...facts[0], factId: "events-0-late" }], caughtUp.state);
  assert.equal(late.state.tooLate, 1);
  // A partition not heard of yet holds the memory too (its facts may still come); analytics fed without watermarks
  // (the tests above) keep the retention counted from the latest fact alone.
  const unheard = run(SHORT, [mark(0, 0), ...of(0), mark(0, latest)]);
  assert.equal(unheard.state.memoryFrom, null);
  assert.equal(unheard.history.length, 0);
});

Deno.test("the stored history keeps ANALYTICS_HISTORY_DAYS: each batch names the oldest minute kept and leaves out older ones", () => {
  const settings = domainSettings({ ANALYTICS_RETENTION_MINUTES: 60, ANALYTICS_HISTORY_DAYS: 1 });
  const facts = shopFacts(3 * 1440, 20);
  const { state, history } = run(settings, facts);
  const stored = new Map<number, StoredMinute>();
  for (const batch of history) {
    assert.ok(batch.minutes.every((m) => m.minute >= batch.keepFrom));
    for (const m of batch.minutes) stored.set(m.minute, m);
    for (const minute of stored.keys()) if (minute < batch.keepFrom) stored.delete(minute);
  }
  const keepFrom = minuteOf(facts.at(-1)!.at) - DAY;
  assert.equal(history.at(-1)!.keepFrom, keepFrom);
  const minutes = [...stored.keys()].sort((a, b) => a - b);
  assert.ok(minutes[0] >= keepFrom && minutes.at(-1)! < state.memoryFrom!);
  assert.equal(minutes.length, Math.floor((state.memoryFrom! - keepFrom - 1) / (20 * MIN)) + 1);
});

Deno.test("through the runtime: the checkpoint stores finished minutes, GET /v1/analytics/funnel?window=24h adds them (fromStorage), and a replay stores them identically", async () => {
  const facts = shopFacts(240);
  const topics = topicNames({ TOPIC_PREFIX: "" });
  const log = new MemoryLog();
  await log.ensureTopics(topicSpecs({ PARTITIONS: 1 }, topics));
  const store = new MemoryCheckpointStore();
  const tp = `g/${topics.analytics}:0`;
  const start = async () => {
    const consumer = log.consumer({ maxBatch: 64 });
    const runtime = new ActorRuntime({
      store,
      producer: log.producer(),
      consumer,
      topics,
      groupId: "g",
      owner: "test",
      logger: silentLogger,
      logics: new Map([[topics.analytics, createGlobalLogic(SHORT)]]),
      checkpointIntervalMs: 20,
      checkpointMaxMessages: 200,
      idleClockMs: 1e12,
      retryBackoffMs: { initial: 5, max: 20 },
    });
    runtime.start();
    await consumer.start([topics.analytics], runtime);
    for (let i = 0; i < 400 && (store.partitions.get(tp)?.nextOffset ?? 0) < facts.length; i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.equal(store.partitions.get(tp)?.nextOffset, facts.length, "the runtime drained");
    return { runtime, stop: async () => (await consumer.stop(), await runtime.stop()) };
  };
  log.appendNow(facts.map((f) => ({ topic: topics.analytics, key: GLOBAL_KEY, value: JSON.stringify(f) })));
  const first = await start();
  try {
    const reference = run(SHORT, facts);
    const long = run(LONG, facts);
    assert.deepEqual(
      [...store.analyticsMinutes.values()].sort((a, b) => a.minute - b.minute),
      reference.history.flatMap((batch) => batch.minutes),
      "the checkpoint stored exactly the finished minutes",
    );

    const handle = createHandler(
      queryRoutes({
        reader: createStateReader(first.runtime, store),
        sql: noSql,
        now: () => Date.now(),
        history: memoryHistory(store),
      }),
      silentLogger,
    );
    const funnel = async (window: string): Promise<Json> => {
      const response = await handle(new Request(`http://engine.test/v1/analytics/funnel?window=${window}`));
      assert.equal(response.status, 200);
      return await response.json();
    };
    const day = await funnel("24h");
    const whole = recentTotals(long.state, 1440)!;
    assert.deepEqual(day.steps, {
      productViewed: whole.events.product_viewed,
      addedToCart: whole.events.product_added_to_cart,
      checkoutStarted: whole.events.checkout_started,
      orderCompleted: whole.orders,
    });
    assert.deepEqual(day.steps, { productViewed: 240, addedToCart: 48, checkoutStarted: 24, orderCompleted: 24 });
    assert.equal(day.fromStorage, true);
    assert.deepEqual(day.storage, {
      from: day.from,
      to: new Date(reference.state.memoryFrom! - MIN).toISOString(), // the last round's finished minute is in memory
      minutes: 178,
    });
    assert.equal(day.source, "memory");
    const hour = await funnel("1h");
    assert.equal(hour.fromStorage, false);
    assert.equal(hour.storage, undefined);
    assert.equal(hour.steps.productViewed, recentTotals(long.state, 60)!.events.product_viewed);
    const month = await funnel("30d");
    assert.deepEqual(month.steps, day.steps, "30 days: the same 4 hours of history");
    assert.equal(month.minutes, 30 * 1440);
  } finally {
    await first.stop();
  }

  // Replay: the global actor's state is gone and its partition restarts at offset 0; the stored
  // rows are tampered with, so that only a rewrite by the replay can restore them.
  const before = structuredClone([...store.analyticsMinutes]);
  for (const [minute, m] of store.analyticsMinutes) store.analyticsMinutes.set(minute, { ...m, orders: -1 });
  store.partitions.get(tp)!.nextOffset = 0;
  store.rows.delete("global/global");
  const replay = await start();
  await replay.stop();
  assert.deepEqual([...store.analyticsMinutes], before, "a replay stores the same finished minutes again");
});

Deno.test("a window reaching before the memory while PostgreSQL is down is a 503 with Retry-After, not a 500", async () => {
  const { state } = run(SHORT, shopFacts(240));
  const persisted = createGlobalLogic(SHORT).persist(state);
  const handle = createHandler(
    queryRoutes({
      reader: { read: () => Promise.resolve({ state: persisted, source: "memory" }) },
      sql: noSql,
      now: () => Date.now(),
      history: () => Promise.reject(new Error("connection terminated unexpectedly")),
    }),
    silentLogger,
  );
  const request = (window: string) => new Request(`http://engine.test/v1/analytics/funnel?window=${window}`);
  const down = await handle(request("24h"));
  assert.equal(down.status, 503);
  assert.equal(down.headers.get("retry-after"), "5");
  assert.equal((await down.json()).type, "urn:actor-engine:problem:database_unavailable");
  // The window within memory needs no history: still answered.
  const hour = await handle(request("1h"));
  assert.equal(hour.status, 200);
  assert.equal((await hour.json()).fromStorage, false);
});
