/**
 * The global actor fed by `events` partitions that lag each other, as the engine feeds it: each partition's facts in
 * its own time order, its watermark after its facts up to that clock (at most once a minute of it) and a final one at
 * the end, the partitions interleaved arbitrarily, some replaying after a failed checkpoint. Whatever the lag, it must
 * count what delivering the same facts in time order counts: no fact too late, none lost or counted twice, no minute
 * stored twice with different content, persist/restore (or pack/unpack) at any point changing nothing, and memory back
 * to the retention once every partition has caught up; and the business alerts are the in-order run's (types, minutes,
 * figures), each over its whole window. Active users and sessions of minutes whose facts came after the sketches' 30 minutes keep only
 * the estimate of the facts before (README): at most the in-order run's.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { AnalyticsFact, GlobalMessage } from "../../actors/facts.ts";
import type { AnalyticsHistoryBatch, GlobalState } from "../../actors/global.ts";
import { minuteOf, type StoredMinute, storedMinute } from "../../actors/rollups.ts";
import { type DomainSettings, domainSettings } from "../../actors/settings.ts";
import { StatePacker } from "../../engine/state_packer.ts";
import { driveGlobal, type GlobalDriver } from "../helpers/global_actor.ts";

const MIN = 60_000;
const DAY = 1440 * MIN;
const T0 = Date.UTC(2026, 0, 5, 8, 0, 0);

/** One generated fact: its minute and second after T0, what it is, and its user (which decides its partition). */
interface FactSpec {
  readonly minute: number;
  readonly second: number;
  readonly kind: number;
  readonly user: number;
}

/** A shop's fact of kind `kind` (0..9) at `at`; `offset` its record's offset in its partition. */
function shopFact(spec: FactSpec, at: number, partition: number, offset: number): AnalyticsFact {
  const base = { at, userId: `u${spec.user}` };
  if (spec.kind >= 8) {
    const stage = spec.kind === 8 ? "cart" : "checkout";
    return { fact: "abandonment", factId: `timer-user-u${spec.user}-${stage}-${at}-${offset}-a`, stage, ...base };
  }
  const activity = {
    fact: "activity",
    factId: `events-${partition}-${offset}-activity`,
    session: `s${spec.user}-${Math.floor(spec.minute / 30)}`,
    ...base,
  } as const;
  switch (spec.kind) {
    case 0:
      return { ...activity, type: "page_viewed", loadTime: (spec.second % 7) / 2, reached: ["visited"] };
    case 1:
      return { ...activity, type: "page_viewed" };
    case 2:
      return { ...activity, type: "product_viewed", reached: ["viewed_product"] };
    case 3:
      return { ...activity, type: "product_added_to_cart", reached: ["added_to_cart"] };
    case 4:
      return { ...activity, type: "checkout_started", cartConverted: true, reached: ["started_checkout"] };
    case 5: {
      const millis = 1_000 * (1 + spec.second);
      const category = `c${spec.user % 3}`;
      return {
        ...activity,
        type: "order_completed",
        revenueMillis: millis,
        categoryRevenue: { [category]: millis },
        reached: ["purchased"],
      };
    }
    case 6:
      return { ...activity, type: "search_performed" };
    default:
      return { ...activity, type: "product_removed_from_cart" };
  }
}

/** A generated shop: its partitions, facts, how each partition checkpoints, the interleaving and the restarts. */
interface Scenario {
  readonly partitions: number;
  /** ANALYTICS_HISTORY_DAYS: 1 has minutes of a partition days behind finished past the history. */
  readonly historyDays: number;
  readonly facts: readonly FactSpec[];
  /** Per partition: the facts between its checkpoints (each publishing its watermark, once per minute of its clock). */
  readonly checkpointEvery: readonly number[];
  /**
   * Per partition, 0 or where its checkpoint failed after its outputs were appended: it rewinds to the checkpoint
   * before, re-publishing that watermark (lower than its last) and the same facts again (ids included).
   */
  readonly rewinds: readonly number[];
  /** (partition pick, messages): partitions take turns by these, then the rest are drained, last partition first. */
  readonly schedule: readonly (readonly [number, number])[];
  /** Message indexes after which the global actor is restored from its persisted state. */
  readonly reloads: readonly number[];
}

const scenario: fc.Arbitrary<Scenario> = fc.record({
  partitions: fc.integer({ min: 2, max: 6 }),
  historyDays: fc.constantFrom(1, 30),
  facts: fc.array(
    fc.record({
      // Several hours, and now and then days later (a historical import).
      minute: fc.oneof(
        { arbitrary: fc.integer({ min: 0, max: 299 }), weight: 30 },
        fc.integer({ min: 0, max: 4 * 1440 }),
      ),
      second: fc.integer({ min: 0, max: 59 }),
      kind: fc.integer({ min: 0, max: 9 }),
      user: fc.integer({ min: 0, max: 40 }),
    }),
    { minLength: 1, maxLength: 600, size: "max" },
  ),
  checkpointEvery: fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 6, maxLength: 6 }),
  rewinds: fc.array(fc.oneof(fc.constant(0), fc.nat()), { minLength: 6, maxLength: 6 }),
  schedule: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 150 })), { maxLength: 40, size: "max" }),
  reloads: fc.array(fc.nat(), { maxLength: 8, size: "max" }),
});

const atOf = (spec: FactSpec) => T0 + spec.minute * MIN + spec.second * 1_000;

/** The facts in time order (the in-order delivery), and the lagged delivery with its watermarks. */
function deliveries(s: Scenario): { inOrder: AnalyticsFact[]; lagged: GlobalMessage[]; end: number } {
  const byPartition: { spec: FactSpec; at: number }[][] = Array.from({ length: s.partitions }, () => []);
  for (const spec of s.facts) byPartition[spec.user % s.partitions].push({ spec, at: atOf(spec) });
  const end = Math.max(...s.facts.map(atOf));
  const all: AnalyticsFact[] = [];
  const queues: GlobalMessage[][] = byPartition.map((entries, partition) => {
    const mark = (clock: number | null): GlobalMessage => ({
      fact: "watermark",
      partition,
      partitions: s.partitions,
      clock,
    });
    if (entries.length === 0) return [mark(null)];
    entries.sort((a, b) => a.at - b.at);
    const queue: GlobalMessage[] = [mark(0)];
    let published = 0;
    entries.forEach(({ spec, at }, offset) => {
      const fact = shopFact(spec, at, partition, offset);
      all.push(fact);
      queue.push(fact);
      const checkpoint = (offset + 1) % s.checkpointEvery[partition] === 0;
      if (checkpoint && minuteOf(at) > minuteOf(published)) queue.push(mark(published = at));
    });
    // Idle once its facts are out, its clock reaches the end (the others' latest fact) and it publishes it.
    if (minuteOf(end) > minuteOf(published)) queue.push(mark(end));
    if (s.rewinds[partition] === 0) return queue;
    const failed = s.rewinds[partition] % queue.length;
    const marks = queue.flatMap((m, i) => m.fact === "watermark" && i <= failed ? [i] : []);
    const from = marks.at(-2) ?? marks[0];
    return [...queue.slice(0, failed + 1), ...queue.slice(from, failed + 1), ...queue.slice(failed + 1)];
  });
  const lagged: GlobalMessage[] = [];
  for (const [pick, count] of s.schedule) {
    const open = queues.filter((q) => q.length > 0);
    if (open.length === 0) break;
    lagged.push(...open[pick % open.length].splice(0, count));
  }
  for (let p = queues.length - 1; p >= 0; p--) lagged.push(...queues[p]);
  const inOrder = [...all].sort((a, b) => a.at - b.at);
  return { inOrder, lagged, end };
}

/**
 * Delivers `messages` to a fresh global actor, restoring it from its persisted state after the `reloads`: every other
 * one through the packing of idle actors (engine/state_packer.ts), as an unpack restores it, the others as a checkpoint.
 */
function deliver(
  settings: DomainSettings,
  messages: readonly GlobalMessage[],
  reloads: ReadonlySet<number> = new Set(),
): GlobalDriver {
  const driver = driveGlobal(settings);
  const packer = new StatePacker();
  const unpacked = (persisted: Record<string, unknown>) =>
    packer.unpack(packer.pack(persisted)) as Record<string, unknown>;
  let restarts = 0;
  messages.forEach((message, i) => {
    driver.send(message);
    if (reloads.has(i)) driver.reload(restarts++ % 2 === 1 ? unpacked : undefined);
  });
  return driver;
}

/** The stored minutes, as the checkpoint stores and prunes them: fails if a minute is stored twice differently. */
function storedOnce(history: readonly AnalyticsHistoryBatch[]): Map<number, StoredMinute> {
  const stored = new Map<number, StoredMinute>();
  const ever = new Map<number, StoredMinute>();
  for (const batch of history) {
    for (const m of batch.minutes) {
      const before = ever.get(m.minute);
      if (before) assert.deepEqual(m, before, `minute ${new Date(m.minute).toISOString()} stored twice, differently`);
      ever.set(m.minute, m);
      stored.set(m.minute, m);
    }
    for (const minute of stored.keys()) if (minute < batch.keepFrom) stored.delete(minute);
  }
  return stored;
}

/**
 * Every minute counted anywhere within ANALYTICS_HISTORY_DAYS of the latest fact: stored, or in memory (finished
 * minutes held in memory must be stored). Older ones are pruned at the next batch, whenever that comes.
 */
function everyMinute(
  state: GlobalState,
  history: readonly AnalyticsHistoryBatch[],
  s: DomainSettings,
): Map<number, StoredMinute> {
  const minutes = storedOnce(history);
  const keepFrom = minuteOf(state.lastEventAt!) - s.ANALYTICS_HISTORY_DAYS * DAY;
  for (const minute of minutes.keys()) if (minute < keepFrom) minutes.delete(minute);
  for (const m of state.minutes) {
    if (state.memoryFrom !== null && m.minute < state.memoryFrom) {
      assert.ok(minutes.has(m.minute) || m.minute < keepFrom, `a finished minute held in memory was stored`);
    } else if (m.minute >= keepFrom) {
      assert.ok(!minutes.has(m.minute), "a minute in the retention was not stored yet");
      minutes.set(m.minute, JSON.parse(JSON.stringify(storedMinute(m))));
    }
  }
  return minutes;
}

/**
 * Each business alert's figures are its window's, counted from every fact: a boundary is evaluated once every partition
 * has published its facts before it, and over its whole window.
 */
function assertAlertFigures(driver: GlobalDriver, facts: readonly AnalyticsFact[], s: DomainSettings): void {
  if (driver.alerts.length === 0) return;
  // Per minute: what each alert counts.
  const tally = new Map<number, Record<string, number>>();
  for (const f of facts) {
    const counts = tally.get(minuteOf(f.at)) ?? {};
    tally.set(minuteOf(f.at), counts);
    const add = (key: string) => void (counts[key] = (counts[key] ?? 0) + 1);
    if (f.fact === "abandonment") {
      if (f.stage === "cart") add("abandoned");
      continue;
    }
    if (f.type === "page_viewed") add("pageViews");
    if (f.type === "page_viewed" && f.loadTime !== undefined) add("samples");
    if (f.type === "order_completed") add("orders");
    if (f.type === "checkout_started") add("checkouts");
    if (f.cartConverted) add("converted");
  }
  const windows: Record<string, [minutes: number, figures: string[]]> = {
    low_traffic: [s.LOW_TRAFFIC_WINDOW_MINUTES, ["pageViews"]],
    low_conversion: [s.LOW_CONVERSION_WINDOW_MINUTES, ["orders", "checkouts"]],
    high_cart_abandonment: [s.HIGH_ABANDONMENT_WINDOW_MINUTES, ["abandoned", "converted"]],
    slow_pages: [s.SLOW_PAGES_WINDOW_MINUTES, ["samples"]],
  };
  for (const alert of driver.alerts) {
    const to = Date.parse(alert.occurredAt);
    const [minutes, keys] = windows[alert.type];
    const want: Record<string, number> = Object.fromEntries(keys.map((key) => [key, 0]));
    for (let m = to - minutes * MIN; m < to; m += MIN) {
      for (const key of keys) want[key] += tally.get(m)?.[key] ?? 0;
    }
    const got = Object.fromEntries(keys.map((key) => [key, alert.details[key]]));
    assert.deepEqual(got, want, `${alert.type} at ${alert.occurredAt}`);
  }
}

const countsOf = ({ activeUsers: _u, activeSessions: _s, ...counts }: StoredMinute) => counts;

Deno.test("partitions lagging each other arbitrarily: every fact counts as in time order, no minute is stored twice, a restore changes nothing, memory returns to the retention", () => {
  fc.assert(
    fc.property(scenario, (s) => {
      const settings = domainSettings({ ANALYTICS_RETENTION_MINUTES: 60, ANALYTICS_HISTORY_DAYS: s.historyDays });
      const { inOrder, lagged, end } = deliveries(s);
      const reference = deliver(settings, inOrder);
      const behind = deliver(settings, lagged);
      assert.equal(reference.state.tooLate, 0);

      // (a) No fact too late, none lost: each minute's counts are the in-order run's.
      assert.equal(behind.state.tooLate, 0, "no fact was too late");
      assert.equal(behind.state.facts, inOrder.length, "every fact counted once");
      const expected = everyMinute(reference.state, reference.history, settings);
      // (b) inside: no minute stored twice with different content.
      const got = everyMinute(behind.state, behind.history, settings);
      assert.deepEqual([...got.keys()].sort(), [...expected.keys()].sort(), "the same minutes");
      for (const [minute, want] of expected) {
        const have = got.get(minute)!;
        assert.deepEqual(countsOf(have), countsOf(want), `minute ${new Date(minute).toISOString()}`);
        // Minutes whose facts came after their sketches' 30 minutes keep only the estimate of the facts before.
        assert.ok(have.activeUsers <= want.activeUsers && have.activeSessions <= want.activeSessions);
      }

      // Business alerts: each over its whole window, whatever the lag.
      assertAlertFigures(reference, inOrder, settings);
      assertAlertFigures(behind, inOrder, settings);
      const raised = (d: GlobalDriver) =>
        d.alerts.map(({ type, occurredAt, details }) => ({ type, occurredAt, details }));
      assert.deepEqual(raised(behind), raised(reference), "the same alerts as in time order");

      // (c) Persisted and restored (or packed and unpacked) at arbitrary points: the same outputs and the same state.
      const reloads = new Set(s.reloads.map((n) => n % lagged.length));
      const restarted = deliver(settings, lagged, reloads);
      assert.deepEqual(restarted.history, behind.history, "the same history");
      assert.deepEqual(restarted.alerts, behind.alerts, "the same alerts");
      assert.deepEqual(
        JSON.parse(JSON.stringify(restarted.logic.persist(restarted.state))),
        JSON.parse(JSON.stringify(behind.logic.persist(behind.state))),
        "the same state",
      );

      // (d) Every partition's final watermark is in: the memory spans the retention, as in time order.
      assert.equal(behind.state.memoryFrom, reference.state.memoryFrom, "memory starts where the in-order run's does");
      const remembered = (state: GlobalState) =>
        state.minutes.filter((m) => state.memoryFrom === null || m.minute >= state.memoryFrom).map((m) => m.minute);
      assert.deepEqual(remembered(behind.state), remembered(reference.state));
      // The finished minutes the last watermark released are held one more round, as the in-order run's last ones are:
      // after the next minute's fact (and every partition's clock there) the memory is the in-order run's.
      const next: AnalyticsFact = {
        fact: "activity",
        factId: `events-0-${inOrder.length}-activity`,
        at: minuteOf(end) + MIN,
        userId: "u0",
        session: "s-next",
        type: "page_viewed",
      };
      reference.send(next);
      behind.send(next);
      for (let partition = 0; partition < s.partitions; partition++) {
        behind.send({ fact: "watermark", partition, partitions: s.partitions, clock: next.at });
      }
      const minutes = (state: GlobalState) => state.minutes.map((m) => m.minute);
      assert.deepEqual(minutes(behind.state), minutes(reference.state), "the same minutes in memory");
      assert.equal(behind.state.memoryFrom, reference.state.memoryFrom);
    }),
    { numRuns: 200 },
  );
});

// Examples of the alerts' part of the property, each of which once depended on the lag.

/** A page (or product) view of user `u<partition>` at `at`, the `offset`th record of its partition. */
function viewAt(at: number, partition: number, offset: number, type: "page_viewed" | "product_viewed"): AnalyticsFact {
  const id = `events-${partition}-${offset}-activity`;
  return { fact: "activity", factId: id, at, userId: `u${partition}`, session: `s${partition}`, type };
}

const mark = (partition: number, clock: number | null): GlobalMessage => ({
  fact: "watermark",
  partition,
  partitions: 2,
  clock,
});

/** The alerts a fresh global actor raises for `messages`: type, boundary and page views. */
function lowTraffic(messages: readonly GlobalMessage[]): [string, string, number][] {
  return deliver(domainSettings({}), messages).alerts.map((a) => [a.type, a.occurredAt, a.details.pageViews]);
}

const at = (minute: number) => new Date(T0 + minute * MIN).toISOString();

Deno.test("boundaries are evaluated from the earliest fact's minute, not from that of the first fact to arrive", () => {
  const early = viewAt(T0, 0, 0, "page_viewed");
  const later = viewAt(T0 + 10 * MIN, 1, 0, "page_viewed");
  const inOrder = lowTraffic([early, later]);
  assert.deepEqual(inOrder, [["low_traffic", at(10), 1]]);
  // Partition 1 checkpoints first: its 08:10 fact came before partition 0's 08:00 one.
  const lagged = [mark(1, 0), later, mark(1, later.at), mark(0, 0), early, mark(0, early.at), mark(0, later.at)];
  assert.deepEqual(lowTraffic(lagged), inOrder);
});

Deno.test("a quiet hour is evaluated per cooldown even when a watermark releases it after the next hour's facts came", () => {
  const first = viewAt(T0, 0, 0, "page_viewed");
  const next = viewAt(T0 + 70 * MIN, 0, 1, "page_viewed");
  const last = viewAt(T0 + 90 * MIN, 0, 2, "product_viewed");
  const inOrder = lowTraffic([first, next, last]);
  // 08:10 over the first view; then 09:10, where the hour's cooldown ends, over the quiet [09:00, 09:10) (the next view
  // is in minute 09:10), as minute-by-minute evaluation raises it (it came at 09:11, the boundary the next view re-armed).
  assert.deepEqual(inOrder, [["low_traffic", at(10), 1], ["low_traffic", at(70), 0]]);
  // Partition 0 publishes its watermarks late: every fact is here when they release the boundaries from 08:01.
  const lagged = [mark(1, null), mark(0, 0), first, next, last, mark(0, first.at), mark(0, next.at), mark(0, last.at)];
  assert.deepEqual(lowTraffic(lagged), inOrder);
});

Deno.test("low_traffic waits for a page view dated before its boundary, not for one that came early from a faster partition", () => {
  const products = Array.from({ length: 21 }, (_, m) => viewAt(T0 + m * MIN, 0, m, "product_viewed"));
  const page = viewAt(T0 + 15 * MIN, 1, 0, "page_viewed");
  const inOrder = lowTraffic([...products.slice(0, 16), page, ...products.slice(16)]);
  assert.deepEqual(inOrder, [["low_traffic", at(16), 1]]);
  // Partition 1's page view comes after partition 0's first view and before the rest; then partition 1's idle clock.
  const [first, ...rest] = products.flatMap((p) => [p, mark(0, p.at)]);
  const lagged = [mark(0, 0), mark(1, 0), first, page, mark(1, page.at), ...rest];
  assert.deepEqual(lowTraffic([...lagged, mark(1, products.at(-1)!.at)]), inOrder);
});

Deno.test("a state persisted when only whether a page view had arrived was kept restores with page views from its first event", () => {
  const driver = deliver(domainSettings({}), [
    viewAt(T0, 0, 0, "product_viewed"),
    viewAt(T0 + 5 * MIN, 0, 1, "page_viewed"),
  ]);
  assert.equal(driver.state.firstPageViewAt, T0 + 5 * MIN);
  const { firstPageViewAt: _, ...persisted } = JSON.parse(JSON.stringify(driver.logic.persist(driver.state)));
  assert.equal(driver.logic.restore({ ...persisted, pageViewsSeen: true }).firstPageViewAt, T0);
  assert.equal(driver.logic.restore({ ...persisted, pageViewsSeen: false }).firstPageViewAt, null);
  assert.equal("pageViewsSeen" in driver.logic.restore({ ...persisted, pageViewsSeen: true }), false);
});

Deno.test("a held evaluation does not fire minute by minute up to a clock a faster partition moved days ahead", () => {
  const driver = deliver(domainSettings({}), [mark(0, 0), mark(1, 0), viewAt(T0, 0, 0, "page_viewed"), mark(0, T0)]);
  // Partition 1's import runs two days ahead while partition 0's watermark holds the evaluations at 08:01.
  const ahead = T0 + 2 * DAY;
  for (let i = 0; i < 100; i++) driver.send(viewAt(ahead + i * MIN, 1, i, "page_viewed"));
  assert.equal(driver.state.heldFrom, T0 + MIN, "still held");
  // One look per 10 minutes of the jump at most, then one per fact's minute: it used to be one per minute (2,979).
  assert.ok(driver.fired <= (2 * DAY) / (10 * MIN) + 100 + 10, `fired ${driver.fired} times`);
  // Released, every boundary from 08:01 is evaluated, as in time order.
  driver.send(mark(0, ahead + 99 * MIN));
  driver.send(mark(1, ahead + 99 * MIN));
  assert.equal(driver.state.heldFrom, null);
  assert.equal(driver.state.evaluatedTo, ahead + 99 * MIN);
});

Deno.test("a held evaluation is not looked at again for every fact from a partition behind the others", () => {
  const driver = deliver(domainSettings({}), [mark(0, 0), mark(1, 0), viewAt(T0, 0, 0, "page_viewed"), mark(0, T0)]);
  // Both partitions' facts, five a second each for five minutes, partition 1's four minutes ahead of partition 0's, and
  // none of partition 0's watermarks yet: 08:01 stays held.
  const facts = Array.from({ length: 1_500 }, (_, i) => [
    viewAt(T0 + 5 * MIN + i * 200, 1, i, "page_viewed"),
    viewAt(T0 + MIN + i * 200, 0, i + 1, "page_viewed"),
  ]).flat();
  for (const fact of facts) driver.send(fact);
  assert.equal(driver.state.heldFrom, T0 + MIN, "still held");
  // The poll (after the latest fact's minute) looks again. Each of partition 0's facts re-armed the timer to its own
  // minute's boundary, passed already, so that the next fact fired it: 1,508 firings, each evaluating nothing.
  assert.ok(driver.fired <= 20, `fired ${driver.fired} times`);
  // Released, every boundary from 08:01 is evaluated, as in time order.
  const last = T0 + 5 * MIN + 1_499 * 200;
  driver.send(mark(0, last));
  driver.send(mark(1, last));
  assert.equal(driver.state.heldFrom, null);
  assert.equal(driver.state.evaluatedTo, minuteOf(last));
});

Deno.test("a held evaluation is released by the engine's idle advance once the facts stop: within the poll's 10 minutes of clock, with the alerts of time order", () => {
  // Partition 0 publishes two page views a minute for 40 minutes and its watermark each minute; partition 1 had one
  // page view at 08:00:01, and the idle advance passes its watermark before its next checkpoint publishes one.
  const pageView = (partition: number, offset: number, at: number): AnalyticsFact => ({
    ...viewAt(at, partition, offset, "page_viewed"),
    userId: `u${partition}-${offset}`,
  });
  const first = pageView(1, 0, T0 + 1_000);
  const busy = Array.from({ length: 80 }, (_, i) => pageView(0, i, T0 + i * 30_000));
  const end = T0 + 120 * MIN;
  /** The partition's clock moving idle from `from` to `to` in steps of 10 s, `idle` told each step's clock first. */
  const idleTo = (driver: GlobalDriver, from: number, to: number, idle: (clock: number) => void = () => {}) => {
    for (let clock = from; clock <= to; clock += 10_000) {
      idle(clock);
      driver.advanceTo(clock);
    }
  };
  const raised = (d: GlobalDriver) => d.alerts.map(({ type, occurredAt, details }) => ({ type, occurredAt, details }));

  // In time order on one partition, nothing holds the evaluations back.
  const reference = deliver(domainSettings({}), [first, ...busy].sort((a, b) => a.at - b.at));
  const quietFrom = T0 + 40 * MIN;
  idleTo(reference, quietFrom, end);
  assert.deepEqual(reference.alerts.map((a) => [a.type, a.occurredAt, a.details.pageViews]), [
    ["low_traffic", at(10), 21],
    ["low_traffic", at(70), 0],
  ]);

  let idle = -Infinity;
  const driver = driveGlobal(domainSettings({}), { sourcesWatermark: () => idle });
  for (const message of [mark(0, 0), mark(1, 0), first, mark(1, first.at)]) driver.send(message);
  busy.forEach((fact, i) => {
    driver.send(fact);
    if (i % 2 === 1) driver.send(mark(0, fact.at));
  });
  assert.equal(driver.state.heldFrom, T0 + MIN, "held by partition 1's watermark");
  // Idle, while partition 1 still has records to handle: the idle advance releases nothing, the poll backs off.
  const idleFrom = T0 + 81 * MIN;
  idleTo(driver, quietFrom, idleFrom);
  assert.equal(driver.state.heldFrom, T0 + MIN, "still held");
  assert.deepEqual(driver.alerts, []);
  // Partition 1 has nothing left: the idle advance follows the clock, and the next poll (at most 10 minutes of clock
  // apart) evaluates every boundary since.
  let released: number | undefined;
  idleTo(driver, idleFrom + 10_000, end, (clock) => {
    idle = clock;
    if (released === undefined && driver.state.heldFrom === null) released = clock - 10_000;
  });
  assert.ok(
    released !== undefined && released <= idleFrom + 10 * MIN,
    `released at ${new Date(released!).toISOString()}`,
  );
  assert.equal(driver.state.heldFrom, null);
  assert.deepEqual(raised(driver), raised(reference), "the alerts of time order");
});
