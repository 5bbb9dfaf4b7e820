import assert from "node:assert/strict";
import type { ActorContext } from "../../engine/actor.ts";
import { ValidationError } from "../../engine/errors.ts";
import {
  createGlobalLogic,
  EVALUATE_TIMER,
  globalLogic,
  type PersistedGlobal,
  recentTotals,
} from "../../actors/global.ts";
import type { AnalyticsFact } from "../../actors/facts.ts";
import { domainSettings } from "../../actors/settings.ts";
import { ABANDONMENT_DEDUPE_MINUTES } from "../../actors/rollups.ts";
import { EventBuilder, fold } from "../helpers/fold.ts";
import { parseJson } from "../../engine/json_parse.ts";
import { driveGlobal, runGlobal } from "../helpers/global_actor.ts";

const MIN = 60;
const HOUR = 3600;
const T0 = Date.UTC(2026, 0, 5, 10, 0, 0);
const iso = (ms: number) => new Date(ms).toISOString();

function typesOf(alerts: { type: string; occurredAt: string }[], type: string): string[] {
  return alerts.filter((a) => a.type === type).map((a) => a.occurredAt);
}

Deno.test("global rollups: events by type, orders, revenue, active users and sessions per minute; revenue by category in 5-minute windows", async () => {
  const b = new EventBuilder(T0);
  const order = (
    user: string,
    seconds: number,
    items: { productId: string; quantity: number; price: number; category?: string }[],
  ) =>
    b.event("order_completed", user, seconds, {
      orderId: `o-${user}-${seconds}`,
      items,
      total: items.reduce((t, i) => t + i.quantity * i.price, 0),
    });
  const r = await fold([
    b.event("page_viewed", "a", 0, { url: "/" }),
    b.event("page_viewed", "a", 10, { url: "/" }),
    b.event("page_viewed", "b", 20, { url: "/" }),
    b.event("product_viewed", "c", 30, { productId: "p1" }),
    order("a", 40, [{ productId: "p1", quantity: 2, price: 10, category: "shoes" }, {
      productId: "p2",
      quantity: 1,
      price: 5,
    }]),
    order("b", 70, [{ productId: "p3", quantity: 1, price: 2.5, category: "hats" }]),
    order("c", 6 * MIN, [{ productId: "p1", quantity: 1, price: 10, category: "shoes" }]),
  ]);
  const g = r.global!;
  assert.deepEqual(g.minutes.map((m) => [iso(m.minute), m.events, m.orders, m.revenueMillis]), [
    [iso(T0), { page_viewed: 3, product_viewed: 1, order_completed: 1 }, 1, 25_000],
    [iso(T0 + 60_000), { order_completed: 1 }, 1, 2_500],
    [iso(T0 + 6 * 60_000), { order_completed: 1 }, 1, 10_000],
  ]);
  const persisted = r.persisted("global", "global") as PersistedGlobal;
  assert.equal(persisted.minutes[0].activeUsers, 3);
  assert.equal(persisted.minutes[0].activeSessions, 3);
  assert.deepEqual(persisted.revenueByCategory, [
    { windowStart: iso(T0), windowEnd: iso(T0 + 5 * 60_000), revenue: { shoes: 20, unknown: 5, hats: 2.5 } },
    { windowStart: iso(T0 + 5 * 60_000), windowEnd: iso(T0 + 10 * 60_000), revenue: { shoes: 10 } },
  ]);
  const last15 = recentTotals(g, 15)!;
  assert.equal(last15.orders, 3);
  assert.equal(last15.revenue, 37.5);
  assert.equal(last15.activeUsers, 3);
  assert.equal(last15.pageViews, 3);
  assert.deepEqual(last15.revenueByCategory, { shoes: 30, unknown: 5, hats: 2.5 });
  assert.equal(last15.funnel.viewToOrder, 3);
  assert.equal(recentTotals(g, 1)!.orders, 1);
});

Deno.test("low_conversion: orders / checkouts below 2% over 15 minutes with enough checkouts, at most once per hour", async () => {
  const b = new EventBuilder(T0);
  const checkouts = Array.from({ length: 160 }, (_, i) => b.event("checkout_started", `u${i}`, i * 30, {}));
  const r = await fold(checkouts, { until: T0 + 3 * HOUR * 1000 });
  assert.deepEqual(typesOf(r.alerts, "low_conversion"), [iso(T0 + 10 * 60_000), iso(T0 + 70 * 60_000)]);
  const [first] = r.alerts.filter((a) => a.type === "low_conversion");
  assert.deepEqual(first.details, { windowMinutes: 15, orders: 0, checkouts: 20, ratio: 0, threshold: 0.02 });
  assert.deepEqual(first.subject, { kind: "global", id: "global" });
  assert.equal(first.alertId, `timer-global-global-evaluate-${T0 + 10 * 60_000}-low_conversion`);

  // With an order every 10 minutes (≥ 1 per 30 checkouts in any window: > 2%), or fewer checkouts than the sample, nothing.
  const healthy = [...checkouts];
  for (let i = 0; i < 8; i++) {
    healthy.push(b.event("order_completed", `u${i * 20}`, i * 600 + 5, {
      orderId: `o${i}`,
      items: [{ productId: "p", quantity: 1, price: 1 }],
      total: 1,
    }));
  }
  healthy.sort((x, y) => String(x.occurredAt).localeCompare(String(y.occurredAt)));
  const ok = await fold(healthy, { until: T0 + 3 * HOUR * 1000 });
  assert.deepEqual(typesOf(ok.alerts, "low_conversion"), []);
  const few = await fold(checkouts.slice(0, 19), { until: T0 + 3 * HOUR * 1000 });
  assert.deepEqual(typesOf(few.alerts, "low_conversion"), []);
});

/** Ten users add to their carts, one a second from T0; the first `converted` start a checkout from `checkoutAt` on. */
function tenCarts(b: EventBuilder, converted: number, checkoutAt: number) {
  const events = Array.from(
    { length: 10 },
    (_, i) => b.event("product_added_to_cart", `u${i}`, i, { productId: "p", quantity: 1, price: 1 }),
  );
  for (let i = 0; i < converted; i++) events.push(b.event("checkout_started", `u${i}`, checkoutAt + i, {}));
  return events;
}

Deno.test("high_cart_abandonment: more than 80% of cart outcomes abandoned over 15 minutes", async () => {
  const b = new EventBuilder(T0);
  const carts = (converted: number) => tenCarts(b, converted, 60);
  const all = await fold(carts(0), { until: T0 + 2 * HOUR * 1000 });
  assert.deepEqual(typesOf(all.alerts, "high_cart_abandonment"), [iso(T0 + 31 * 60_000)]);
  assert.deepEqual(all.alerts.find((a) => a.type === "high_cart_abandonment")!.details, {
    windowMinutes: 15,
    abandoned: 10,
    converted: 0,
    ratio: 1,
    threshold: 0.8,
  });
  const eightyPercent = await fold(carts(2), { until: T0 + 2 * HOUR * 1000 });
  assert.deepEqual(typesOf(eightyPercent.alerts, "high_cart_abandonment"), [], "8 of 10 is not more than 80%");
});

Deno.test("low_traffic: fewer than 100 page views in 10 minutes; hourly while idle, then silent; never without page views", async () => {
  const b = new EventBuilder(T0);
  const views = Array.from({ length: 5 }, (_, i) => b.event("page_viewed", `u${i}`, i, { url: "/" }));
  const r = await fold(views, { until: T0 + 48 * HOUR * 1000 });
  const lows = typesOf(r.alerts, "low_traffic");
  assert.equal(lows[0], iso(T0 + 10 * 60_000));
  // Every minute until the longest window (15 min) has passed the last view, then when each hour's cooldown ends (the
  // boundary minute-by-minute evaluation raises it at; it came at 77, an hour after the evaluation of minute 17).
  assert.equal(lows[1], iso(T0 + 70 * 60_000));
  assert.equal(lows.length, 25, "one per hour for the retention (24 h), then the timer stops");
  assert.equal(lows.at(-1), iso(T0 + (24 * 60 + 10) * 60_000));
  assert.deepEqual(lows, Array.from({ length: 25 }, (_, k) => iso(T0 + (10 + 60 * k) * 60_000)));
  const busy = Array.from({ length: 120 }, (_, i) => b.event("page_viewed", `u${i}`, i * 5, { url: "/" }));
  const fine = await fold(busy, { until: T0 + 10 * 60_000 });
  assert.deepEqual(typesOf(fine.alerts, "low_traffic"), []);
  const orders = await fold(
    [b.event("order_completed", "u", 0, {
      orderId: "o",
      items: [{ productId: "p", quantity: 1, price: 1 }],
      total: 1,
    })],
    { until: T0 + 5 * HOUR * 1000 },
  );
  assert.deepEqual(orders.alerts, [], "a feed without page views is not low traffic");
});

Deno.test("slow_pages: average loadTime above 3 s over 5 minutes, with a minimum sample", async () => {
  const b = new EventBuilder(T0);
  const pages = (n: number, loadTime: number) =>
    Array.from({ length: n }, (_, i) => b.event("page_viewed", `u${i}`, i, { url: "/", loadTime }));
  const slow = await fold(pages(10, 3.5), { until: T0 + 5 * 60_000 });
  assert.deepEqual(typesOf(slow.alerts, "slow_pages"), [iso(T0 + 60_000)]);
  assert.deepEqual(slow.alerts.find((a) => a.type === "slow_pages")!.details, {
    windowMinutes: 5,
    averageLoadTimeSeconds: 3.5,
    samples: 10,
    threshold: 3,
  });
  assert.deepEqual(typesOf((await fold(pages(9, 3.5), { until: T0 + 5 * 60_000 })).alerts, "slow_pages"), []);
  assert.deepEqual(typesOf((await fold(pages(10, 3), { until: T0 + 5 * 60_000 })).alerts, "slow_pages"), []);
  const strict = domainSettings({ SLOW_PAGES_SECONDS: 1, SLOW_PAGES_MIN_SAMPLES: 1 });
  assert.equal(
    typesOf((await fold(pages(1, 1.5), { settings: strict, until: T0 + 5 * 60_000 })).alerts, "slow_pages").length,
    1,
  );
});

/** `n` checkouts by distinct users from `seconds` on, one a second, and one order a few seconds after them. */
function checkoutsAndAnOrder(b: EventBuilder, seconds: number, n: number) {
  const events = Array.from({ length: n }, (_, i) => b.event("checkout_started", `c${i}`, seconds + i, {}));
  events.push(b.event("order_completed", "buyer", seconds + n + 2, {
    orderId: `o-${seconds}`,
    items: [{ productId: "p", quantity: 1, price: 1 }],
    total: 1,
  }));
  return events;
}

Deno.test("low_conversion: 1 order in 50 checkouts is exactly 2%, not below it; 1 in 51 is", async () => {
  const b = new EventBuilder(T0);
  const exact = await fold(checkoutsAndAnOrder(b, 0, 50), { until: T0 + 2 * HOUR * 1000 });
  assert.deepEqual(typesOf(exact.alerts, "low_conversion"), []);
  const below = await fold(checkoutsAndAnOrder(b, 0, 51), { until: T0 + 2 * HOUR * 1000 });
  const raised = below.alerts.filter((a) => a.type === "low_conversion");
  // Evaluated at each minute boundary over the 15 minutes before it: first at T0 + 1 min, then within the hour's cooldown.
  assert.deepEqual(raised.map((a) => a.occurredAt), [iso(T0 + 60_000)]);
  assert.deepEqual(raised[0].details, { windowMinutes: 15, orders: 1, checkouts: 51, ratio: 1 / 51, threshold: 0.02 });
});

Deno.test("low_traffic: exactly 100 page views in 10 minutes is not fewer than 100; 90 is", async () => {
  const b = new EventBuilder(T0);
  // Ten page views a minute for 30 minutes: every 10-minute window within them holds exactly 100.
  const views = [];
  for (let minute = 0; minute < 30; minute++) {
    for (let i = 0; i < 10; i++) views.push(b.event("page_viewed", `u${i}`, minute * MIN + i * 6, { url: "/" }));
  }
  const r = await fold(views, { until: T0 + 40 * 60_000 });
  const lows = r.alerts.filter((a) => a.type === "low_traffic");
  // The first window that is short of 100 ends at T0 + 31 min: minutes 21 to 29 hold 90 (minute 30 has none).
  assert.deepEqual(lows.map((a) => a.occurredAt), [iso(T0 + 31 * 60_000)]);
  assert.deepEqual(lows[0].details, { windowMinutes: 10, pageViews: 90, threshold: 100 });
});

Deno.test("business alerts: the hourly cooldown is per type, so different types raise within the same hour", async () => {
  const b = new EventBuilder(T0);
  const events = [
    // Minute 0: ten slow page views (3.5 s each), and no more page views: slow_pages, then low_traffic.
    ...Array.from({ length: 10 }, (_, i) => b.event("page_viewed", `u${i}`, i, { url: "/", loadTime: 3.5 })),
    // Minute 20: 1 order in 51 checkouts (below 2%): low_conversion.
    ...checkoutsAndAnOrder(b, 20 * MIN, 51),
  ];
  const r = await fold(events, { until: T0 + 2 * HOUR * 1000 });
  const firstHour = r.alerts.filter((a) => a.subject.kind === "global" && Date.parse(a.occurredAt) < T0 + HOUR * 1000);
  assert.deepEqual(firstHour.map((a) => [a.type, a.occurredAt]), [
    ["slow_pages", iso(T0 + 60_000)], // window of 5 minutes ending at the first boundary after them
    ["low_traffic", iso(T0 + 10 * 60_000)], // the first boundary with 10 minutes of history: 10 views
    ["low_conversion", iso(T0 + 21 * 60_000)], // the first boundary after minute 20
  ]);
});

Deno.test("the global actor counts a replayed fact once, keeps its evaluation timer at the next minute, and rejects other records", () => {
  const timers = new Map<string, number>();
  const ctx = (now: number): ActorContext => ({
    now: () => now,
    emit: () => {},
    outputId: (rule) => `x-${rule}`,
    setTimer: (name, at) => timers.set(name, at),
    cancelTimer: (name) => timers.delete(name),
    timer: (name) => timers.get(name),
  });
  const fact = (offset: number): AnalyticsFact => ({
    fact: "activity",
    factId: `events-1-${offset}-a`,
    at: T0 + offset * 1000,
    userId: "u",
    session: "u/auto-1",
    type: "page_viewed",
  });
  const logic = createGlobalLogic();
  let state = logic.initial("global");
  for (const offset of [1, 2, 1, 3, 2]) {
    state = logic.handle(state, fact(offset), ctx(T0 + offset * 1000)) as typeof state;
  }
  assert.equal(state.facts, 3);
  assert.equal(state.duplicates, 2);
  assert.equal(state.minutes[0].pageViews, 3);
  assert.equal(timers.get(EVALUATE_TIMER), T0 + 60_000);
  const record = (value: unknown) => ({
    topic: "analytics",
    partition: 0,
    offset: 0,
    key: "global",
    value: new TextEncoder().encode(JSON.stringify(value)),
    headers: {},
    timestamp: 0,
  });
  assert.deepEqual(globalLogic.decode(record(fact(1))), fact(1));
  assert.throws(() => globalLogic.decode(record({ ...fact(1), type: "inventory_updated" })), ValidationError);
  assert.throws(() => globalLogic.decode(record({ fact: "product_viewed" })), ValidationError);
  const restored = globalLogic.restore(parseJson(JSON.stringify(globalLogic.persist(state))));
  assert.deepEqual(globalLogic.persist(restored), globalLogic.persist(state));
});

Deno.test("an event dated minutes after its receipt (a fast client clock) neither empties the latest windows nor raises low_traffic", async () => {
  const b = new EventBuilder(T0);
  // 12 page views a minute (120 in any 10 minutes, above the 100 of low_traffic) for 21 minutes.
  const views = (from: number, to: number) => {
    const events = [];
    for (let s = from; s < to; s += 5) events.push(b.event("page_viewed", `u${s % 7}`, s, { url: "/" }));
    return events;
  };
  // One client's clock is 4.5 minutes fast (accepted: under MAX_EVENT_FUTURE_MS), received at minute 20.
  const skewed = {
    ...b.event("page_viewed", "skewed", 20 * MIN, { url: "/" }),
    occurredAt: iso(T0 + 24.5 * MIN * 1000),
  };
  const r = await fold([...views(0, 20 * MIN), skewed, ...views(20 * MIN + 1, 21 * MIN)], { partitions: 4 });
  assert.deepEqual(typesOf(r.alerts, "low_traffic"), [], "the traffic never fell");
  const g = r.global!;
  assert.equal(g.lastEventAt, T0 + (21 * MIN - 4) * 1000, "the windows end at the latest event as received");
  assert.equal(recentTotals(g, 1)!.pageViews, 12, "minute 20's views (the skewed one is dated in minute 24)");
  assert.equal(recentTotals(g, 5)!.pageViews, 60);
  // Once the wall reaches its minute, the skewed view counts there.
  const later = await fold([...views(0, 20 * MIN), skewed, ...views(20 * MIN + 1, 25 * MIN)], { partitions: 4 });
  assert.equal(recentTotals(later.global!, 1)!.pageViews, 13);
  assert.deepEqual(typesOf(later.alerts, "low_traffic"), []);
});

Deno.test("revenue by category: the latest 12 windows are the hour up to the latest event, quiet windows included", async () => {
  const b = new EventBuilder(T0);
  const order = (id: string, seconds: number, category: string, price: number) =>
    b.event("order_completed", "u1", seconds, {
      orderId: id,
      items: [{ productId: `p-${id}`, quantity: 1, price, category }],
      total: price,
    });
  // An order at 10:00, nothing for an hour, a page view at 11:07 and an order at 11:31.
  const r = await fold([
    order("o1", 0, "shoes", 10),
    b.event("page_viewed", "u2", 67 * MIN, { url: "/" }),
    order("o2", 91 * MIN, "hats", 7),
  ]);
  const windows = (r.persisted("global", "global") as PersistedGlobal).revenueByCategory;
  const start = (minute: number) => iso(T0 + minute * 60_000);
  assert.deepEqual(
    windows.map((w) => [w.windowStart, w.windowEnd]),
    Array.from({ length: 12 }, (_, i) => [start(35 + 5 * i), start(40 + 5 * i)]),
    "twelve consecutive windows, the last one holding the latest event",
  );
  assert.deepEqual(windows.at(-1)!.revenue, { hats: 7 });
  assert.ok(
    windows.slice(0, -1).every((w) => Object.keys(w.revenue).length === 0),
    "10:00's order is over an hour old",
  );
});

Deno.test("revenue by category leaves out an order dated after the latest event as received (a fast client clock) until its window comes", async () => {
  const b = new EventBuilder(T0);
  // Received at 10:03:30 from a client whose clock is 1 or 4.5 minutes fast (accepted: under MAX_EVENT_FUTURE_MS).
  const skewed = (id: string, datedSeconds: number, category: string, price: number) => ({
    ...b.event("order_completed", "fast", 3.5 * MIN, {
      orderId: id,
      items: [{ productId: `p-${id}`, quantity: 1, price, category }],
      total: price,
    }),
    occurredAt: iso(T0 + datedSeconds * 1000),
  });
  const early = [b.event("page_viewed", "u1", MIN, { url: "/" }), skewed("o1", 4.5 * MIN, "hats", 7)];
  const late = skewed("o2", 8 * MIN, "shoes", 10);
  const windowsOf = (r: Awaited<ReturnType<typeof fold>>) =>
    (r.persisted("global", "global") as PersistedGlobal).revenueByCategory.map((w) => [w.windowStart, w.revenue]);

  // The windows end with the minute of the latest event as received, 10:03: neither order is dated before that.
  const now = await fold([...early, late]);
  assert.deepEqual(now.global!.lastEventAt, T0 + 3.5 * MIN * 1000);
  assert.deepEqual(windowsOf(now), [[iso(T0), {}]], "nothing dated after the latest event is in a window");
  // Once the traffic reaches their minutes, each counts in its own window.
  const later = await fold([...early, late, b.event("page_viewed", "u1", 9 * MIN, { url: "/" })]);
  assert.deepEqual(windowsOf(later), [[iso(T0), { hats: 7 }], [iso(T0 + 5 * MIN * 1000), { shoes: 10 }]]);
});

/** User `u<i>`'s cart abandonment, `spacingMs` × i after T0, with the id its timer gives it. */
function cartAbandonment(i: number, spacingMs: number): AnalyticsFact {
  const at = T0 + i * spacingMs;
  return { fact: "abandonment", factId: `timer-user-u${i}-cart-${at}-a`, at, userId: `u${i}`, stage: "cart" };
}

Deno.test("a replayed abandonment fact counts once however many other users' abandonments came in between", () => {
  // Abandonment facts come from user timers, so their ids carry no source offset: the global actor hears them from every
  // user partition, and a replayed copy used to be recognised only among the last FACT_DEDUPE_RECENT_IDS (1024) of them.
  const abandoned = (i: number) => cartAbandonment(i, 300);
  const settings = domainSettings({});
  const first = Array.from({ length: 1500 }, (_, i) => abandoned(i));
  const counted = (facts: AnalyticsFact[], from?: Parameters<typeof runGlobal>[2]) => {
    const { state, logic } = runGlobal(settings, facts, from);
    return { state, logic, abandoned: state.minutes.reduce((n, m) => n + m.cartsAbandoned, 0) };
  };
  const run = counted([...first, abandoned(0), abandoned(3)]);
  assert.equal(run.abandoned, 1500);
  assert.equal(run.state.duplicates, 2);
  // Also after a checkpoint and a restore.
  const restored = run.logic.restore(parseJson(JSON.stringify(run.logic.persist(run.state))));
  const again = counted([abandoned(7), abandoned(1499)], restored);
  assert.equal(again.abandoned, 1500);
});

Deno.test("abandonment hashes are kept for the latest ABANDONMENT_DEDUPE_MINUTES only, so checkpoints stay small", () => {
  // Kept for all 30 sketch minutes, they made every global checkpoint 1.5 MB at 50 abandonments a second.
  const abandoned = (i: number) => cartAbandonment(i, 1000);
  const facts = Array.from({ length: 30 * 60 }, (_, i) => abandoned(i));
  const { state } = runGlobal(domainSettings({}), facts);
  const latest = Math.floor((T0 + (facts.length - 1) * 1000) / 60_000) * 60_000;
  const floor = latest - ABANDONMENT_DEDUPE_MINUTES * 60_000;
  const withHashes = state.minutes.filter((m) => m.abandonments !== null);
  assert.equal(withHashes.length, ABANDONMENT_DEDUPE_MINUTES + 1);
  for (const m of withHashes) assert.ok(m.minute >= floor, new Date(m.minute).toISOString());
  assert.equal(
    withHashes.reduce((n, m) => n + m.abandonments!.length, 0),
    withHashes.reduce((n, m) => n + m.cartsAbandoned, 0),
  );
  // A late fact for a minute past the bound counts, without hashes for its minute.
  const minute = Math.floor((T0 + 600_000) / 60_000) * 60_000;
  const before = state.minutes.find((m) => m.minute === minute)!.cartsAbandoned;
  const lateFact: AnalyticsFact = { ...abandoned(600), factId: "timer-user-late-cart-0-a", userId: "late" };
  const late = runGlobal(domainSettings({}), [...facts, lateFact]).state;
  const lateMinute = late.minutes.find((m) => m.minute === minute);
  assert.equal(lateMinute?.cartsAbandoned, before + 1);
  assert.equal(lateMinute?.abandonments, null);
});

Deno.test("business alerts wait for every events partition's watermark: not heard of, behind, a new partition; an idle one that never had a record, or the engine's idle advance, releases them", () => {
  let idle = -Infinity;
  const g = driveGlobal(domainSettings({}), { sourcesWatermark: () => idle });
  const { alerts, timers } = g;
  const mark = (partition: number, partitions: number, at: number | null) =>
    g.send({ fact: "watermark", partition, partitions, clock: at });
  /** 6 page views a minute on a partition for its first 20 minutes. */
  const views = (partition: number) => {
    for (let s = 0; s < 20 * MIN; s += 10) {
      const at = T0 + s * 1000 + partition * 5_000;
      g.send({
        fact: "activity",
        factId: `f-${partition}-${s}`,
        at,
        userId: `u${partition}`,
        session: "s",
        type: "page_viewed",
      });
    }
  };
  const minute = (n: number) => T0 + n * 60_000;

  mark(0, 2, 0);
  views(0);
  mark(0, 2, minute(20) - 5_000);
  assert.equal(alerts.length, 0, "partition 1 is not heard of: its facts may still come");
  assert.equal(g.state.heldFrom, minute(1));
  mark(1, 2, 0);
  views(1);
  assert.equal(alerts.length, 0, "partition 1 is behind");
  mark(1, 2, minute(20) - 5_000);
  assert.equal(alerts.length, 0, "120 page views in every window");
  assert.equal(g.state.heldFrom, null);
  assert.equal(timers.get(EVALUATE_TIMER), minute(20));

  // The traffic stops, and `events` gets a third partition.
  mark(0, 3, minute(25));
  mark(1, 3, minute(25));
  assert.equal(alerts.length, 0, "partition 2 is not heard of yet");
  mark(2, 3, null);
  assert.deepEqual(
    alerts.map((a) => [a.type, a.occurredAt, a.alertId]),
    [["low_traffic", iso(minute(22)), `analytics-0-${g.sent - 1}-low_traffic-${minute(22)}`]],
    "an idle partition that never had a record holds nothing back: evaluated up to the lowest watermark, ahead of the clock",
  );
  assert.equal(timers.get(EVALUATE_TIMER), minute(26));

  mark(2, 3, minute(26) - 1);
  idle = minute(40);
  g.advanceTo(minute(40));
  assert.equal(g.state.heldFrom, null, "the engine's idle advance, which waits for every source with records left");
  assert.ok(timers.get(EVALUATE_TIMER)! > minute(40), "every boundary up to it evaluated");
  const restored = g.logic.restore(JSON.parse(JSON.stringify(g.logic.persist(g.state))));
  assert.deepEqual(restored.sources, { partitions: 3, clocks: { 0: minute(25), 1: minute(25), 2: minute(26) - 1 } });
});

Deno.test("a late fact after watermarks released minutes ahead of the analytics clock does not evaluate those minutes again", () => {
  const g = driveGlobal(domainSettings({}));
  const { alerts, timers } = g;
  const minute = (n: number) => T0 + n * 60_000;
  let n = 0;
  const view = (at: number, loadTime: number) =>
    g.send({ fact: "activity", factId: `f-${n++}`, at, userId: "u", session: "s", type: "page_viewed", loadTime });

  // 12 page views a minute for 10 minutes, each loading in 1 s; then the shop is quiet, and the one partition's
  // watermark releases the minutes up to 10:13, ahead of the analytics clock (the last fact, 10:09:55).
  g.send({ fact: "watermark", partition: 0, partitions: 1, clock: 0 });
  for (let s = 0; s < 10 * MIN; s += 5) view(T0 + s * 1000, 1);
  g.send({ fact: "watermark", partition: 0, partitions: 1, clock: minute(13) + 1_000 });
  assert.deepEqual(alerts.map((a) => [a.type, a.occurredAt]), [["low_traffic", iso(minute(12))]]);
  assert.equal(timers.get(EVALUATE_TIMER), minute(14));

  // 30 late page views dated 10:08, loading in 60 s: they count in their minute, but the windows that hold it
  // (those ending 10:09 to 10:13) were evaluated already, and the next one (10:14, from 10:09) does not hold it.
  for (let i = 0; i < 30; i++) view(minute(8), 60);
  assert.equal(timers.get(EVALUATE_TIMER), minute(14), "the next boundary is still the first not evaluated");
  g.send({ fact: "watermark", partition: 0, partitions: 1, clock: minute(14) + 1_000 });
  assert.deepEqual(
    alerts.map((a) => [a.type, a.occurredAt]),
    [["low_traffic", iso(minute(12))]],
    "no minute evaluated again: slow_pages is not raised for 10:10 after 10:13 was evaluated",
  );
  assert.equal(timers.get(EVALUATE_TIMER), minute(15));
});

Deno.test("a checkpoint from before evaluatedTo was kept: a late fact does not evaluate the minutes evaluated before it again", () => {
  const g = driveGlobal(domainSettings({}));
  const minute = (n: number) => T0 + n * 60_000;
  let n = 0;
  const view = (at: number, loadTime: number) =>
    g.send({ fact: "activity", factId: `f-${n++}`, at, userId: "u", session: "s", type: "page_viewed", loadTime });
  // 12 page views a minute for 10 minutes, each loading in 1 s, and one at 10:14: the minutes up to 10:14 are evaluated.
  for (let s = 0; s < 10 * MIN; s += 5) view(T0 + s * 1000, 1);
  view(minute(14) + 1_000, 1);
  const before = g.alerts.map((a) => [a.type, a.occurredAt]);
  assert.deepEqual(before, [["low_traffic", iso(minute(12))]]);
  assert.equal(g.state.evaluatedTo, minute(14));
  // Restarted from a checkpoint written before 2026-12-05, which kept no evaluatedTo.
  g.reload(({ evaluatedTo: _kept, ...older }) => older);
  assert.equal(g.state.evaluatedTo, minute(14), "the minutes before the latest fact's were evaluated");
  // 30 late page views dated 10:08, loading in 60 s: the windows that hold their minute were evaluated already. With
  // no evaluatedTo the first set the timer back to 10:09, and 10:09 to 10:14 were evaluated again: slow_pages for 10:13.
  for (let i = 0; i < 30; i++) view(minute(8), 60);
  assert.deepEqual(g.alerts.map((a) => [a.type, a.occurredAt]), before);
  assert.equal(g.timers.get(EVALUATE_TIMER), minute(15));
});

Deno.test("watermarks of partitions that never had a record release nothing past the analytics clock", () => {
  // Facts fed to `analytics` directly, beside an `events` topic none of whose partitions has had a record: every
  // watermark is null (holds nothing back), and the minutes are evaluated on the clock, not ahead of it.
  const g = driveGlobal(domainSettings({}));
  // 12 page views a minute for 20 minutes: 120 in any 10 minutes.
  for (let s = 0; s < 20 * MIN; s += 5) {
    g.send({ fact: "activity", factId: `f-${s}`, at: T0 + s * 1000, userId: "u", session: "s", type: "page_viewed" });
  }
  g.send({ fact: "watermark", partition: 0, partitions: 2, clock: null });
  g.send({ fact: "watermark", partition: 1, partitions: 2, clock: null });
  assert.deepEqual(g.alerts, [], "no window ending after the latest fact (10:19:55) is evaluated yet");
  assert.equal(g.timers.get(EVALUATE_TIMER), T0 + 20 * MIN * 1000);
});

Deno.test("high_cart_abandonment: exactly 80% of 10 outcomes in the window is not more than 80%; 90% is", async () => {
  const b = new EventBuilder(T0);
  // Ten carts; `converted` of them reach checkout at 29 minutes, so all ten outcomes fall in the window ending at 31.
  const carts = (converted: number) => tenCarts(b, converted, 29 * MIN);
  // One partition: the fold advances idle partitions one after another, and without watermarks a partition whose
  // clock ran ahead would have the global actor evaluate the minutes before the others' abandonments arrive.
  const exact = await fold(carts(2), { partitions: 1, until: T0 + 2 * HOUR * 1000 });
  assert.deepEqual(typesOf(exact.alerts, "high_cart_abandonment"), []);
  const above = await fold(carts(1), { partitions: 1, until: T0 + 2 * HOUR * 1000 });
  const raised = above.alerts.filter((a) => a.type === "high_cart_abandonment");
  assert.deepEqual(raised.map((a) => [a.occurredAt, a.details.abandoned, a.details.converted]), [
    [iso(T0 + 31 * 60_000), 9, 1],
  ]);
});

Deno.test("slow_pages: load times are kept to the millisecond, each and on average: 3.0004 s counts as 3 s", async () => {
  const b = new EventBuilder(T0);
  const pages = (loadTimes: number[]) =>
    loadTimes.map((loadTime, i) => b.event("page_viewed", `u${i}`, i, { url: "/", loadTime }));
  const each = await fold(pages(Array(10).fill(3.0004)), { until: T0 + 5 * 60_000 });
  assert.equal(each.global!.minutes[0].loadTimeMsSum, 30_000);
  assert.deepEqual(typesOf(each.alerts, "slow_pages"), []);
  // 9 × 3 s and one 3.004 s: 3.0004 s on average, which is 3 s to the millisecond.
  const average = await fold(pages([...Array(9).fill(3), 3.004]), { until: T0 + 5 * 60_000 });
  assert.equal(average.global!.minutes[0].loadTimeMsSum, 30_004);
  assert.deepEqual(typesOf(average.alerts, "slow_pages"), []);
});

Deno.test("the global actor counts a fact in the oldest retained minute and only one before it as too late; firstEventAt is the earliest", () => {
  const settings = domainSettings({ ANALYTICS_RETENTION_MINUTES: 60 });
  const fact = (n: number, at: number): AnalyticsFact => ({
    fact: "activity",
    factId: `events-0-${n}-a`,
    at,
    userId: `u${n}`,
    session: `u${n}/auto-1`,
    type: "page_viewed",
  });
  const { state } = runGlobal(settings, [
    fact(0, T0 + 5 * 60_000),
    fact(1, T0 + 60 * 60_000),
    fact(2, T0), // the first minute kept: minuteOf(latest) - 60 minutes
    fact(3, T0 - 1),
  ]);
  assert.equal(state.tooLate, 1);
  assert.equal(state.facts, 3);
  assert.equal(state.firstEventAt, T0);
  assert.deepEqual(state.minutes.map((m) => [iso(m.minute), m.pageViews]), [
    [iso(T0), 1],
    [iso(T0 + 5 * 60_000), 1],
    [iso(T0 + 60 * 60_000), 1],
  ]);
});

Deno.test("a retention grown after a restart does not take back minutes already finished for storage", () => {
  const fact = (n: number, at: number): AnalyticsFact => ({
    fact: "activity",
    factId: `events-0-${n}-a`,
    at,
    userId: `u${n}`,
    session: `u${n}/auto-1`,
    type: "page_viewed",
  });
  const short = runGlobal(domainSettings({ ANALYTICS_RETENTION_MINUTES: 60 }), [
    fact(0, T0),
    fact(1, T0 + 90 * 60_000),
  ]);
  assert.equal(short.state.memoryFrom, T0 + 30 * 60_000);
  const { state } = runGlobal(
    domainSettings({ ANALYTICS_RETENTION_MINUTES: 120 }),
    [fact(2, T0 + 10 * 60_000), fact(3, T0 + 91 * 60_000)],
    short.state,
  );
  assert.equal(state.tooLate, 1, "the minute was finished (stored): a fact for it is too late");
  assert.equal(state.memoryFrom, T0 + 30 * 60_000);
});

Deno.test("a watermark naming fewer `events` partitions than one before it does not stop the wait for the others", () => {
  // During a rolling restart after partitions were added to `events`, an instance still running with the old count
  // publishes watermarks naming it; partitions are never removed from a topic, so the larger count stands.
  const g = driveGlobal(domainSettings({}));
  g.send({ fact: "watermark", partition: 0, partitions: 2, clock: 0 });
  g.send({ fact: "watermark", partition: 1, partitions: 2, clock: 0 });
  for (let s = 0; s < 20 * MIN; s += 5) {
    g.send({ fact: "activity", factId: `f-${s}`, at: T0 + s * 1000, userId: "u", session: "s", type: "page_viewed" });
  }
  g.send({ fact: "watermark", partition: 0, partitions: 2, clock: T0 + 5 * MIN * 1000 });
  g.send({ fact: "watermark", partition: 1, partitions: 2, clock: T0 + 5 * MIN * 1000 });
  const held = g.state.heldFrom;
  assert.ok(held !== null && held <= T0 + 6 * MIN * 1000, `held at ${held}`);
  g.send({ fact: "watermark", partition: 0, partitions: 1, clock: T0 + 19 * MIN * 1000 });
  assert.equal(g.state.sources?.partitions, 2);
  assert.equal(g.state.heldFrom, held, "partition 1 (at 10:05) still holds the minutes after it back");
});

Deno.test("a watermark that both releases held minute boundaries and moves the memory evaluates them over their whole windows (a partition's checkpoint covering hours: low_traffic fired on 120 page views in 10 minutes)", () => {
  // Two partitions with 6 page views a minute each for 3 hours; partition 1 publishes its watermark every minute,
  // partition 0 (a historical import's checkpoint covering hours) once at the end. Its watermark releases the boundaries
  // held since 08:01 and moves the memory to 09:59 - 60 minutes: evaluated over what was left of their windows, the
  // boundaries before it saw no page views.
  const minute = 60_000;
  const start = Date.UTC(2026, 0, 5, 8, 0, 0);
  const settings = domainSettings({ ANALYTICS_RETENTION_MINUTES: 60 });
  const of: AnalyticsFact[][] = [[], []];
  for (let m = 0; m < 180; m++) {
    for (let i = 0; i < 12; i++) {
      const p = i % 2;
      const at = start + m * minute + i * 1000;
      of[p].push({
        fact: "activity",
        factId: `events-${p}-${of[p].length}-a`,
        at,
        userId: `u${i}`,
        session: `s${i}`,
        type: "page_viewed",
      });
    }
  }
  const inOrder = driveGlobal(settings);
  for (const fact of [...of[0], ...of[1]].sort((a, b) => a.at - b.at)) inOrder.send(fact);
  assert.deepEqual(inOrder.alerts, [], "120 page views in every 10 minutes");

  const lagged = driveGlobal(settings);
  const mark = (partition: number, clock: number) =>
    lagged.send({ fact: "watermark", partition, partitions: 2, clock });
  mark(0, 0);
  mark(1, 0);
  for (const fact of of[1]) {
    lagged.send(fact);
    if (fact.at % minute === 11_000) mark(1, fact.at); // after the minute's last fact
  }
  for (const fact of of[0]) lagged.send(fact);
  assert.ok(lagged.state.heldFrom !== null && lagged.state.heldFrom <= start + minute, "partition 0 holds 08:01 on");
  mark(0, of[0].at(-1)!.at);
  assert.equal(lagged.state.memoryFrom, inOrder.state.memoryFrom, "the watermark moved the memory");
  assert.equal(lagged.state.evaluatedTo, inOrder.state.evaluatedTo, "and released every boundary");
  assert.deepEqual(lagged.alerts, [], "no low_traffic on boundaries whose windows had left memory");
  assert.equal(lagged.state.tooLate, 0);
});

Deno.test("low_traffic: a quiet spell whose cooldown ends before traffic resumes raises it when the cooldown ends, as minute-by-minute evaluation does", async () => {
  const b = new EventBuilder(T0);
  /** 150 page views in `minute` (above the 100 of low_traffic in any window holding it). */
  const burst = (minute: number) =>
    Array.from({ length: 150 }, (_, i) => b.event("page_viewed", `u${i % 30}`, minute * MIN + i * 0.2, { url: "/" }));
  const events = [
    ...burst(0), // windows ending at 1..10 hold it; [1, 11) is empty: low_traffic at 11, then not before 71
    ...burst(45), // windows ending at 46..55 hold it; [46, 56) to [64, 74) are empty: low over 56..74
    ...Array.from({ length: 10 }, (_, k) => burst(74 + k)).flat(), // busy from minute 74 on: not low from 75
  ];
  const r = await fold(events, { until: T0 + 84 * MIN * 1000 });
  // Evaluated minute by minute, 71 is the first boundary both low (nothing in [61, 71)) and past the cooldown.
  assert.deepEqual(typesOf(r.alerts, "low_traffic"), [iso(T0 + 11 * 60_000), iso(T0 + 71 * 60_000)]);
  assert.deepEqual(r.alerts.filter((a) => a.type === "low_traffic")[1].details, {
    windowMinutes: 10,
    pageViews: 0,
    threshold: 100,
  });
});

Deno.test("business alerts: each is a warning about the global subject, with an id naming its boundary's timer and its type", async () => {
  const b = new EventBuilder(T0);
  const events = [
    ...Array.from({ length: 10 }, (_, i) => b.event("page_viewed", `u${i}`, i, { url: "/", loadTime: 3.5 })),
    ...tenCarts(b, 0, 60),
    ...checkoutsAndAnOrder(b, 20 * MIN, 51),
  ];
  // One `events` partition: the fold has no watermarks, and a partition whose clock ran ahead (the checkouts' own
  // abandonments at minute 50) would bring its facts before the others' cart abandonments of minute 30.
  const r = await fold(events, { until: T0 + 2 * HOUR * 1000, partitions: 1 });
  const global = r.alerts.filter((a) => a.subject.kind === "global");
  assert.deepEqual(
    [...new Set(global.map((a) => a.type))].sort(),
    ["high_cart_abandonment", "low_conversion", "low_traffic", "slow_pages"],
  );
  for (const alert of global) {
    assert.equal(alert.severity, "warning", alert.type);
    assert.deepEqual(alert.subject, { kind: "global", id: "global" });
    assert.equal(alert.alertId, `timer-global-global-evaluate-${Date.parse(alert.occurredAt)}-${alert.type}`);
  }
  assert.equal(new Set(global.map((a) => a.alertId)).size, global.length);
});
