import assert from "node:assert/strict";
import { createUserLogic, RECENT_PRODUCTS_LIMIT, userLogic } from "../../actors/user.ts";
import { productLogic } from "../../actors/product.ts";
import { MAX_FACT_LIST, type ProductFact } from "../../actors/facts.ts";
import { domainSettings } from "../../actors/settings.ts";
import { iso } from "../../actors/alerts.ts";
import { UserStep } from "../../actors/user_step.ts";
import { recentTotals } from "../../actors/global.ts";
import { EventBuilder, fold } from "../helpers/fold.ts";
import { parseJson } from "../../engine/json_parse.ts";
import { Harness } from "../helpers/runtime.ts";
import type { UserState } from "../../actors/user_state.ts";

const MIN = 60;
const HOUR = 3600;

function productFacts(result: Awaited<ReturnType<typeof fold>>): ProductFact[] {
  return result.outputs.filter((o) => o.topic === "productEvents").map((o) => o.value as ProductFact);
}

Deno.test("user sessions: a new one after 30 minutes without events, or when the client's sessionId changes", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("page_viewed", "u", 0, { url: "/" }),
    b.event("product_viewed", "u", 10 * MIN, { productId: "p1" }),
    b.event("page_viewed", "u", 40 * MIN, { url: "/b" }), // 30 min after the last: same session
    b.event("page_viewed", "u", 70 * MIN + 1, { url: "/c" }), // 30 min 1 s after: new session
    b.event("page_viewed", "u", 71 * MIN, { url: "/d" }, { sessionId: "s-1" }), // adopts the client id
    b.event("page_viewed", "u", 72 * MIN, { url: "/e" }, { sessionId: "s-2" }), // changed id: new session
  ]);
  const u = r.users.get("u")!;
  assert.equal(u.sessionCount, 3);
  assert.equal(u.session!.id, "s-2");
  assert.equal(u.session!.number, 3);
  assert.deepEqual(u.recentSessions.map((s) => [s.id, s.events, s.pageViews, s.productViews, s.durationSeconds]), [
    ["s-1", 2, 2, 0, 59],
    ["auto-1", 3, 2, 1, 40 * MIN],
  ]);
  assert.equal(u.eventCount, 6);
});

Deno.test("user sessions: out-of-order events move the start back, never the last event; a past session's event leaves it alone", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("page_viewed", "u", 10 * MIN, { url: "/" }),
    b.event("product_viewed", "u", 20 * MIN, { productId: "p1" }),
    b.event("page_viewed", "u", 5 * MIN, { url: "/late" }), // earlier, within the gap of the start
    b.event("product_added_to_cart", "u", 15 * MIN, { productId: "p1", quantity: 1, price: 5 }),
    b.event("order_completed", "u", -2 * HOUR, { // a past session's event, arriving last
      orderId: "o-old",
      items: [{ productId: "p9", quantity: 1, price: 1 }],
      total: 1,
    }),
  ], { partitions: 1 });
  const u = r.users.get("u")!;
  assert.equal(u.session!.startedAt, new Date(b.time(5 * MIN)).toISOString());
  assert.equal(u.session!.lastEventAt, new Date(b.time(20 * MIN)).toISOString());
  assert.equal(u.session!.durationSeconds, 15 * MIN);
  assert.equal(u.session!.events, 4, "the late order is not part of the current session");
  assert.equal(u.session!.stage, "added_to_cart", "nor does it move the current funnel stage");
  assert.equal(u.funnelStage, "added_to_cart");
  assert.equal(u.sessionCount, 1);
  assert.equal(u.eventCount, 5);
  assert.equal(u.orders.count, 1, "it still counts in the order history");
  assert.equal(u.firstSeenAt, new Date(b.time(-2 * HOUR)).toISOString());
  assert.equal(u.lastSeenAt, new Date(b.time(20 * MIN)).toISOString());
});

Deno.test("user funnel: the furthest stage of the current session, from visited to purchased, reset by a new session", async () => {
  const b = new EventBuilder();
  const steps: [Record<string, unknown>, string][] = [
    [b.event("search_performed", "u", 0, { query: "shoes" }), "visited"],
    [b.event("product_viewed", "u", 60, { productId: "p1" }), "viewed_product"],
    [b.event("product_added_to_cart", "u", 120, { productId: "p1", quantity: 1, price: 3 }), "added_to_cart"],
    [b.event("page_viewed", "u", 150, { url: "/" }), "added_to_cart"],
    [b.event("checkout_started", "u", 180, {}), "started_checkout"],
    [
      b.event("order_completed", "u", 240, {
        orderId: "o1",
        items: [{ productId: "p1", quantity: 1, price: 3 }],
        total: 3,
      }),
      "purchased",
    ],
    [b.event("page_viewed", "u", 240 + HOUR, { url: "/" }), "visited"],
  ];
  for (let i = 1; i <= steps.length; i++) {
    const r = await fold(steps.slice(0, i).map(([e]) => e));
    assert.equal(r.users.get("u")!.funnelStage, steps[i - 1][1], `after event ${i}`);
  }
});

Deno.test("user cart: value = Σ quantity × price; removals never go below zero; no quantity removes all", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("product_added_to_cart", "u", 0, { productId: "a", quantity: 3, price: 0.1 }),
    b.event("product_added_to_cart", "u", 1, { productId: "b", quantity: 1, price: 19.99 }),
    b.event("product_added_to_cart", "u", 2, { productId: "a", quantity: 2, price: 0.2 }), // latest price wins
    b.event("product_removed_from_cart", "u", 3, { productId: "a", quantity: 1 }),
  ]);
  const cart = r.users.get("u")!.cart;
  assert.deepEqual(Object.fromEntries(Object.entries(cart.items).map(([id, i]) => [id, i.quantity])), { a: 4, b: 1 });
  assert.equal(cart.value, 20.79);
  assert.equal(cart.units, 5);

  const more = await fold([
    b.event("product_added_to_cart", "v", 0, { productId: "a", quantity: 2, price: 1.5 }),
    b.event("product_added_to_cart", "v", 1, { productId: "b", quantity: 3, price: 2 }),
    b.event("product_removed_from_cart", "v", 2, { productId: "a", quantity: 5 }), // more than in the cart
    b.event("product_removed_from_cart", "v", 3, { productId: "b" }), // no quantity: all
    b.event("product_removed_from_cart", "v", 4, { productId: "zzz", quantity: 1 }), // not in the cart
  ]);
  const empty = more.users.get("v")!.cart;
  assert.deepEqual(empty.items, {});
  assert.equal(empty.value, 0);
  assert.equal(empty.units, 0);
  const removals = productFacts(more).filter((f) => f.fact === "product_removed_from_cart");
  assert.deepEqual(removals.map((f) => [f.productId, f.fact === "product_removed_from_cart" && f.quantity]), [
    ["a", 2],
    ["b", 3],
  ], "products hear the units actually removed, and nothing for a no-op");
});

Deno.test("user dedupe: a repeated eventId, or a repeated orderId under a new eventId, is counted once and emits nothing", async () => {
  const b = new EventBuilder();
  const order = b.event("order_completed", "u", 0, {
    orderId: "o1",
    items: [{ productId: "p1", quantity: 2, price: 600 }],
    total: 1200,
  });
  const once = await fold([order]);
  const retried = { ...order, eventId: "00000000-0000-4000-8000-0000000000ff" };
  const thrice = await fold([order, order, retried]);
  const u = thrice.users.get("u")!;
  assert.equal(u.eventCount, 1);
  assert.equal(u.duplicateEvents, 2);
  assert.equal(u.orders.count, 1);
  assert.equal(u.orders.revenue, 1200);
  assert.equal(thrice.outputs.length, once.outputs.length);
  assert.deepEqual(u.fraud?.signals, ["high_total", "first_order_high"]);
  assert.equal(thrice.products.get("p1")!.unitsSold, 2);

  // The memory is bounded: beyond USER_DEDUPE_EVENTS other events, an id is forgotten.
  const small = domainSettings({ USER_DEDUPE_EVENTS: 2 });
  const views = [0, 1, 2].map((i) => b.event("product_viewed", "w", i, { productId: `p${i}` }));
  const replayed = await fold([...views, views[0], views[2]], { settings: small });
  assert.equal(replayed.users.get("w")!.productViews, 4, "view 0 was forgotten, view 2 was not");
});

Deno.test("user dedupe: remembered as hashes; a checkpoint that kept the eventIds themselves still dedupes them", async () => {
  const b = new EventBuilder();
  const views = [0, 1, 2].map((i) => b.event("product_viewed", "u", i, { productId: `p${i}` }));
  const ids = views.map((v) => v.eventId as string);
  const { users } = await fold(views);
  const state = users.get("u")!;
  assert.equal(state.seenEventHashes.length, 3);
  assert.ok(state.seenEventHashes.every((h) => Number.isSafeInteger(h) && h >= 0));
  assert.ok(!JSON.stringify(userLogic.persist(state)).includes(ids[0]), "no eventId in the checkpoint");

  // The same user as a checkpoint from before the hashes: its eventIds, no hashes.
  const { seenEventHashes: _hashes, ...rest } = state;
  const old = userLogic.restore(parseJson(JSON.stringify({ ...rest, seenEventIds: ids })));
  assert.deepEqual(old, state, "restored to the same state");
  const ctx = {
    now: () => 0,
    emit: () => {},
    outputId: (r: string) => r,
    setTimer: () => {},
    cancelTimer: () => {},
    timer: () => undefined,
  };
  const repeat = await userLogic.handle(old, userLogic.decode(record(views[1])), ctx);
  assert.equal(repeat.duplicateEvents, 1, "a repeat of an eventId the old checkpoint kept is counted once");
  assert.equal(repeat.productViews, 3);
});

/** A stored event as the log hands it to the user logic. */
function record(event: Record<string, unknown>) {
  return {
    topic: "events",
    partition: 0,
    offset: 0,
    key: String(event.userId),
    value: new TextEncoder().encode(JSON.stringify(event)),
    headers: {},
    timestamp: 0,
  };
}

Deno.test("user orders: an order with no cart before it counts, reaches purchased, and keeps the history summary", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("order_completed", "u", 0, {
      orderId: "o1",
      items: [{ productId: "p1", quantity: 2, price: 10 }, { productId: "p2", quantity: 1, price: 5 }],
      total: 25,
      currency: "EUR",
    }),
    b.event("order_completed", "u", HOUR, {
      orderId: "o2",
      items: [{ productId: "p1", quantity: 1, price: 10 }],
      total: 10,
    }),
  ]);
  const u = r.users.get("u")!;
  assert.equal(u.funnelStage, "purchased");
  assert.equal(u.orders.count, 2);
  assert.equal(u.orders.revenue, 35);
  assert.equal(u.orders.averageOrderValue, 17.5);
  assert.equal(u.orders.lastOrder?.orderId, "o2");
  assert.equal(u.orders.firstOrderAt, new Date(b.time(0)).toISOString());
  assert.deepEqual(u.purchasedProducts, ["p1", "p2"]);
  const activity = r.outputs.filter((o) => o.topic === "analytics").map((o) => o.value as Record<string, unknown>);
  assert.deepEqual(activity.map((a) => a.cartConverted), [false, false]);
  assert.deepEqual(activity[0].categoryRevenue, { unknown: 25000 });
});

Deno.test("cart_abandoned: 30 minutes after the last change, once per cart state, re-armed by a change", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("product_added_to_cart", "u", 0, { productId: "a", quantity: 1, price: 4 }),
    b.event("product_added_to_cart", "u", 20 * MIN, { productId: "b", quantity: 1, price: 6 }), // moves the deadline
    b.event("page_viewed", "u", 55 * MIN, { url: "/" }), // after the deadline (50 min): it fired, once
    b.event("page_viewed", "u", 90 * MIN, { url: "/" }),
    b.event("product_removed_from_cart", "u", 100 * MIN, { productId: "a" }), // a change re-arms
  ], { until: b.time(5 * HOUR) });
  const abandoned = r.alerts.filter((a) => a.type === "cart_abandoned");
  assert.deepEqual(abandoned.map((a) => a.occurredAt), [
    new Date(b.time(50 * MIN)).toISOString(),
    new Date(b.time(130 * MIN)).toISOString(),
  ]);
  assert.deepEqual(abandoned[0].subject, { kind: "user", id: "u" });
  assert.deepEqual(abandoned[0].details, {
    cartValue: 10,
    units: 2,
    productIds: ["a", "b"],
    lastChangeAt: new Date(b.time(20 * MIN)).toISOString(),
  });
  assert.equal(abandoned[0].alertId, `timer-user-u-cart-${b.time(50 * MIN)}-cart_abandoned`);
  const u = r.users.get("u")!;
  assert.equal(u.abandonedCarts, 2);
  assert.deepEqual(u.alerts.map((a) => a.type), ["cart_abandoned", "cart_abandoned"]);
  const facts = r.outputs.filter((o) =>
    o.topic === "analytics" && (o.value as { fact: string }).fact === "abandonment"
  );
  assert.equal(facts.length, 2);
});

Deno.test("cart_abandoned: a checkout one second before the deadline, or at it, cancels it; one second after comes too late", async () => {
  const b = new EventBuilder();
  const add = (user: string) => b.event("product_added_to_cart", user, 0, { productId: "a", quantity: 1, price: 4 });
  const inTime = await fold([
    add("u"),
    b.event("checkout_started", "u", 30 * MIN - 1, {}),
    add("t"),
    b.event("checkout_started", "t", 30 * MIN, {}), // within 30 minutes: timers fire once the clock passes them
  ], { until: b.time(3 * HOUR) });
  assert.deepEqual(inTime.alerts.filter((a) => a.type === "cart_abandoned"), []);
  assert.equal(inTime.users.get("t")!.abandonedCarts, 0);
  const late = await fold([add("v"), b.event("checkout_started", "v", 30 * MIN + 1, {})], { until: b.time(3 * HOUR) });
  assert.deepEqual(late.alerts.filter((a) => a.type === "cart_abandoned").map((a) => a.occurredAt), [
    new Date(b.time(30 * MIN)).toISOString(),
  ]);
  // An order cancels it the same way, and an emptied cart is never abandoned.
  const ordered = await fold([
    add("w"),
    b.event("order_completed", "w", 29 * MIN, {
      orderId: "o",
      items: [{ productId: "a", quantity: 1, price: 4 }],
      total: 4,
    }),
    add("x"),
    b.event("product_removed_from_cart", "x", 10, { productId: "a" }),
  ], { until: b.time(3 * HOUR) });
  assert.deepEqual(ordered.alerts.filter((a) => a.type === "cart_abandoned"), []);
});

Deno.test("checkout_abandoned: 30 minutes after a checkout with no order; an order one second before the deadline, or at it, cancels it", async () => {
  const b = new EventBuilder();
  const order = (user: string, seconds: number) =>
    b.event("order_completed", user, seconds, {
      orderId: `o-${user}`,
      items: [{ productId: "a", quantity: 1, price: 4 }],
      total: 4,
    });
  const r = await fold([
    b.event("product_added_to_cart", "u", 0, { productId: "a", quantity: 1, price: 4 }),
    b.event("checkout_started", "u", 60, { cartValue: 4 }),
    b.event("checkout_started", "v", 0, {}),
    order("v", 30 * MIN - 1),
    b.event("checkout_started", "w", 0, {}),
    order("w", 30 * MIN + 1),
    b.event("checkout_started", "x", 0, {}),
    order("x", 30 * MIN), // at the deadline: still within 30 minutes
  ], { until: b.time(3 * HOUR) });
  const abandoned = r.alerts.filter((a) => a.type === "checkout_abandoned");
  assert.deepEqual(abandoned.map((a) => [a.subject.id, a.occurredAt]).sort(), [
    ["u", new Date(b.time(31 * MIN)).toISOString()],
    ["w", new Date(b.time(30 * MIN)).toISOString()],
  ]);
  assert.equal(abandoned.find((a) => a.subject.id === "u")!.severity, "warning");
  assert.equal(r.alerts.filter((a) => a.type === "cart_abandoned").length, 0, "the checkout cancelled the cart timer");
  assert.equal(r.users.get("u")!.checkout?.abandoned, true);
  assert.equal(r.users.get("w")!.orders.count, 1, "a late order still counts");
  assert.equal(r.users.get("w")!.checkout, null);
});

Deno.test("user facts: a view goes to its product with the session's co-viewed products; each of those hears the pair", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("product_viewed", "u", 0, { productId: "p1", price: 10, category: "shoes", brand: "acme" }),
    b.event("product_viewed", "u", 60, { productId: "p2" }),
    b.event("product_viewed", "u", 120, { productId: "p3" }),
    b.event("product_viewed", "u", 180, { productId: "p1" }), // already viewed in this session: no new pairs
    b.event("product_viewed", "u", 180 + HOUR, { productId: "p4" }), // new session: no pairs
  ]);
  const facts = productFacts(r);
  const views = facts.filter((f) => f.fact === "product_viewed");
  assert.deepEqual(views.map((f) => [f.productId, f.fact === "product_viewed" && f.coViewed]), [
    ["p1", []],
    ["p2", ["p1"]],
    ["p3", ["p2", "p1"]],
    ["p1", []],
    ["p4", []],
  ]);
  const pairs = facts.filter((f) => f.fact === "co_occurrence");
  assert.deepEqual(pairs.map((f) => [f.productId, f.fact === "co_occurrence" && f.related]), [
    ["p1", ["p2"]],
    ["p2", ["p3"]],
    ["p1", ["p3"]],
  ]);
  assert.deepEqual(views[0], {
    fact: "product_viewed",
    priceMillis: 10_000,
    category: "shoes",
    brand: "acme",
    coViewed: [],
    recommend: { exclude: [] },
    factId: views[0].factId,
    userId: "u",
    session: "u/1",
    at: b.time(0),
    productId: "p1",
  });
  assert.match(views[0].factId, /^events-\d+-0-p0$/);
  assert.deepEqual(r.products.get("p1")!.coViewed, new Map([["p2", 1], ["p3", 1]]));
  assert.deepEqual(r.products.get("p3")!.coViewed, new Map([["p1", 1], ["p2", 1]]));
});

Deno.test("user recommendations: requested at most once per RECS_MIN_INTERVAL_SECONDS, excluding the cart and purchases", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("order_completed", "u", 0, {
      orderId: "o",
      items: [{ productId: "bought", quantity: 1, price: 1 }],
      total: 1,
    }),
    b.event("product_added_to_cart", "u", 10, { productId: "c1", quantity: 1, price: 1 }),
    b.event("product_viewed", "u", 40, { productId: "v1" }), // 30 s later: rate-limited
    b.event("product_viewed", "u", 70, { productId: "v2" }), // 60 s after the last request
  ]);
  const asks = productFacts(r).filter((f) => "recommend" in f && f.recommend).map((f) => [
    f.productId,
    (f as { recommend: { exclude: string[] } }).recommend.exclude,
  ]);
  assert.deepEqual(asks, [["c1", ["c1", "bought"]], ["v2", ["c1", "bought"]]]);
  const u = r.users.get("u")!;
  assert.equal(u.recommendations.count, 2);
  assert.deepEqual(u.recommendations.recent.map((x) => x.at), [b.time(70), b.time(10)].map(iso));

  const unlimited = await fold(
    [0, 1, 2].map((i) => b.event("product_viewed", "w", i, { productId: `p${i}` })),
    { settings: domainSettings({ RECS_MIN_INTERVAL_SECONDS: 0 }) },
  );
  assert.equal(unlimited.users.get("w")!.recommendations.count, 3);
});

Deno.test("RECS_EXCLUDE_LIMIT goes up to what a recommendation request carries (MAX_FACT_LIST): every purchase it remembers is excluded, a larger value is refused", async () => {
  // Above MAX_FACT_LIST the user remembered that many purchases, but its request carried only the latest
  // MAX_FACT_LIST of them: the older ones were recommended again, though the setting said they were excluded.
  assert.throws(() => domainSettings({ RECS_EXCLUDE_LIMIT: MAX_FACT_LIST + 1 }), /RECS_EXCLUDE_LIMIT[\s\S]*1000/);
  assert.equal(domainSettings({ RECS_EXCLUDE_LIMIT: MAX_FACT_LIST }).RECS_EXCLUDE_LIMIT, MAX_FACT_LIST);

  const b = new EventBuilder();
  const settings = domainSettings({ RECS_EXCLUDE_LIMIT: MAX_FACT_LIST, RECS_MIN_INTERVAL_SECONDS: 0 });
  const line = (productId: string) => ({ productId, quantity: 1, price: 1 });
  const others = Array.from({ length: MAX_FACT_LIST - 1 }, (_, i) => `b${i}`);
  const r = await fold([
    // Another user's session relates "old" and "fresh" to "base".
    b.event("product_viewed", "v", 0, { productId: "base" }),
    b.event("product_viewed", "v", 1, { productId: "old" }),
    b.event("product_viewed", "v", 2, { productId: "fresh" }),
    // The user's first purchase is "old", then MAX_FACT_LIST - 1 others: every one is remembered.
    b.event("order_completed", "u", 10, { orderId: "o1", items: [line("old")], total: 1 }),
    b.event("order_completed", "u", 20, { orderId: "o2", items: others.map(line), total: others.length }),
    b.event("product_viewed", "u", 30, { productId: "base" }),
  ], { settings });
  assert.equal(r.users.get("u")!.purchasedProducts.length, MAX_FACT_LIST);
  const asked = productFacts(r).find((f) => f.userId === "u" && "recommend" in f && f.recommend) as {
    recommend: { exclude: string[] };
  };
  assert.equal(asked.recommend.exclude.length, MAX_FACT_LIST);
  assert.ok(asked.recommend.exclude.includes("old"));
  const forU = r.recommendations.filter((x) => x.userId === "u");
  assert.deepEqual(forU.map((x) => x.items.map((i) => i.productId)), [["fresh"]]);
});

Deno.test("RECS_SESSION_ITEMS goes up to a third of what a fact carries (MAX_FACT_LIST): an order product's co-bought pairs are all sent, a larger value is refused", async () => {
  // A product of an order is paired with up to RECS_SESSION_ITEMS order neighbours on each side and the session's
  // RECS_SESSION_ITEMS earlier purchases; above a third of MAX_FACT_LIST its fact cut the pairs without a word.
  const most = Math.floor(MAX_FACT_LIST / 3);
  assert.throws(() => domainSettings({ RECS_SESSION_ITEMS: most + 1 }), /RECS_SESSION_ITEMS[\s\S]*333/);
  const settings = domainSettings({ RECS_SESSION_ITEMS: most });
  const b = new EventBuilder();
  const line = (productId: string) => ({ productId, quantity: 1, price: 1 });
  const earlier = Array.from({ length: most }, (_, i) => `e${i}`);
  const order = Array.from({ length: 2 * most + 1 }, (_, i) => `o${i}`);
  const r = await fold([
    b.event("order_completed", "u", 0, { orderId: "first", items: earlier.map(line), total: earlier.length }),
    b.event("order_completed", "u", 1, { orderId: "second", items: order.map(line), total: order.length }),
  ], { settings });
  const middle = productFacts(r).find((f) => f.fact === "product_ordered" && f.productId === order[most]) as {
    coBought: string[];
  };
  assert.equal(middle.coBought.length, 3 * most);
  assert.deepEqual(new Set(middle.coBought), new Set([...order.filter((id) => id !== order[most]), ...earlier]));
});

Deno.test("user recommendations: a late view or cart add asks when no remembered request is within RECS_MIN_INTERVAL_SECONDS of it", async () => {
  const b = new EventBuilder();
  const asked = (r: Awaited<ReturnType<typeof fold>>) =>
    productFacts(r).filter((f) => "recommend" in f && f.recommend).map((f) => f.productId);
  const r = await fold([
    b.event("product_viewed", "u", 600, { productId: "v1" }),
    b.event("product_viewed", "u", 1000, { productId: "v2" }),
    b.event("product_viewed", "u", 100, { productId: "v0" }), // late: 500 s before the request on v1
    b.event("product_added_to_cart", "u", 650, { productId: "vx", quantity: 1, price: 1 }), // late: 50 s after it
  ]);
  assert.deepEqual(asked(r), ["v1", "v2", "v0"]);
  const u = r.users.get("u")!.recommendations;
  assert.equal(u.count, 3);
  assert.equal(u.lastRequestedAt, new Date(b.time(1000)).toISOString(), "the latest request, whatever the arrival");
  assert.deepEqual(u.recent.map((x) => x.at), [b.time(1000), b.time(600), b.time(100)].map(iso), "most recent first");

  // With no least interval every view asks, one dated before the last request too.
  const unlimited = await fold([
    b.event("product_viewed", "w", 10, { productId: "p1" }),
    b.event("product_viewed", "w", 5, { productId: "p2" }),
  ], { settings: domainSettings({ RECS_MIN_INTERVAL_SECONDS: 0 }) });
  assert.deepEqual(asked(unlimited), ["p1", "p2"]);
  assert.equal(unlimited.users.get("w")!.recommendations.count, 2);
});

Deno.test("user analytics: one activity fact per distinct event, with page load time and the session", async () => {
  const b = new EventBuilder();
  const view = b.event("page_viewed", "u", 0, { url: "/", loadTime: 1.25 }, { sessionId: "s" });
  const r = await fold([view, view, b.event("search_performed", "u", 5, { query: "x" })]);
  const activity = r.outputs.filter((o) => o.topic === "analytics");
  assert.equal(activity.length, 2);
  assert.deepEqual(activity.map((o) => o.key), ["global", "global"]);
  const first = activity[0].value as Record<string, unknown>;
  assert.equal(first.type, "page_viewed");
  assert.equal(first.loadTime, 1.25);
  assert.equal(first.session, "u/1", "the user's first session");
});

Deno.test("createUserLogic(settings) applies its settings; userLogic uses the defaults", async () => {
  const b = new EventBuilder();
  const events = [
    b.event("page_viewed", "u", 0, { url: "/" }),
    b.event("page_viewed", "u", 11 * MIN, { url: "/" }),
  ];
  const short = await fold(events, { settings: domainSettings({ SESSION_GAP_MINUTES: 10 }) });
  assert.equal(short.users.get("u")!.sessionCount, 2);
  const standard = await fold(events);
  assert.equal(standard.users.get("u")!.sessionCount, 1);
  assert.equal(userLogic.kind, createUserLogic().kind);
});

Deno.test("userLogic.restore() fills the fields an older checkpoint lacks, and round-trips its own state", async () => {
  const old = {
    userId: "alice",
    eventCount: 3,
    productViews: 2,
    recentProducts: ["a", "b"],
    firstSeenAt: null,
    lastSeenAt: null,
  };
  const restored = userLogic.restore(old);
  assert.equal(restored.productViews, 2);
  assert.deepEqual(restored.recentProducts, ["a", "b"]);
  assert.equal(restored.cart.value, 0);
  assert.equal(restored.orders.count, 0);
  const b = new EventBuilder();
  const events = [
    b.event("product_viewed", "u", 0, { productId: "p1" }),
    b.event("product_added_to_cart", "u", 10, { productId: "p1", quantity: 2, price: 3 }),
    b.event("checkout_started", "u", 20, {}),
  ];
  const plain = await fold(events);
  const roundTripped = await fold(events, { roundTrip: true });
  assert.deepEqual(roundTripped.users.get("u"), plain.users.get("u"));
});

Deno.test("a user step sends each product at most one fact per event", () => {
  const emitted: string[] = [];
  const ctx = {
    now: () => 0,
    emit: (_topic: string, key: string) => emitted.push(key),
    outputId: (rule: string) => `events-0-0-${rule}`,
    setTimer: () => {},
    cancelTimer: () => {},
    timer: () => undefined,
  };
  const step = new UserStep(ctx, domainSettings({}), "u", 0, "u/auto-1", false);
  const fact = { fact: "co_occurrence" as const, relation: "viewed" as const, related: ["p0"] };
  step.toProduct("p1", fact);
  step.toProduct("p2", fact);
  step.toProduct("p3", fact);
  for (const again of ["p1", "p2", "p3"]) assert.throws(() => step.toProduct(again, fact), /one fact per product/);
  assert.deepEqual(emitted, ["p1", "p2", "p3"]);
});

Deno.test("iso formats each instant it is given, the same one repeatedly or a new one", () => {
  const t = Date.UTC(2026, 0, 5, 10, 0, 0, 123);
  assert.equal(iso(t), "2026-01-05T10:00:00.123Z");
  assert.equal(iso(t), "2026-01-05T10:00:00.123Z");
  assert.equal(iso(t + 1), "2026-01-05T10:00:00.124Z");
  assert.equal(iso(t), "2026-01-05T10:00:00.123Z");
  assert.throws(() => iso(NaN), RangeError);
  assert.throws(() => iso(NaN), RangeError);
});

Deno.test("iso writes what toISOString writes: within a minute, across minutes, before 1970, fractions, six-digit years", () => {
  const t = Date.UTC(2026, 0, 5, 10, 59, 59, 990);
  const instants = [
    ...Array.from({ length: 3_000 }, (_, n) => t + n * 7), // runs within a minute and over minute and hour ends
    0,
    59_999,
    60_000,
    -1,
    -60_001,
    Date.UTC(1969, 11, 31, 23, 59, 59, 999),
    t + 0.5,
    253_402_300_799_999,
    253_402_300_800_000,
    8.64e15,
    -8.64e15,
  ];
  let seed = 42;
  for (let n = 0; n < 20_000; n++) {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
    instants.push((seed / 2 ** 32) * 2 * 253_402_300_800_000 - 62_198_755_200_000);
    instants.push(Math.floor(instants[instants.length - 1]));
  }
  for (const ms of instants) assert.equal(iso(ms), new Date(ms).toISOString(), `instant ${ms}`);
});

Deno.test("a late order closes only the cart and checkout it was placed after (event time), whatever the arrival order", async () => {
  const MIN = 60;
  const b = new EventBuilder();
  const add = b.event("product_added_to_cart", "u", 0, { productId: "p1", quantity: 1, price: 5 });
  const oldOrder = b.event("order_completed", "u", -120 * MIN, {
    orderId: "o-old",
    items: [{ productId: "p9", quantity: 1, price: 1 }],
    total: 1,
  });
  const options = { partitions: 1, until: b.time(180 * MIN) };
  for (const events of [[oldOrder, add], [add, oldOrder]]) {
    const r = await fold(events, options);
    // The order two hours before the cart was filled used to empty it and cancel its abandonment.
    assert.equal(r.users.get("u")!.cart.units, 1);
    assert.equal(r.alerts.filter((a) => a.type === "cart_abandoned").length, 1);
  }
  // A checkout at +5 min arriving after its order at +10 min: no checkout is left to abandon.
  const checkout = b.event("checkout_started", "u", 5 * MIN, {});
  const order = b.event("order_completed", "u", 10 * MIN, {
    orderId: "o1",
    items: [{ productId: "p1", quantity: 1, price: 5 }],
    total: 5,
  });
  for (const events of [[add, checkout, order], [add, order, checkout]]) {
    const r = await fold(events, options);
    assert.deepEqual(r.alerts.filter((a) => a.type.endsWith("_abandoned")), [], "a false abandonment");
    assert.equal(r.users.get("u")!.checkout, null);
  }
});

Deno.test("a late cart change or checkout raises the abandonment alerts (and leaves the cart) that event-time order does", async () => {
  const b = new EventBuilder();
  const add = (minute: number, productId: string) =>
    b.event("product_added_to_cart", "u", minute * MIN, { productId, quantity: 1, price: 10 });
  const checkout = (minute: number) => b.event("checkout_started", "u", minute * MIN, {});
  const order = (minute: number, productIds: string[]) =>
    b.event("order_completed", "u", minute * MIN, {
      orderId: "o1",
      items: productIds.map((productId) => ({ productId, quantity: 1, price: 10 })),
      total: 10 * productIds.length,
    });
  const abandonments = (r: Awaited<ReturnType<typeof fold>>) =>
    r.alerts.filter((a) => a.type.endsWith("_abandoned")).map((a) => `${a.type} ${a.occurredAt.slice(11, 16)}`);
  const scenarios = [
    // A change dated before an order already handled belonged to the cart that order emptied; it armed a
    // cart_abandoned 30 minutes after the order.
    { arrival: [add(0, "A"), order(5, ["A", "B"]), add(2, "B")], alerts: [], units: 0 },
    // A checkout dated before a later change takes only the cart as it was: the changed cart is still watched.
    {
      arrival: [add(0, "A"), add(10, "B"), checkout(5)],
      alerts: ["checkout_abandoned 10:35", "cart_abandoned 10:40"],
      units: 2,
    },
    // A change dated before a checkout already handled is part of what it took: no cart_abandoned besides it.
    { arrival: [add(0, "A"), checkout(5), add(2, "B")], alerts: ["checkout_abandoned 10:35"], units: 2 },
    // Also when the checkout found the cart empty on arrival: the late change is still what it took. It used to raise
    // a cart_abandoned as well (the empty cart kept no record of the checkout).
    { arrival: [checkout(5), add(2, "A")], alerts: ["checkout_abandoned 10:35"], units: 1 },
    { arrival: [checkout(3), checkout(9), add(4, "A")], alerts: ["checkout_abandoned 10:39"], units: 1 },
  ];
  const options = { partitions: 1, until: b.time(180 * MIN) };
  for (const { arrival, alerts, units } of scenarios) {
    const at = (e: { occurredAt?: unknown }) => Date.parse(String(e.occurredAt));
    const byTime = [...arrival].sort((x, y) => at(x) - at(y));
    for (const events of [byTime, arrival]) {
      const r = await fold(events, options);
      assert.deepEqual(abandonments(r), alerts, JSON.stringify(events.map((e) => [e.type, e.occurredAt])));
      assert.equal(r.users.get("u")!.cart.units, units);
    }
  }
});

Deno.test("a late checkout with no order or checkout within 30 minutes after it is reported abandoned, as in event-time order", async () => {
  const b = new EventBuilder();
  const checkout = (minute: number) => b.event("checkout_started", "u", minute * MIN, {});
  let orders = 0;
  const order = (minute: number) =>
    b.event("order_completed", "u", minute * MIN, {
      orderId: `o${++orders}`,
      items: [{ productId: "p1", quantity: 1, price: 10 }],
      total: 10,
    });
  const abandonments = (r: Awaited<ReturnType<typeof fold>>) =>
    r.alerts.filter((a) => a.type.endsWith("_abandoned")).map((a) => `${a.type} ${a.occurredAt.slice(11, 16)}`);
  const scenarios = [
    // A later checkout an hour after it, already handled: it used to be dropped, its abandonment never reported.
    { arrival: [checkout(60), checkout(0)], alerts: ["checkout_abandoned 10:30", "checkout_abandoned 11:30"] },
    // The order came an hour after it: it had been abandoned by then (the late checkout still opens nothing).
    { arrival: [order(60), checkout(0)], alerts: ["checkout_abandoned 10:30"] },
    // Within 30 minutes of it, a checkout took over from it, or an order closed it: nothing to report for it.
    { arrival: [checkout(20), checkout(0)], alerts: ["checkout_abandoned 10:50"] },
    {
      arrival: [checkout(10), checkout(70), checkout(0)],
      alerts: ["checkout_abandoned 10:40", "checkout_abandoned 11:40"],
    },
    { arrival: [order(20), order(60), checkout(0)], alerts: [] },
    { arrival: [order(30), checkout(0)], alerts: [] },
    // Two late ones: the second-to-arrive's successor is the first late one.
    {
      arrival: [checkout(90), checkout(45), checkout(30)],
      alerts: ["checkout_abandoned 11:15", "checkout_abandoned 12:00"],
    },
  ];
  const options = { partitions: 1, until: b.time(6 * HOUR) };
  for (const { arrival, alerts } of scenarios) {
    const at = (e: { occurredAt?: unknown }) => Date.parse(String(e.occurredAt));
    const byTime = [...arrival].sort((x, y) => at(x) - at(y));
    for (const events of [byTime, arrival]) {
      const r = await fold(events, options);
      const what = JSON.stringify(events.map((e) => [e.type, e.occurredAt]));
      assert.deepEqual(abandonments(r).sort(), alerts, what);
      const user = r.users.get("u")!;
      assert.equal(user.abandonedCheckouts, alerts.length, what);
      assert.equal(user.alerts.length, alerts.length, what);
      const facts = r.outputs.filter((o) => (o.value as { fact?: string }).fact === "abandonment");
      assert.equal(facts.length, alerts.length, what);
      assert.equal(new Set(r.alerts.map((a) => a.alertId)).size, r.alerts.length, what);
    }
  }
});

Deno.test("a late change to a cart already reported abandoned raises no second alert under the same id", async () => {
  const MIN = 60;
  const b = new EventBuilder();
  const r = await fold([
    b.event("product_added_to_cart", "u", 20 * MIN, { productId: "p1", quantity: 1, price: 5 }),
    b.event("page_viewed", "u", 55 * MIN, { url: "/" }), // the clock passes 50 min: cart_abandoned
    // A buffered add dated before the last change arrives late: it belongs to the abandoned cart.
    b.event("product_added_to_cart", "u", 10 * MIN, { productId: "p2", quantity: 1, price: 7 }),
    b.event("product_added_to_cart", "u", 20 * MIN, { productId: "p3", quantity: 1, price: 7 }), // same instant
  ], { partitions: 1, until: b.time(180 * MIN) });
  const abandoned = r.alerts.filter((a) => a.type === "cart_abandoned");
  // It used to fire again at the same deadline: a second alert, other details, the same alertId.
  assert.equal(abandoned.length, 1);
  assert.equal(r.users.get("u")!.abandonedCarts, 1);
  assert.equal(r.users.get("u")!.cartAbandonedAt, new Date(b.time(50 * MIN)).toISOString());
  assert.equal(r.global!.minutes.reduce((n, m) => n + m.cartsAbandoned, 0), 1);
  // A change after the abandoned cart's last change is a new cart state, watched again.
  const later = await fold([
    b.event("product_added_to_cart", "u", 20 * MIN, { productId: "p1", quantity: 1, price: 5 }),
    b.event("page_viewed", "u", 55 * MIN, { url: "/" }),
    b.event("product_added_to_cart", "u", 60 * MIN, { productId: "p2", quantity: 1, price: 7 }),
  ], { partitions: 1, until: b.time(180 * MIN) });
  const ids = later.alerts.filter((a) => a.type === "cart_abandoned").map((a) => a.alertId);
  assert.equal(new Set(ids).size, 2);
});

Deno.test("a checkpoint from before cartAbandonedAt was kept: a late change to the cart it reported abandoned raises no second alert", async () => {
  const MIN = 60;
  const b = new EventBuilder();
  const add = b.event("product_added_to_cart", "u", 20 * MIN, { productId: "p1", quantity: 1, price: 5 });
  const passed = b.event("page_viewed", "u", 55 * MIN, { url: "/" }); // the clock passes 50 min: cart_abandoned
  const { users, alerts } = await fold([add, passed], { partitions: 1 });
  assert.deepEqual(alerts.map((a) => [a.type, a.occurredAt]), [[
    "cart_abandoned",
    new Date(b.time(50 * MIN)).toISOString(),
  ]]);
  // The same user as checkpointed before 2026-12-04, which kept no cartAbandonedAt (its alert is in `alerts`).
  const { cartAbandonedAt: _kept, ...rest } = users.get("u")!;
  const old = userLogic.restore(parseJson(JSON.stringify(rest)));
  assert.equal(old.cartAbandonedAt, new Date(b.time(50 * MIN)).toISOString(), "taken from the alert it raised");
  // A buffered add dated before the abandoned cart's last change arrives: it belongs to that abandonment.
  const timers = new Map<string, number>();
  const emitted: { topic: string; value: unknown }[] = [];
  const ctx = {
    now: () => b.time(55 * MIN),
    emit: (topic: string, _key: string, value: unknown) => emitted.push({ topic, value }),
    outputId: (r: string) => `events-0-2-${r}`,
    setTimer: (name: string, at: number) => timers.set(name, at),
    cancelTimer: (name: string) => timers.delete(name),
    timer: (name: string) => timers.get(name),
  };
  const late = b.event("product_added_to_cart", "u", 10 * MIN, { productId: "p2", quantity: 1, price: 7 });
  let state = await userLogic.handle(old, userLogic.decode({ ...record(late), offset: 2 }), ctx);
  // It armed the cart's timer again, which raised a second cart_abandoned under an id of its own.
  for (const [name] of timers) state = await userLogic.onTimer!(state, name, { ...ctx, now: () => b.time(56 * MIN) });
  assert.deepEqual(emitted.filter((o) => o.topic === "alerts"), []);
  assert.equal(state.abandonedCarts, 1);
  assert.equal(state.cart.units, 2);
});

Deno.test("a checkpoint from before convertedAt and orderedAt were kept: a late change to a cart ordered or checked out is still part of it", async () => {
  const MIN = 60;
  const b = new EventBuilder();
  const add = b.event("product_added_to_cart", "u", 0, { productId: "p1", quantity: 1, price: 5 });
  const order = b.event("order_completed", "u", 10 * MIN, {
    orderId: "o1",
    items: [{ productId: "p1", quantity: 1, price: 5 }],
    total: 5,
  });
  const checkout = b.event("checkout_started", "u", 10 * MIN, {});
  for (const [closing, field] of [[order, "orderedAt"], [checkout, "convertedAt"]] as const) {
    const { users } = await fold([add, closing], { partitions: 1 });
    // The same user as checkpointed before 2026-12-05, whose cart kept neither time.
    const { cart, ...rest } = users.get("u")!;
    assert.equal(cart[field], new Date(b.time(10 * MIN)).toISOString());
    const { [field]: _kept, ...olderCart } = cart;
    const old = userLogic.restore(parseJson(JSON.stringify({ ...rest, cart: olderCart })));
    assert.equal(old.cart[field], cart[field], `${field}: taken from the ${closing.type} that closed the cart`);
    // A buffered add dated before the order or checkout arrives: in event time it was part of the cart that closed.
    const timers = new Map<string, number>();
    const alerts: { type: string }[] = [];
    const ctx = {
      now: () => b.time(12 * MIN),
      emit: (topic: string, _key: string, value: unknown) => void (topic === "alerts" && alerts.push(value as never)),
      outputId: (r: string) => `events-0-2-${r}`,
      setTimer: (name: string, at: number) => timers.set(name, at),
      cancelTimer: (name: string) => timers.delete(name),
      timer: (name: string) => timers.get(name),
    };
    const late = b.event("product_added_to_cart", "u", 5 * MIN, { productId: "p2", quantity: 1, price: 7 });
    let state = await userLogic.handle(old, userLogic.decode({ ...record(late), offset: 2 }), ctx);
    for (const [name] of timers) state = await userLogic.onTimer!(state, name, { ...ctx, now: () => b.time(90 * MIN) });
    // It went into the next cart (after the order) or unconverted the cart (after the checkout): cart_abandoned.
    assert.deepEqual(alerts.map((a) => a.type).filter((t) => t === "cart_abandoned"), [], field);
    assert.equal(state.abandonedCarts, 0, field);
  }
});

Deno.test("a cart's value and an order's revenue round each line as a whole, not its unit price", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("product_added_to_cart", "u", 0, { productId: "bolt", quantity: 1000, price: 0.0004 }),
    b.event("order_completed", "v", 0, {
      orderId: "o1",
      items: [{ productId: "screw", quantity: 10000, price: 0.0126 }],
      total: 126,
    }),
  ]);
  // Unit prices rounded to thousandths first: 0 and 130.
  assert.equal(r.users.get("u")!.cart.value, 0.4);
  assert.equal((r.persisted("product", "screw") as { revenue: number }).revenue, 126);
});

Deno.test("a change of client sessionId starts a new session, even between ids that look like generated ones", async () => {
  const b = new EventBuilder();
  for (const [first, second] of [["tab-a", "tab-b"], ["auto-a", "auto-b"], ["auto-7", "auto-8"]]) {
    const r = await fold([
      b.event("page_viewed", "u", 0, { url: "/" }, { sessionId: first }),
      b.event("page_viewed", "u", 60, { url: "/" }, { sessionId: second }),
    ]);
    // Any id starting with "auto-" used to be taken for the engine's own, and renamed instead.
    assert.equal(r.users.get("u")!.sessionCount, 2, `${first} → ${second}`);
    assert.equal(r.users.get("u")!.session!.id, second);
  }
  // Without a client id the engine makes one up, and adopts the client's id when one comes.
  const r = await fold([
    b.event("page_viewed", "u", 0, { url: "/" }),
    b.event("page_viewed", "u", 60, { url: "/" }, { sessionId: "tab-a" }),
  ]);
  assert.equal(r.users.get("u")!.sessionCount, 1);
  assert.equal(r.users.get("u")!.session!.id, "tab-a");
});

Deno.test("user facts name each session once: one that adopts the client's id, and ids that come back, as the user counts them", async () => {
  const b = new EventBuilder();
  // One session: its first page view came before the storefront had a sessionId, the next events carry one.
  const adopted = await fold([
    b.event("page_viewed", "u", 0, { url: "/" }),
    b.event("product_viewed", "u", 10, { productId: "p1" }, { sessionId: "tab-a" }),
    b.event("product_added_to_cart", "u", 20, { productId: "p1", price: 5 }, { sessionId: "tab-a" }),
  ]);
  assert.equal(adopted.users.get("u")!.sessionCount, 1);
  assert.equal(new Set(activities(adopted).map((f) => f.session)).size, 1);
  assert.equal(recentTotals(adopted.global!, 15)!.activeSessions, 1, "one session, counted twice");
  // Three sessions (SPEC: a new one when the sessionId changes), two of them with the same client id.
  const back = await fold([
    b.event("page_viewed", "v", 0, { url: "/" }, { sessionId: "tab-a" }),
    b.event("page_viewed", "v", 10, { url: "/" }, { sessionId: "tab-b" }),
    b.event("page_viewed", "v", 20, { url: "/" }, { sessionId: "tab-a" }),
  ]);
  assert.equal(back.users.get("v")!.sessionCount, 3);
  assert.equal(new Set(activities(back).map((f) => f.session)).size, 3);
  assert.equal(recentTotals(back.global!, 15)!.activeSessions, 3, "the third session taken for the first");
});

Deno.test("the runtime, like the fold, lets a checkout at exactly the cart's deadline cancel its abandonment", async () => {
  const b = new EventBuilder();
  const h = new Harness(userLogic, 1, 1_000, { idleClockMs: 3_600_000 });
  h.wall = b.t0;
  await h.start();
  h.send("u", b.event("product_added_to_cart", "u", 0, { productId: "a", quantity: 1, price: 4 }));
  h.send("u", b.event("checkout_started", "u", 30 * MIN, {}));
  h.send("v", b.event("product_added_to_cart", "v", 0, { productId: "a", quantity: 1, price: 4 }));
  h.send("v", b.event("checkout_started", "v", 30 * MIN + 1, {}));
  await h.drained();
  await h.stop();
  const alerts = h.log.all(h.topics.alerts).map((r) => JSON.parse(new TextDecoder().decode(r.value!)));
  assert.deepEqual(alerts.filter((a) => a.type === "cart_abandoned").map((a) => a.subject.id), ["v"]);
});

Deno.test("abandonment thresholds raised across a restart apply to the carts and checkouts already waiting", async () => {
  const b = new EventBuilder();
  const before = new Harness(userLogic, 1, 1_000, { idleClockMs: 10_000 });
  before.wall = b.t0;
  await before.start();
  before.send("u", b.event("product_added_to_cart", "u", 0, { productId: "a", quantity: 1, price: 4 }));
  before.send("v", b.event("checkout_started", "v", 0, {}));
  await before.drained();
  await before.stop(); // both timers armed 30 minutes ahead, the defaults
  const raised = createUserLogic(domainSettings({ CART_ABANDON_MINUTES: 60, CHECKOUT_ABANDON_MINUTES: 60 }));
  const after = new Harness(raised, 1, 1_000, { idleClockMs: 10_000, store: before.store });
  after.wall = b.time(45 * MIN);
  await after.start();
  after.wall += 11_000; // idle: the clock follows the wall, 45 minutes after the cart add and the checkout
  await after.runtime.housekeep();
  const alerts = () =>
    after.log.all(after.topics.alerts).map((r) => JSON.parse(new TextDecoder().decode(r.value!)))
      .map((a) => [a.type, a.subject.id, a.occurredAt]);
  assert.deepEqual(alerts(), [], "not 30 minutes after: the settings say 60");
  after.wall = b.time(61 * MIN);
  await after.runtime.housekeep();
  await after.stop();
  assert.deepEqual(alerts().sort(), [
    ["cart_abandoned", "u", new Date(b.time(60 * MIN)).toISOString()],
    ["checkout_abandoned", "v", new Date(b.time(60 * MIN)).toISOString()],
  ]);
});

Deno.test("an event dated ahead of its receipt moves the partition clock only to its receipt: other carts keep their 30 minutes", async () => {
  const b = new EventBuilder();
  const fast = (seconds: number, received: number): Record<string, unknown> => ({
    ...b.event("page_viewed", "b", seconds, { url: "/" }),
    receivedAt: new Date(b.time(received)).toISOString(),
  });
  const events = [
    b.event("product_added_to_cart", "a", 0, { productId: "p", quantity: 1, price: 4 }),
    fast(31 * MIN, 26 * MIN), // b's client clock is five minutes fast (accepted up to MAX_EVENT_FUTURE_MS)
    b.event("checkout_started", "a", 27 * MIN, {}),
  ];
  const folded = await fold(events, { partitions: 1 });
  assert.deepEqual(folded.alerts.filter((a) => a.type === "cart_abandoned"), []);
  assert.equal(folded.users.get("b")!.lastSeenAt, new Date(b.time(31 * MIN)).toISOString(), "b keeps its own time");

  const h = new Harness(userLogic, 1, 1_000, { idleClockMs: 3_600_000 });
  h.wall = b.time(26 * MIN);
  await h.start();
  for (const event of events) h.send(event.userId as string, event);
  await h.drained();
  await h.stop();
  const alerts = h.log.all(h.topics.alerts).map((r) => JSON.parse(new TextDecoder().decode(r.value!)));
  assert.deepEqual(alerts.filter((a) => a.type === "cart_abandoned"), []);
});

Deno.test("a historical import into a fresh engine follows its own event time: an idle partition that never had a record keeps no wall clock", async () => {
  const b = new EventBuilder(Date.UTC(2019, 9, 1, 10, 0, 0));
  const h = new Harness(userLogic, 1, 1_000, { idleClockMs: 10_000 });
  h.wall = Date.UTC(2026, 0, 1);
  await h.start();
  h.wall += 11_000; // up 11 s without records: idle
  await h.runtime.housekeep();
  h.send("u", b.event("product_added_to_cart", "u", 0, { productId: "a", quantity: 1, price: 4 }));
  h.send("u", b.event("checkout_started", "u", 2 * MIN, {}));
  h.send(
    "u",
    b.event("order_completed", "u", 3 * MIN, {
      orderId: "o",
      items: [{ productId: "a", quantity: 1, price: 4 }],
      total: 4,
    }),
  );
  h.send("v", b.event("product_added_to_cart", "v", 4 * MIN, { productId: "a", quantity: 1, price: 4 }));
  await h.drained();
  assert.deepEqual(h.log.all(h.topics.alerts), [], "no timer was due in the import's own time");
  h.wall += 11_000; // the import is over and the partition idles: its clock follows the wall
  await h.runtime.housekeep();
  await h.stop();
  const alerts = h.log.all(h.topics.alerts).map((r) => JSON.parse(new TextDecoder().decode(r.value!)));
  assert.deepEqual(alerts.map((a) => [a.type, a.subject.id, a.occurredAt]), [
    ["cart_abandoned", "v", new Date(b.time(34 * MIN)).toISOString()],
  ]);
});

Deno.test("a log the consumer cannot read is not taken for an idle partition: the clock waits for the records appended meanwhile", async () => {
  const b = new EventBuilder();
  const h = new Harness(userLogic, 1, 1_000, { idleClockMs: 10_000 });
  h.wall = b.t0;
  await h.start();
  h.send("u", b.event("product_added_to_cart", "u", 0, { productId: "a", quantity: 1, price: 4 }));
  await h.drained();
  h.wall = b.time(29 * MIN);
  h.consumer.readable = false; // the broker is unreachable from here: fetches fail
  h.wall = b.time(29 * MIN + 50);
  h.send("u", b.event("checkout_started", "u", 29 * MIN + 50, {})); // acknowledged to its producer
  h.wall = b.time(31 * MIN);
  await h.runtime.housekeep(); // no records for two minutes, but none could be read either
  assert.deepEqual(h.log.all(h.topics.alerts), []);
  h.consumer.readable = true;
  await h.drained();
  h.wall = b.time(3 * HOUR);
  await h.runtime.housekeep();
  await h.stop();
  const alerts = h.log.all(h.topics.alerts).map((r) => JSON.parse(new TextDecoder().decode(r.value!)));
  assert.deepEqual(alerts.map((a) => a.type), ["checkout_abandoned"], "the checkout took the cart in time");
});

Deno.test("events of one instant follow their arrival order: a cart change after an order or a checkout at the same millisecond", async () => {
  // A batch posted without occurredAt gets one receive time for every event in it; REES46 rows have whole seconds.
  const b = new EventBuilder();
  const order = b.event("order_completed", "u", 0, {
    orderId: "o1",
    items: [{ productId: "p1", quantity: 1, price: 10 }],
    total: 10,
  });
  const add = b.event("product_added_to_cart", "u", 0, { productId: "p2", quantity: 3, price: 4 });
  const checkout = b.event("checkout_started", "u", 0, {});
  const options = { partitions: 1, until: b.time(3 * HOUR) };
  const abandonments = (r: Awaited<ReturnType<typeof fold>>) =>
    r.alerts.filter((a) => a.type.endsWith("_abandoned")).map((a) => a.type);

  // An add after the order: it used to be taken for part of the cart the order emptied, and dropped.
  const afterOrder = await fold([order, add], options);
  assert.deepEqual(afterOrder.users.get("u")!.cart.items, { p2: { quantity: 3, price: 4 } });
  assert.equal(afterOrder.users.get("u")!.cart.value, 12);
  assert.deepEqual(abandonments(afterOrder), ["cart_abandoned"]);
  // The other way round the order closes the cart.
  const beforeOrder = await fold([add, order], options);
  assert.equal(beforeOrder.users.get("u")!.cart.units, 0);
  assert.deepEqual(abandonments(beforeOrder), []);

  // An add after a checkout is a cart the checkout did not take: it used to stay "converted", never abandoned.
  const afterCheckout = await fold([
    b.event("product_added_to_cart", "u", -60, { productId: "p1", price: 1 }),
    checkout,
    add,
  ], options);
  assert.equal(afterCheckout.users.get("u")!.cart.converted, false);
  assert.deepEqual(abandonments(afterCheckout).sort(), ["cart_abandoned", "checkout_abandoned"]);

  // A checkout after an order of the same instant is a new checkout to watch; it used to be ignored.
  const checkoutAfterOrder = await fold([order, checkout], options);
  assert.notEqual(checkoutAfterOrder.users.get("u")!.checkout, null);
  assert.deepEqual(abandonments(checkoutAfterOrder), ["checkout_abandoned"]);

  // A checkout again after an add of the same instant takes the changed cart: it used to be ignored, and the cart was
  // reported abandoned though it went to checkout.
  const again = await fold([add, checkout, b.event("product_added_to_cart", "u", 0, { productId: "p3", price: 1 }), {
    ...checkout,
    eventId: "00000000-0000-4000-8000-0000000000ff",
    properties: { cartValue: 13 },
  }], options);
  assert.equal(again.users.get("u")!.cart.converted, true);
  assert.equal(again.users.get("u")!.checkout!.cartValue, 13);
  assert.deepEqual(abandonments(again), ["checkout_abandoned"]);
});

Deno.test("a checkout of the same instant arriving after that checkout was reported abandoned is not abandoned again", async () => {
  // A client retrying checkout_started without an eventId, its occurredAt kept, after the abandonment was reported.
  const b = new EventBuilder();
  const checkout = () => b.event("checkout_started", "u", 0, { cartValue: 12 });
  const r = await fold([
    b.event("product_added_to_cart", "u", -60, { productId: "p1", quantity: 3, price: 4 }),
    checkout(),
    b.event("page_viewed", "u", 40 * MIN, { url: "/" }), // the checkout's 30 minutes have passed: abandoned
    checkout(),
  ], { partitions: 1, until: b.time(3 * HOUR) });
  assert.deepEqual(r.alerts.filter((a) => a.type.endsWith("_abandoned")).map((a) => a.type), ["checkout_abandoned"]);
  const user = r.users.get("u")!;
  assert.equal(user.abandonedCheckouts, 1);
  assert.equal(user.checkout?.abandoned, true);
});

/** The activity facts the user actors sent to the global actor. */
function activities(result: Awaited<ReturnType<typeof fold>>): Record<string, unknown>[] {
  return result.outputs
    .filter((o) => o.topic === "analytics" && (o.value as { fact: string }).fact === "activity")
    .map((o) => o.value as Record<string, unknown>);
}

Deno.test("user sessions: an event exactly SESSION_GAP_MINUTES before the start joins it; a millisecond more is late", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("page_viewed", "a", 40 * MIN, { url: "/" }),
    b.event("page_viewed", "a", 10 * MIN, { url: "/edge" }),
    b.event("page_viewed", "b", 40 * MIN, { url: "/" }),
    b.event("page_viewed", "b", 10 * MIN - 0.001, { url: "/late" }),
  ]);
  const a = r.users.get("a")!;
  assert.equal(a.sessionCount, 1);
  assert.equal(a.session!.events, 2);
  assert.equal(a.session!.startedAt, new Date(b.time(10 * MIN)).toISOString());
  const late = r.users.get("b")!;
  assert.equal(late.sessionCount, 1);
  assert.equal(late.session!.events, 1, "a past session's event leaves the current one alone");
  assert.equal(late.session!.startedAt, new Date(b.time(40 * MIN)).toISOString());
});

Deno.test("user sessions: a late event carrying an earlier client session's id opens no session", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("page_viewed", "u", 0, { url: "/" }, { sessionId: "s-1" }),
    b.event("page_viewed", "u", 10 * MIN, { url: "/" }, { sessionId: "s-2" }),
    b.event("page_viewed", "u", 5 * MIN, { url: "/late" }, { sessionId: "s-1" }),
  ]);
  const u = r.users.get("u")!;
  assert.equal(u.sessionCount, 2);
  assert.equal(u.session!.id, "s-2");
  assert.equal(u.session!.events, 1);
  assert.deepEqual(u.recentSessions.map((s) => [s.id, s.events]), [["s-1", 1]]);
  assert.equal(u.eventCount, 3);
});

Deno.test("user sessions: the duration follows a start moved back by the latest event; at most USER_RECENT_SESSIONS kept", async () => {
  const b = new EventBuilder();
  const moved = await fold([
    b.event("page_viewed", "u", 10 * MIN, { url: "/" }),
    b.event("page_viewed", "u", 20 * MIN, { url: "/" }),
    b.event("page_viewed", "u", 5 * MIN, { url: "/earlier" }),
  ]);
  assert.equal(moved.users.get("u")!.session!.durationSeconds, 15 * MIN);
  const many = await fold(Array.from({ length: 8 }, (_, i) => b.event("page_viewed", "v", i * HOUR, { url: "/" })));
  const v = many.users.get("v")!;
  assert.equal(v.sessionCount, 8);
  assert.deepEqual(v.recentSessions.map((s) => s.number), [7, 6, 5, 4, 3]);
});

Deno.test("user funnel: each activity reports only the stages its session reached for the first time", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("page_viewed", "u", 0, { url: "/" }),
    b.event("product_viewed", "u", 60, { productId: "p" }),
    b.event("product_viewed", "u", 120, { productId: "q" }),
    b.event("checkout_started", "u", 180, {}),
  ]);
  assert.deepEqual(activities(r).map((a) => a.reached), [
    ["visited"],
    ["viewed_product"],
    undefined,
    ["added_to_cart", "started_checkout"],
  ]);
});

Deno.test("cart_abandoned: a late change dated before the last one does not move the deadline back", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("product_added_to_cart", "u", 20 * MIN, { productId: "a", quantity: 1, price: 4 }),
    b.event("product_added_to_cart", "u", 5 * MIN, { productId: "b", quantity: 1, price: 6 }),
  ], { until: b.time(3 * HOUR) });
  const abandoned = r.alerts.filter((a) => a.type === "cart_abandoned");
  assert.deepEqual(abandoned.map((a) => [a.occurredAt, a.details.lastChangeAt, a.details.cartValue]), [
    [new Date(b.time(50 * MIN)).toISOString(), new Date(b.time(20 * MIN)).toISOString(), 10],
  ]);
});

/** User u's cart after a fold, and its cart_abandoned alerts (time and value): what arrival order must not change. */
function cartOf(r: Awaited<ReturnType<typeof fold>>) {
  const cart = r.users.get("u")!.cart;
  const abandoned = r.alerts.filter((a) => a.type === "cart_abandoned").map((a) => [a.occurredAt, a.details.cartValue]);
  return { items: cart.items, value: cart.value, units: cart.units, abandoned };
}

Deno.test("user cart: a late add dated before the product's latest add adds its units at the newer price and labels", async () => {
  const b = new EventBuilder();
  const newer = b.event("product_added_to_cart", "u", 5 * MIN, {
    productId: "a",
    quantity: 1,
    price: 12,
    category: "boots",
  });
  const older = b.event("product_added_to_cart", "u", 0, { productId: "a", quantity: 1, price: 10, category: "shoes" });
  const brand = b.event("product_added_to_cart", "u", 1 * MIN, {
    productId: "a",
    quantity: 1,
    price: 9,
    brand: "acme",
  });
  const options = { partitions: 1, until: b.time(3 * HOUR) };
  const inTime = cartOf(await fold([older, brand, newer], options));
  assert.deepEqual(inTime.items, { a: { quantity: 3, price: 12, category: "boots", brand: "acme" } });
  assert.equal(inTime.value, 36);
  // Arriving after the newer add, the older ones used to set the price (10, then 9) for all the units, and their
  // category: the view's cart and the cart_abandoned alert said 27 where event-time order says 36.
  assert.deepEqual(cartOf(await fold([newer, older, brand], options)), inTime);
  assert.deepEqual(cartOf(await fold([newer, brand, older], options)), inTime);
  // Of one instant, arrival order: the second add's price is the latest.
  const same = b.event("product_added_to_cart", "u", 5 * MIN, { productId: "a", quantity: 1, price: 7 });
  assert.deepEqual(cartOf(await fold([newer, same], options)).items, {
    a: { quantity: 2, price: 7, category: "boots" },
  });
});

Deno.test("user cart: a late removal dated before the product was added to the cart removes none of those units", async () => {
  const b = new EventBuilder();
  const early = b.event("product_added_to_cart", "u", 0, { productId: "a", quantity: 1, price: 10 });
  const order = b.event("order_completed", "u", 20 * MIN, {
    orderId: "o1",
    items: [{ productId: "a", quantity: 1, price: 10 }],
    total: 10,
  });
  const removal = b.event("product_removed_from_cart", "u", 21 * MIN, { productId: "a" });
  const again = b.event("product_added_to_cart", "u", 31 * MIN, { productId: "a", quantity: 2, price: 11 });
  const options = { partitions: 1, until: b.time(3 * HOUR) };
  // In event-time order the removal finds the cart the order emptied, and the later add is left: abandoned at +30 min.
  const inTime = cartOf(await fold([early, order, removal, again], options));
  assert.deepEqual(inTime.items, { a: { quantity: 2, price: 11 } });
  assert.equal(inTime.abandoned.length, 1);
  // Arriving after the later add, the removal took its units: an empty cart, and no cart_abandoned.
  assert.deepEqual(cartOf(await fold([early, order, again, removal], options)), inTime);
  // A removal dated after the add still removes it, late or not.
  const after = b.event("product_removed_from_cart", "u", 32 * MIN, { productId: "a", quantity: 1 });
  const later = b.event("product_added_to_cart", "u", 33 * MIN, { productId: "b", quantity: 1, price: 1 });
  const removed = cartOf(await fold([early, order, again, later, after], options));
  assert.deepEqual(removed.items, { a: { quantity: 1, price: 11 }, b: { quantity: 1, price: 1 } });
  assert.deepEqual(removed, cartOf(await fold([early, order, again, after, later], options)));
});

Deno.test("a cart converts once: a second checkout or the order after a checkout counts no second converted cart", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("product_added_to_cart", "u", 0, { productId: "a", quantity: 1, price: 4 }),
    b.event("checkout_started", "u", 60, {}),
    b.event("checkout_started", "u", 120, {}),
    b.event("order_completed", "u", 180, {
      orderId: "o",
      items: [{ productId: "a", quantity: 1, price: 4 }],
      total: 4,
    }),
  ]);
  assert.deepEqual(activities(r).map((a) => a.cartConverted), [undefined, true, false, false]);
});

Deno.test("checkout: the event's cartValue is kept and reported by checkout_abandoned; an order of its instant closes it", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("product_added_to_cart", "u", 0, { productId: "a", quantity: 1, price: 4 }),
    b.event("checkout_started", "u", 60, { cartValue: 99 }),
    b.event("product_added_to_cart", "v", 0, { productId: "a", quantity: 1, price: 4 }),
    b.event("checkout_started", "v", 60, {}),
    // Same millisecond, arriving after the checkout (a batch posted without occurredAt): it closes that checkout.
    b.event("order_completed", "v", 60, { orderId: "o", items: [{ productId: "a", quantity: 1, price: 4 }], total: 4 }),
  ], { until: b.time(3 * HOUR) });
  assert.equal(r.users.get("u")!.checkout?.cartValue, 99);
  const abandoned = r.alerts.filter((a) => a.type === "checkout_abandoned");
  assert.deepEqual(abandoned.map((a) => [a.subject.id, a.details.cartValue]), [["u", 99]]);
  assert.equal(r.users.get("v")!.checkout, null);
});

Deno.test("user orders: a late order keeps the latest as lastOrder, moves firstOrderAt back, and pairs with no session", async () => {
  const b = new EventBuilder();
  const order = (id: string, seconds: number, productId: string) =>
    b.event("order_completed", "u", seconds, { orderId: id, items: [{ productId, quantity: 1, price: 5 }], total: 5 });
  const r = await fold([order("o2", 2 * HOUR, "p1"), order("o1", 0, "p9")], { partitions: 1 });
  const u = r.users.get("u")!;
  assert.equal(u.orders.lastOrder?.orderId, "o2");
  assert.equal(u.orders.firstOrderAt, new Date(b.time(0)).toISOString());
  assert.deepEqual(u.session!.bought, ["p1"]);
  const late = productFacts(r).filter((f) => f.productId === "p9");
  assert.deepEqual(late.map((f) => [f.fact, f.fact === "product_ordered" ? f.coBought : null]), [[
    "product_ordered",
    [],
  ]]);
  assert.equal(productFacts(r).filter((f) => f.fact === "co_occurrence").length, 0);
});

Deno.test("user orders: a late order is scored and alerted, but the view's fraud stays the latest order's, as lastOrder", async () => {
  const b = new EventBuilder(Date.UTC(2026, 0, 5, 3, 0, 0)); // 03:00 UTC: night_time
  const order = (id: string, seconds: number, total: number) =>
    b.event("order_completed", "u", seconds, {
      orderId: id,
      items: [{ productId: "p1", quantity: 1, price: total }],
      total,
    });
  const settings = domainSettings({ FRAUD_ALERT_THRESHOLD: 0.5 });
  const r = await fold([order("o2", 4 * HOUR, 1200), order("o1", 0, 600)], { partitions: 1, settings });
  const u = r.users.get("u")!;
  assert.equal(u.orders.lastOrder?.orderId, "o2");
  assert.deepEqual(u.fraud, {
    orderId: "o2",
    score: 0.6,
    signals: ["high_total", "first_order_high"],
    suspected: true,
  });
  // The late order is still scored against the orders dated before it, and its alert raised.
  const alerts = r.alerts.map((a) => [a.details.orderId, a.details.score, a.details.signals]);
  assert.deepEqual(alerts, [["o2", 0.6, ["high_total", "first_order_high"]], ["o1", 0.5, [
    "night_time",
    "first_order_high",
  ]]]);
  // Orders of the same instant follow their arrival order: the later arrival is the latest.
  const tie = await fold([order("o3", 0, 10), order("o4", 0, 20)], { partitions: 1 });
  assert.equal(tie.users.get("u")!.fraud?.orderId, "o4");
  assert.equal(tie.users.get("u")!.orders.lastOrder?.orderId, "o4");
});

Deno.test("user orders: the average order value is rounded to the thousandth; the kept history is bounded", async () => {
  const b = new EventBuilder();
  const order = (id: string, seconds: number, total: number) =>
    b.event("order_completed", "u", seconds, {
      orderId: id,
      items: [{ productId: "p", quantity: 1, price: total }],
      total,
    });
  const r = await fold([order("o1", 0, 10), order("o2", HOUR, 10), order("o3", 2 * HOUR, 10.001)], {
    settings: domainSettings({ USER_RECENT_ORDERS: 2 }),
  });
  const u = r.users.get("u")!;
  assert.equal(u.orders.averageOrderValue, 10);
  assert.equal(u.orders.count, 3);
  assert.deepEqual(u.orders.recent.map((o) => o.orderId), ["o3", "o2"]);
});

Deno.test("user orders: co-bought neighbours within RECS_SESSION_ITEMS positions; a line's category comes from the cart", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("product_added_to_cart", "u", 0, { productId: "a", quantity: 1, price: 4, category: "shoes" }),
    b.event("order_completed", "u", 60, {
      orderId: "o",
      items: ["a", "b", "c"].map((productId) => ({ productId, quantity: 1, price: 4 })),
      total: 12,
    }),
  ], { settings: domainSettings({ RECS_SESSION_ITEMS: 1 }) });
  const ordered = productFacts(r).filter((f) => f.fact === "product_ordered");
  assert.deepEqual(
    ordered.map((f) => f.fact === "product_ordered" && [f.productId, f.coBought, f.category ?? null]),
    [["a", ["b"], "shoes"], ["b", ["a", "c"], null], ["c", ["b"], null]],
  );
  assert.deepEqual(activities(r)[1].categoryRevenue, { shoes: 4000, unknown: 8000 });
});

Deno.test('user orders: a blank category is none given: revenue by category has no category named ""', async () => {
  // Storefronts send "" for a product they have not categorised; the product actor already takes it for none.
  const b = new EventBuilder();
  const r = await fold([
    b.event("product_added_to_cart", "u", 0, { productId: "a", quantity: 1, price: 4, category: "shoes" }),
    b.event("product_added_to_cart", "u", 10, { productId: "a", quantity: 1, price: 4, category: "" }),
    b.event("order_completed", "u", 60, {
      orderId: "o",
      items: [
        { productId: "a", quantity: 2, price: 4, category: "" }, // the cart's category
        { productId: "b", quantity: 1, price: 4, category: "" }, // none at all
      ],
      total: 12,
    }),
  ]);
  assert.equal(r.users.get("u")!.orders.count, 1);
  assert.deepEqual(activities(r)[2].categoryRevenue, { shoes: 8000, unknown: 4000 });
  assert.deepEqual(recentTotals(r.global!, 15)!.revenueByCategory, { shoes: 8, unknown: 4 });
  const ordered = productFacts(r).filter((f) => f.fact === "product_ordered");
  assert.deepEqual(ordered.map((f) => f.fact === "product_ordered" && [f.productId, f.category ?? null]), [
    ["a", "shoes"],
    ["b", null],
  ]);
  // Nor does a product hear of a blank category or brand from a view or a cart add (it ignored "", not spaces).
  const spaces = await fold([
    b.event("product_viewed", "u", 0, { productId: "c", category: " ", brand: "  " }),
    b.event("product_added_to_cart", "u", 10, { productId: "d", price: 1, category: " ", brand: " " }),
  ]);
  for (const id of ["c", "d"]) {
    const product = spaces.persisted("product", id) as { category: string | null; brand: string | null };
    assert.deepEqual([product.category, product.brand], [null, null], id);
  }
});

Deno.test("user facts: a late product view pairs with nothing in the current session and leaves its list alone", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("product_viewed", "u", 2 * HOUR, { productId: "p1" }),
    b.event("product_viewed", "u", 2 * HOUR + 60, { productId: "p2" }),
    b.event("product_viewed", "u", 0, { productId: "p9" }),
  ], { partitions: 1 });
  assert.deepEqual(r.users.get("u")!.session!.viewed, ["p2", "p1"]);
  const p9 = productFacts(r).filter((f) => f.productId === "p9");
  assert.deepEqual(p9.map((f) => f.fact === "product_viewed" && f.coViewed), [[]]);
});

Deno.test("a late order dated before an open checkout leaves it open: checkout_abandoned still comes", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("checkout_started", "u", 10 * MIN, {}),
    b.event("order_completed", "u", 5 * MIN, {
      orderId: "o",
      items: [{ productId: "a", quantity: 1, price: 4 }],
      total: 4,
    }),
  ], { until: b.time(3 * HOUR) });
  assert.deepEqual(r.alerts.filter((a) => a.type === "checkout_abandoned").map((a) => a.occurredAt), [
    new Date(b.time(40 * MIN)).toISOString(),
  ]);
  assert.equal(r.users.get("u")!.orders.count, 1);
});

Deno.test("user counters and bounded lists: page views, searches, recent products, alerts, purchases, exclusions", async () => {
  const b = new EventBuilder();
  const settings = domainSettings({ USER_RECENT_ALERTS: 2, RECS_EXCLUDE_LIMIT: 2, RECS_MIN_INTERVAL_SECONDS: 0 });
  const events = [
    b.event("page_viewed", "u", 0, { url: "/" }),
    b.event("page_viewed", "u", 1, { url: "/" }),
    b.event("search_performed", "u", 2, { query: "hat" }),
  ];
  for (let i = 0; i < RECENT_PRODUCTS_LIMIT + 2; i++) {
    events.push(b.event("product_viewed", "u", 10 + i, { productId: `p${i}` }));
  }
  // Three abandoned carts, an hour apart, and an order of three products.
  for (let i = 0; i < 3; i++) {
    events.push(b.event("product_added_to_cart", "u", HOUR * (i + 1), { productId: "c", quantity: 1, price: 1 }));
  }
  events.push(b.event("order_completed", "u", 5 * HOUR, {
    orderId: "o",
    items: ["x", "y", "z"].map((productId) => ({ productId, quantity: 1, price: 1 })),
    total: 3,
  }));
  events.push(b.event("product_added_to_cart", "u", 5 * HOUR + 1, { productId: "c2", quantity: 1, price: 1 }));
  events.push(b.event("product_viewed", "u", 5 * HOUR + 2, { productId: "p0" }));
  const r = await fold(events, { settings, until: b.time(6 * HOUR) });
  const u = r.users.get("u")!;
  assert.deepEqual([u.pageViews, u.searches, u.productViews], [2, 1, RECENT_PRODUCTS_LIMIT + 3]);
  assert.equal(u.recentProducts.length, RECENT_PRODUCTS_LIMIT);
  assert.deepEqual(u.recentProducts.slice(0, 2), ["p0", `p${RECENT_PRODUCTS_LIMIT + 1}`]);
  const abandoned = r.alerts.filter((a) => a.type === "cart_abandoned");
  assert.equal(abandoned.length, 4, "each add re-arms: one per cart state");
  assert.equal(abandoned[0].severity, "info");
  assert.equal(u.alerts.length, 2, "USER_RECENT_ALERTS");
  assert.deepEqual(u.purchasedProducts, ["x", "y"]);
  const last = productFacts(r).at(-1)!;
  assert.deepEqual(last.fact === "product_viewed" && last.recommend, { exclude: ["c2", "x"] });
});

Deno.test("events arriving after the partition clock passed their deadlines raise no abandonment their own later events cancel", async () => {
  // The partition's clock is an hour ahead (another user's event, or an idle partition following the wall) when a
  // shopper's buffered events arrive: an offline client flushing its queue, a producer back from an outage. The cart
  // add's deadline (30 min) has passed by the clock, yet its checkout and order, 5 and 8 minutes after it, come next.
  const b = new EventBuilder();
  const ahead = b.event("page_viewed", "x", 60 * MIN, { url: "/" });
  const add = (user: string) => b.event("product_added_to_cart", user, 0, { productId: "a", quantity: 1, price: 4 });
  const checkout = (user: string) => b.event("checkout_started", user, 5 * MIN, {});
  const order = (user: string) =>
    b.event("order_completed", user, 8 * MIN, {
      orderId: `o-${user}`,
      items: [{ productId: "a", quantity: 1, price: 4 }],
      total: 4,
    });
  // And what event time says was abandoned still is: a checkout 40 minutes after the cart change, an order 45 minutes
  // after the checkout. Both used to be cancelled by those late events once the timers waited for the clock.
  const late = (type: "checkout_started" | "order_completed", user: string, minute: number) =>
    type === "checkout_started" ? b.event(type, user, minute * MIN, {}) : b.event(type, user, minute * MIN, {
      orderId: `o-${user}`,
      items: [{ productId: "a", quantity: 1, price: 4 }],
      total: 4,
    });
  const events = [
    ahead,
    add("bought"),
    checkout("bought"),
    order("bought"),
    add("checkedOut"),
    checkout("checkedOut"),
    add("left"),
    add("slow"),
    late("checkout_started", "slow", 40),
    late("order_completed", "slow", 50), // within the checkout's 30 minutes
    b.event("checkout_started", "slower", 0, {}),
    late("order_completed", "slower", 45),
    b.event("page_viewed", "x", 61 * MIN, { url: "/" }), // the clock moves on: what is still due fires
  ];
  const abandonments = (alerts: { type: string; subject: { id: string }; occurredAt: string }[]) =>
    alerts.filter((a) => a.type.endsWith("_abandoned")).map((a) => [a.type, a.subject.id, a.occurredAt]).sort();
  // Each at its event-time deadline, as in a run where the events came in time; nothing for the shopper who bought.
  const expected = [
    ["cart_abandoned", "left", new Date(b.time(30 * MIN)).toISOString()],
    ["cart_abandoned", "slow", new Date(b.time(30 * MIN)).toISOString()],
    ["checkout_abandoned", "checkedOut", new Date(b.time(35 * MIN)).toISOString()],
    ["checkout_abandoned", "slower", new Date(b.time(30 * MIN)).toISOString()],
  ];
  const folded = await fold(events, { partitions: 1 });
  assert.deepEqual(abandonments(folded.alerts), expected);
  assert.equal(folded.users.get("bought")!.abandonedCarts, 0);
  assert.equal(folded.global!.minutes.reduce((n, m) => n + m.cartsAbandoned, 0), 2);
  assert.equal(folded.global!.minutes.reduce((n, m) => n + m.checkoutsAbandoned, 0), 2);
  // The event those abandonments were raised before is counted too, under a fact id of its own.
  assert.equal(folded.global!.minutes.reduce((n, m) => n + m.checkouts, 0), 4);
  assert.equal(folded.global!.minutes.reduce((n, m) => n + m.orders, 0), 3);
  assert.deepEqual([folded.users.get("slow")!.cart.units, folded.users.get("slow")!.checkout], [0, null]);

  const h = new Harness(userLogic, 1, 1_000, { idleClockMs: 3_600_000 });
  h.wall = b.time(61 * MIN);
  await h.start();
  for (const event of events) h.send(event.userId as string, event);
  await h.drained();
  await h.stop();
  const alerts = h.log.all(h.topics.alerts).map((r) => JSON.parse(new TextDecoder().decode(r.value!)));
  assert.deepEqual(abandonments(alerts), expected);
});

Deno.test("a late event past two waiting deadlines raises both before itself, earliest first, as the timers would", async () => {
  const b = new EventBuilder();
  const events = [
    b.event("page_viewed", "x", 60 * MIN, { url: "/" }), // the clock is an hour ahead
    b.event("product_added_to_cart", "u", 10 * MIN, { productId: "a", quantity: 1, price: 4 }), // deadline 40 min
    b.event("checkout_started", "u", 5 * MIN, {}), // dated before that change: takes no cart; deadline 35 min
    b.event("page_viewed", "u", 50 * MIN, { url: "/" }), // past both
  ];
  const folded = await fold(events, { partitions: 1 });
  const raised = (alerts: { type: string; subject: { id: string }; occurredAt: string }[]) =>
    alerts.filter((a) => a.subject.id === "u").map((a) => [a.type, a.occurredAt.slice(11, 16)]);
  assert.deepEqual(raised(folded.alerts), [["checkout_abandoned", "10:35"], ["cart_abandoned", "10:40"]]);
  assert.deepEqual(folded.users.get("u")!.alerts.map((a) => a.type), ["cart_abandoned", "checkout_abandoned"]);
});

Deno.test("an inventory_updated produced straight to `events` (keyed by its product) reaches the product's stock", async () => {
  const b = new EventBuilder();
  const update = b.inventory("sku-1", 4, 0);
  const onEvents = { ...record(update), key: "sku-1", offset: 7 };
  const emitted: { topic: string; key: string; value: unknown }[] = [];
  const ctx = {
    now: () => b.time(0),
    emit: (topic: string, key: string, value: unknown) => emitted.push({ topic, key, value }),
    outputId: (rule: string) => `events-0-7-${rule}`,
    setTimer: () => {},
    cancelTimer: () => {},
    timer: () => undefined,
  };
  const initial = userLogic.initial("sku-1");
  const state = userLogic.handle(initial, userLogic.decode(onEvents), ctx);
  // It was dropped: the user actor keyed by the product id ignored it, and the stock stayed unknown.
  assert.deepEqual(emitted.map((o) => [o.topic, o.key]), [["productEvents", "sku-1"]]);
  // The very state it was given: the runtime then neither persists nor shows a user under the product's id.
  assert.equal(state, initial, "no user is counted for it");
  const forwarded = {
    ...onEvents,
    topic: "product-events",
    value: new TextEncoder().encode(JSON.stringify(emitted[0].value)),
  };
  const product = await productLogic.handle(
    productLogic.initial("sku-1"),
    productLogic.decode(forwarded),
    { ...ctx, outputId: (rule: string) => `product-events-0-0-${rule}` },
  );
  assert.equal(product.stock, 4);
  assert.deepEqual(emitted.slice(1).map((o) => (o.value as { type: string }).type), ["low_inventory"]);
  // Forwarded again by a replay of `events`, it is the same event (eventId), counted once.
  const again = await productLogic.handle(product, productLogic.decode(forwarded), ctx);
  assert.equal(again.eventCount, 1);
  assert.equal(again.duplicates, 1);
});

Deno.test("a late event of a past session is counted under that session's name, not as a session of its own", async () => {
  const b = new EventBuilder();
  const r = await fold([
    b.event("page_viewed", "u", 0, { url: "/" }), // session 1: 10:00–10:05
    b.event("page_viewed", "u", 300, { url: "/" }),
    b.event("page_viewed", "u", 3_600, { url: "/" }), // session 2: 11:00
    b.event("page_viewed", "u", 240, { url: "/" }), // late, 10:04: session 1's (it was active then)
    b.event("page_viewed", "v", 0, { url: "/" }, { sessionId: "tab-a" }), // session 1
    b.event("page_viewed", "v", 60, { url: "/" }, { sessionId: "tab-b" }), // session 2
    b.event("page_viewed", "v", 30, { url: "/" }, { sessionId: "tab-a" }), // late, by its id: session 1's
    b.event("page_viewed", "w", 36_000, { url: "/" }),
    b.event("page_viewed", "w", 0, { url: "/" }), // late, and of no session the user remembers
  ]);
  const names = activities(r).map((f) => f.session);
  // `u/late` and `v/late` were extra active sessions in 10:04 and 10:00, beside `u/1` and `v/1`.
  assert.deepEqual(names, ["u/1", "u/1", "u/2", "u/1", "v/1", "v/2", "v/1", "w/1", "w/late"]);
  assert.equal(r.users.get("u")!.session!.number, 2, "the current session stays the current one");
  assert.equal(r.users.get("u")!.recentSessions[0].events, 2, "a late event leaves past sessions as they were");
});

Deno.test("a user's checkpoint leaves out the top-level fields at their initial value, and restores them", async () => {
  const b = new EventBuilder();
  const { users } = await fold([b.event("product_viewed", "u", 0, { productId: "p1" })]);
  const state = users.get("u")!;
  const persisted = parseJson(JSON.stringify(userLogic.persist(state))) as Record<string, unknown>;
  for (const field of ["cart", "orders", "checkout", "fraud", "alerts", "pageViews", "cartAbandonedAt"]) {
    assert.ok(!(field in persisted), `${field} left out`);
  }
  assert.deepEqual(userLogic.restore(persisted), state, "restored whole");
  assert.ok(!JSON.stringify(persisted).includes("basedOn"), "a recommendation request is kept by its time alone");
  // What an engine from before this form restores of it: the stored fields over a new user's (actors/user_state.ts).
  assert.deepEqual({ ...userLogic.initial("u"), ...persisted }, state, "an older engine restores it whole too");

  // A cart abandoned leaves its time in the checkpoint (restoring would otherwise take it from the alerts), and a
  // cart that has changed is kept whole, emptied or not.
  const abandoned = await fold([
    b.event("product_added_to_cart", "w", 0, { productId: "p1", quantity: 1, price: 2 }),
    b.event("product_removed_from_cart", "w", 60 * 60, { productId: "p1" }),
  ]);
  const w = abandoned.users.get("w")!;
  assert.equal(w.abandonedCarts, 1);
  const kept = parseJson(JSON.stringify(userLogic.persist(w))) as Record<string, unknown>;
  assert.ok("cartAbandonedAt" in kept && "cart" in kept);
  assert.deepEqual(userLogic.restore(kept), w);
});

Deno.test("recommendation requests checkpointed with what they were based on restore as this release keeps them", async () => {
  const b = new EventBuilder();
  const { users } = await fold([
    b.event("product_viewed", "u", 0, { productId: "p1" }),
    b.event("product_viewed", "u", 600, { productId: "p2" }),
  ]);
  const state = users.get("u")!;
  assert.equal(state.recommendations.recent.length, 2);
  // A checkpoint of a release before 2026-12-06 kept `basedOn` beside each request's time.
  const older = parseJson(JSON.stringify(state)) as UserState;
  const withBasis = {
    ...older,
    recommendations: {
      ...older.recommendations,
      recent: older.recommendations.recent.map((r, i) => ({ ...r, basedOn: `p${2 - i}` })),
    },
  };
  const restored = userLogic.restore(withBasis);
  assert.deepEqual(restored, state, "restored as the fold of this release holds it");
  assert.deepEqual(userLogic.persist(restored), userLogic.persist(state));
});
