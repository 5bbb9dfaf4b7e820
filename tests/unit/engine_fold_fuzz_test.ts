/**
 * Differential property test: the user actor run by the real ActorRuntime (tests/helpers/runtime.ts Harness: the
 * in-memory log and checkpoint store, a simulated wall) ends where the reference fold (tests/helpers/fold.ts) and the
 * per-partition replay (tests/helpers/replay.ts) end.
 *
 * Generated (fast-check, seeded): 3–5 users, 5–30 events (product_viewed, product_added_to_cart,
 * product_removed_from_cart, checkout_started, order_completed with a few reused orderIds, page_viewed, and re-sends
 * of earlier events under the same eventId). Event times mostly increase, by a few seconds or minutes, or by gaps
 * around the 30-minute abandonment deadline (exactly 30 min, ±1 s, and ties); some events are late by up to 40 minutes
 * (their `receivedAt` is the arrival time). They are appended in arrival order to a log of 1 or 2 partitions, with
 * a random checkpoint size, optionally crashing and restarting the runtime at a random point (memory lost, resumed
 * from the last checkpoint). The wall never moves the clocks (a huge `idleClockMs`), except in the variant that at the
 * end moves the wall past every deadline and runs housekeeping, which the fold models with `until`.
 *
 * Compared: every user's persisted state in the store with the fold's (and with `replayPartition` over the log's
 * records, without the variant), and the alerts, by alertId → payload, in the store and on the alerts topic (a
 * re-published alert must be identical) with the fold's user alerts.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { userLogic } from "../../actors/user.ts";
import { fold } from "../helpers/fold.ts";
import { replayPartition } from "../helpers/replay.ts";
import { Harness } from "../helpers/runtime.ts";
import { parseJson } from "../../engine/json_parse.ts";

const MIN = 60_000;
const RUNS = 150;
const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);
const PRODUCTS = ["p1", "p2", "p3"];
const PRICES = [0.1, 3, 19.99];

type Step =
  | { kind: "forward"; ms: number }
  | { kind: "late"; ms: number };

interface Spec {
  user: number;
  type: string;
  product: number;
  quantity: number;
  price: number;
  order: number;
  step: Step;
  resend: number | null;
}

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 300 }).map((s) => ({ kind: "forward" as const, ms: s * 1000 })) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(0, 30 * MIN, 30 * MIN - 1000, 30 * MIN + 1000, 30 * MIN + 1, 31 * MIN, 29 * MIN)
      .map((ms) => ({ kind: "forward" as const, ms })),
  },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 40 * 60 }).map((s) => ({ kind: "late" as const, ms: s * 1000 })) },
  { weight: 1, arbitrary: fc.constantFrom(30 * MIN, 40 * MIN).map((ms) => ({ kind: "late" as const, ms })) },
);

const specArb: fc.Arbitrary<Spec> = fc.record({
  user: fc.nat(4),
  type: fc.constantFrom(
    "product_viewed",
    "product_added_to_cart",
    "product_added_to_cart",
    "product_removed_from_cart",
    "checkout_started",
    "order_completed",
    "page_viewed",
  ),
  product: fc.nat(PRODUCTS.length - 1),
  quantity: fc.integer({ min: 1, max: 3 }),
  price: fc.nat(PRICES.length - 1),
  order: fc.nat(3),
  step: stepArb,
  resend: fc.option(fc.nat(29), { freq: 8 }),
});

const caseArb = fc.record({
  users: fc.integer({ min: 3, max: 5 }),
  specs: fc.array(specArb, { minLength: 5, maxLength: 30 }),
  partitions: fc.constantFrom(1, 2),
  checkpointMaxMessages: fc.constantFrom(1, 3, 1_000),
  crashAt: fc.option(fc.nat(30), { freq: 2 }),
  crashDelayMs: fc.nat(15),
  advanceWall: fc.boolean(),
});

type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

/** The events of a case, in arrival order. */
function eventsOf(c: Case): Record<string, unknown>[] {
  const events: Record<string, unknown>[] = [];
  let cursor = T0;
  let n = 0;
  for (const s of c.specs) {
    if (s.resend !== null && s.resend < events.length) {
      events.push(events[s.resend]); // the same event again, eventId and all
      continue;
    }
    let occurred: number;
    if (s.step.kind === "forward") {
      cursor += s.step.ms;
      occurred = cursor;
    } else occurred = cursor - s.step.ms;
    const userId = `u${s.user % c.users}`;
    const productId = PRODUCTS[s.product];
    const price = PRICES[s.price];
    const properties: Record<string, unknown> = s.type === "product_viewed"
      ? { productId }
      : s.type === "product_added_to_cart"
      ? { productId, quantity: s.quantity, price }
      : s.type === "product_removed_from_cart"
      ? { productId, quantity: s.quantity }
      : s.type === "checkout_started"
      ? {}
      : s.type === "order_completed"
      ? {
        orderId: `o${s.order}`,
        items: [{ productId, quantity: s.quantity, price }],
        total: Math.round(s.quantity * price * 100) / 100,
      }
      : { url: `/${productId}` };
    const eventId = `00000000-0000-4000-8000-${(++n).toString(16).padStart(12, "0")}`;
    events.push({
      eventId,
      type: s.type,
      userId,
      occurredAt: new Date(occurred).toISOString(),
      receivedAt: new Date(cursor).toISOString(),
      properties,
    });
  }
  return events;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What the runs exercised, to check the generator reaches the interesting cases. */
const seen = { runs: 0, crashes: 0, wallAdvances: 0, alerts: new Map<string, number>() };

async function check(c: Case, maxActors?: number): Promise<void> {
  const events = eventsOf(c);
  const lastArrival = Math.max(...events.map((e) => Date.parse(e.receivedAt as string)));
  const grace = c.advanceWall ? 60_000 : 1e12;
  const h = new Harness(userLogic, c.partitions, c.checkpointMaxMessages, { idleClockMs: grace, maxActors });
  // Records are stamped with the wall when appended; an event dated over 24 h after that is refused. The wall stays
  // at T0 (every event is within hours of it) and so never makes a partition idle while events arrive.
  h.wall = T0;
  await h.start();
  let stopped = false;
  try {
    for (let i = 0; i < events.length; i++) {
      if (c.crashAt === i) {
        await sleep(c.crashDelayMs);
        await h.crash();
        await h.start("restarted");
      }
      const e = events[i];
      h.send(e.userId as string, e);
    }
    await h.drained();
    let until: number | undefined;
    if (c.advanceWall) {
      // Past every deadline (30 min after the last event) by the idle clock, less its grace.
      h.wall = lastArrival + 2 * 60 * MIN + grace;
      until = h.wall - grace;
      await sleep(5); // the consumer reads once more at the new wall (lastReadAt)
      await h.runtime.housekeep();
      await h.runtime.housekeep();
    }
    await h.stop();
    stopped = true;

    const reference = await fold(events, { partitions: c.partitions, until });
    const users = [...new Set(events.map((e) => e.userId as string))].sort();
    assert.deepEqual([...reference.users.keys()].sort(), users);
    for (const userId of users) {
      assert.deepEqual((await h.store.read("user", userId))?.state, reference.persisted("user", userId), userId);
    }
    const stored = [...h.store.rows.keys()].filter((k) => k.startsWith("user/")).sort();
    assert.deepEqual(stored, users.map((u) => `user/${u}`));

    if (!c.advanceWall) {
      // The per-partition replay of the log's records agrees too.
      for (const tp of h.log.topicPartitions([h.topics.events])) {
        const { states } = await replayPartition(userLogic, h.log.read(tp, 0));
        for (const [key, state] of states) {
          assert.deepEqual(
            (await h.store.read("user", key))?.state,
            parseJson(JSON.stringify(userLogic.persist(state as never))),
            `replay: ${key}`,
          );
        }
      }
    }

    const expected = new Map<string, unknown>();
    for (const a of reference.alerts) {
      if (a.subject.kind !== "user") continue;
      assert.ok(!expected.has(a.alertId), `fold: one alert per id (${a.alertId})`);
      expected.set(a.alertId, a);
    }
    seen.runs++;
    if (c.crashAt !== null && c.crashAt < events.length) seen.crashes++;
    if (c.advanceWall) seen.wallAdvances++;
    for (const a of expected.values()) {
      const type = (a as { type: string }).type;
      seen.alerts.set(type, (seen.alerts.get(type) ?? 0) + 1);
    }
    const published = new Map<string, unknown>();
    for (const record of h.log.all(h.topics.alerts)) {
      const a = JSON.parse(new TextDecoder().decode(record.value!));
      if (published.has(a.alertId)) assert.deepEqual(a, published.get(a.alertId), `republished ${a.alertId}`);
      published.set(a.alertId, a);
    }
    const inStore = new Map([...h.store.alerts].map(([id, a]) => [id, parseJson(JSON.stringify(a))]));
    const sorted = (m: Map<string, unknown>) => new Map([...m].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0));
    assert.deepEqual(sorted(published), sorted(expected), "published alerts");
    assert.deepEqual(sorted(inStore), sorted(expected), "stored alerts");
  } finally {
    if (!stopped) await h.stop().catch(() => {});
  }
}

Deno.test({
  name: "the user actor in ActorRuntime (crashes, late events, deadline ties) ends where the reference fold does",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await fc.assert(fc.asyncProperty(caseArb, (c) => check(c)), { seed: 42, numRuns: RUNS });
    assert.equal(seen.runs, RUNS);
    assert.ok(seen.crashes >= RUNS / 10, `crashes: ${seen.crashes}`);
    assert.ok(seen.wallAdvances >= RUNS / 4, `wall advances: ${seen.wallAdvances}`);
    for (const type of ["cart_abandoned", "checkout_abandoned"]) {
      assert.ok((seen.alerts.get(type) ?? 0) >= 10, `${type} alerts: ${seen.alerts.get(type) ?? 0}`);
    }
  },
});

Deno.test({
  name:
    "with MAX_ACTORS=1 (timers due at once fire a key at a time, checkpointed and passivated between) it ends there too",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // At seed 42, some 50 of these runs checkpoint between two keys' due timers (a timer slice).
    await fc.assert(fc.asyncProperty(caseArb, (c) => check(c, 1)), { seed: 42, numRuns: RUNS });
  },
});
