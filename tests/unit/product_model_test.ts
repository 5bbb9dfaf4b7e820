/**
 * The product actor against an independent model of the SPEC ("Inventory", "Product statistics",
 * "Recommendations"), written here from the rules rather than from the actor code: per-product
 * counts, exact distinct viewers, the exact decayed trending formula, session co-occurrence, the
 * rate-limited recommendations, and stock with its crossing alerts. The engine runs through the
 * reference fold; the model never calls actor code.
 */
import assert from "node:assert/strict";
import { parseCsv, textChunks } from "../../actors/import/csv.ts";
import { importRees46 } from "../../actors/import/rees46.ts";
import type { StoredEvent } from "../../actors/events.ts";
import { EventBuilder, fold } from "../helpers/fold.ts";
import { prng } from "../helpers/prng.ts";

const REES46 = new URL("../../../shared/data/rees46-2019-10-head5k.csv", import.meta.url);
const HOUR_MS = 3_600_000;
/** Default settings the model follows (README): weights, windows and bounds. */
const WEIGHT = { view: 1, cart: 3, purchase: 5 };
const SESSION_GAP_MS = 30 * 60_000;
const SESSION_ITEMS = 10;
const RELATED_CANDIDATES = 50;
const TOP_K = 5;
const CO_BOUGHT_WEIGHT = 3;
const RECS_INTERVAL_MS = 60_000;
const LOW_STOCK = 10;

interface ModelProduct {
  views: number;
  viewers: Set<string>;
  carts: number;
  orders: number;
  units: number;
  revenueCents: number;
  category?: [string, number];
  brand?: [string, number];
  activity: [number, number][];
}

interface ModelUser {
  session?: string;
  last: number;
  viewed: string[];
  bought: string[];
  cart: Set<string>;
  purchased: Set<string>;
  lastRequest: number;
}

/** The SPEC's product statistics and recommendations for in-order events, computed from first principles. */
function model(events: readonly StoredEvent[]) {
  const products = new Map<string, ModelProduct>();
  const coViewed = new Map<string, Map<string, number>>();
  const coBought = new Map<string, Map<string, number>>();
  const users = new Map<string, ModelUser>();
  const recommendations: string[] = [];
  const product = (id: string) => {
    let p = products.get(id);
    if (!p) {
      p = { views: 0, viewers: new Set(), carts: 0, orders: 0, units: 0, revenueCents: 0, activity: [] };
      products.set(id, p);
    }
    return p;
  };
  const pair = (counts: Map<string, Map<string, number>>, a: string, b: string) => {
    for (const [x, y] of [[a, b], [b, a]]) {
      const m = counts.get(x) ?? new Map<string, number>();
      m.set(y, (m.get(y) ?? 0) + 1);
      counts.set(x, m);
    }
  };
  const recent = (list: string[], id: string) => [id, ...list.filter((x) => x !== id)].slice(0, SESSION_ITEMS);
  const label = (current: [string, number] | undefined, value: string | undefined, at: number) =>
    value && (!current || at > current[1] || (at === current[1] && value > current[0]))
      ? [value, at] as [string, number]
      : current;
  for (const e of events) {
    const p = e.properties as Record<string, never>;
    const at = Date.parse(e.occurredAt);
    const user = users.get(e.userId!) ??
      {
        last: -Infinity,
        viewed: [],
        bought: [],
        cart: new Set<string>(),
        purchased: new Set<string>(),
        lastRequest: -Infinity,
      };
    users.set(e.userId!, user);
    if (e.sessionId !== user.session || at - user.last > SESSION_GAP_MS) {
      Object.assign(user, { session: e.sessionId, viewed: [], bought: [] });
    }
    user.last = at;
    const request = (id: string) => {
      if (at - user.lastRequest < RECS_INTERVAL_MS) return;
      user.lastRequest = at;
      const scores = new Map(coViewed.get(id) ?? []);
      for (const [x, n] of coBought.get(id) ?? []) scores.set(x, (scores.get(x) ?? 0) + CO_BOUGHT_WEIGHT * n);
      const items = [...scores].filter(([x]) => x !== id && !user.cart.has(x) && !user.purchased.has(x))
        .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, TOP_K);
      if (items.length > 0) recommendations.push(JSON.stringify([e.userId, id, items]));
    };
    if (e.type === "product_viewed") {
      const x = product(p.productId);
      x.views++;
      x.viewers.add(e.userId!);
      x.activity.push([at, WEIGHT.view]);
      x.category = label(x.category, p.category, at);
      x.brand = label(x.brand, p.brand, at);
      if (!user.viewed.includes(p.productId)) { for (const other of user.viewed) pair(coViewed, other, p.productId); }
      user.viewed = recent(user.viewed, p.productId);
      request(p.productId);
    } else if (e.type === "product_added_to_cart") {
      const x = product(p.productId);
      x.carts++;
      x.activity.push([at, WEIGHT.cart]);
      x.category = label(x.category, p.category, at);
      x.brand = label(x.brand, p.brand, at);
      user.cart.add(p.productId);
      request(p.productId);
    } else if (e.type === "order_completed") {
      for (const item of p.items as { productId: string; quantity: number; price: number; category?: string }[]) {
        const x = product(item.productId);
        x.orders++;
        x.units += item.quantity;
        x.revenueCents += Math.round(item.quantity * item.price * 100);
        x.activity.push([at, WEIGHT.purchase]);
        x.category = label(x.category, item.category, at);
        for (const other of user.bought) if (other !== item.productId) pair(coBought, other, item.productId);
        user.bought = recent(user.bought, item.productId);
        user.purchased.add(item.productId);
      }
      user.cart.clear();
    }
  }
  return { products, coViewed, coBought, recommendations };
}

/** The SPEC's trending score at `at`: Σ weight × 2^(−(at − t)/half-life). */
function exactTrend(activity: readonly [number, number][], at: number): number {
  return activity.reduce((sum, [t, w]) => sum + w * 2 ** (-(at - t) / HOUR_MS), 0);
}

async function rees46(): Promise<StoredEvent[]> {
  const file = await Deno.open(REES46);
  const events: StoredEvent[] = [];
  for await (const event of importRees46(parseCsv(textChunks(file.readable)))) events.push(event);
  return events;
}

Deno.test("REES46 sample: every product's statistics, trend, co-occurrence and the recommendations match the model", async () => {
  const events = await rees46();
  const want = model(events);
  const r = await fold(events);
  assert.equal(r.products.size, want.products.size);
  let compared = 0;
  for (const [id, m] of want.products) {
    const p = r.persisted("product", id) as Record<string, never>;
    assert.deepEqual(
      [p.views, p.cartAdds, p.orders, p.unitsSold, p.revenue, p.category, p.brand],
      [m.views, m.carts, m.orders, m.units, m.revenueCents / 100, m.category?.[0] ?? null, m.brand?.[0] ?? null],
      id,
    );
    assert.deepEqual(p.conversion, {
      viewToCart: m.views > 0 ? Math.round(m.carts / m.views * 1e6) / 1e6 : 0,
      viewToPurchase: m.views > 0 ? Math.round(m.orders / m.views * 1e6) / 1e6 : 0,
    });
    const unique = m.viewers.size;
    assert.ok(
      Math.abs(p.uniqueViewers - unique) <= Math.max(1, 0.02 * unique),
      `${id}: ${p.uniqueViewers} vs ${unique}`,
    );
    // The stored score is as of `trendingAt` (its newest activity bucket, a twelfth of the half-life): decayed to the
    // latest activity it is the formula's value within the bucket's width, a factor 2^(1/12).
    const latest = Math.max(...m.activity.map(([t]) => t));
    const stored = p.trendingScore * 2 ** (-(latest - Date.parse(p.trendingAt)) / HOUR_MS);
    const exact = exactTrend(m.activity, latest);
    assert.ok(
      stored / exact <= 2 ** (1 / 12) + 1e-6 && exact / stored <= 2 ** (1 / 12) + 1e-6,
      `${id}: ${stored} vs ${exact}`,
    );
    // Co-occurrence counts are exact while below the bound (Space-Saving estimates beyond it).
    const viewed = Object.fromEntries([...want.coViewed.get(id) ?? []]);
    const bought = Object.fromEntries([...want.coBought.get(id) ?? []]);
    if (Object.keys(viewed).length < RELATED_CANDIDATES) {
      assert.deepEqual({ ...p.coViewed as object }, viewed, id);
      compared++;
    } else assert.equal(Object.keys(p.coViewed).length, RELATED_CANDIDATES);
    assert.deepEqual({ ...p.coBought as object }, bought, id);
  }
  assert.ok(compared > 2000);
  const got = r.recommendations.map((x) =>
    JSON.stringify([x.userId, x.basedOn, x.items.map((i) => [i.productId, i.score])])
  );
  assert.equal(want.recommendations.length, 1717);
  assert.deepEqual(got, want.recommendations);
});

Deno.test("trending score: the formula's value at a few times, after long gaps and whatever the arrival order", async () => {
  const b = new EventBuilder(); // t0 is on a bucket boundary; every event below is too, so the score is exact
  const view = (user: string, s: number) => b.event("product_viewed", user, s, { productId: "p1" });
  const cart = (user: string, s: number) =>
    b.event("product_added_to_cart", user, s, { productId: "p1", quantity: 1, price: 1 });
  const order = (user: string, s: number) =>
    b.event("order_completed", user, s, {
      orderId: `o-${user}`,
      items: [{ productId: "p1", quantity: 2, price: 1 }],
      total: 2,
    });
  const cases: [Record<string, unknown>[], [number, number][]][] = [
    [[view("a", 0), view("b", 1800), cart("c", 5400)], [[0, 1], [1800, 1], [5400, 3]]],
    [[view("a", 0), order("b", 7200)], [[0, 1], [7200, 5]]],
    // Nine hours apart: the old view still counts (2^−9); eleven: it is beyond ten half-lives and dropped (< 0.1%).
    [[view("a", 0), view("b", 9 * 3600)], [[0, 1], [9 * 3600, 1]]],
    [[view("a", 0), view("b", 11 * 3600)], [[11 * 3600, 1]]],
  ];
  for (const [events, activity] of cases) {
    const at = Math.max(...activity.map(([t]) => t)) * 1000;
    const want = Math.round(exactTrend(activity.map(([t, w]) => [t * 1000, w]), at) * 1e6) / 1e6;
    for (const order of [events, [...events].reverse()]) {
      const p = (await fold(order)).persisted("product", "p1") as { trendingScore: number; trendingAt: string };
      assert.equal(p.trendingScore, want, JSON.stringify(activity));
      assert.equal(p.trendingAt, new Date(b.time(at / 1000)).toISOString());
    }
  }
});

Deno.test("stock and its alerts match the model over random updates and orders (two lines of a product in one order, oversold)", async () => {
  let seed = 7;
  const next = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
  for (let run = 0; run < 60; run++) {
    const b = new EventBuilder();
    const events: Record<string, unknown>[] = [];
    let stock: number | null = null;
    let low = false;
    let out = false;
    const want: string[] = [];
    const check = (s: number) => {
      if (stock === null) return;
      if (stock < LOW_STOCK && !low) want.push(`low_inventory@${s}:${stock}`);
      low = stock < LOW_STOCK;
      if (stock === 0 && !out) want.push(`out_of_stock@${s}:${stock}`);
      out = stock === 0;
    };
    for (let i = 0; i < 40; i++) {
      const s = i * 10;
      if (next(4) === 0) {
        stock = next(30);
        events.push(b.inventory("p1", stock, s));
        check(s);
        continue;
      }
      const [q1, q2] = [1 + next(6), next(2) ? 1 + next(3) : 0];
      const items = [
        { productId: "p1", quantity: q1, price: 1 },
        ...(q2 ? [{ productId: "p1", quantity: q2, price: 2 }] : []),
      ];
      events.push(b.event("order_completed", `u${i}`, s, { orderId: `o${i}`, items, total: q1 + 2 * q2 }));
      if (stock !== null) stock = Math.max(0, stock - q1 - q2); // never below zero
      check(s);
    }
    const r = await fold(events, { partitions: 1 });
    const got = r.alerts.filter((a) => a.subject.kind === "product")
      .map((a) => `${a.type}@${(Date.parse(a.occurredAt) - b.t0) / 1000}:${(a.details as { stock: number }).stock}`);
    assert.deepEqual(got, want, `run ${run}`);
    assert.equal(r.products.get("p1")!.stock, stock, `run ${run}`);
  }
});

Deno.test("stock and its alerts do not depend on the arrival order of one update and several sales (seeded shuffles)", async () => {
  const seed = 20261205;
  const random = prng(seed);
  const int = (n: number) => Math.floor(random() * n);
  for (let run = 0; run < 40; run++) {
    const b = new EventBuilder();
    const updateAt = 50 + int(100);
    const reported = int(40);
    const update = b.inventory("p1", reported, updateAt);
    // Sales before, at (already in the snapshot) and after the update, some at the same instant as another.
    const sales = Array.from({ length: 1 + int(8) }, (_, i) => {
      const at = int(4) === 0 ? updateAt : int(250);
      const quantity = 1 + int(8);
      return {
        at,
        quantity,
        event: b.event("order_completed", `u${i}`, at, {
          orderId: `o${i}`,
          items: [{ productId: "p1", quantity, price: 1 }],
          total: quantity,
        }),
      };
    });
    // The model, in event time: the update is a snapshot at its instant; each later sale takes its units, never below 0.
    const stock = sales.filter((s) => s.at > updateAt).reduce((n, s) => Math.max(0, n - s.quantity), reported);
    const want = [...(stock < LOW_STOCK ? ["low_inventory"] : []), ...(stock === 0 ? ["out_of_stock"] : [])];
    const events = [update, ...sales.map((s) => s.event)];
    for (let shuffle = 0; shuffle < 6; shuffle++) {
      for (let i = events.length - 1; i > 0; i--) {
        const j = int(i + 1);
        [events[i], events[j]] = [events[j], events[i]];
      }
      const r = await fold(events, { partitions: 1 });
      const label = `seed ${seed} run ${run}: ${events.map((e) => `${e.type}@${e.occurredAt}`).join(", ")}`;
      assert.equal(r.products.get("p1")!.stock, stock, label);
      const got = r.alerts.filter((a) => a.subject.kind === "product");
      assert.deepEqual(got.map((a) => a.type), want, label);
      // Each alert carries the stock at the crossing it reports, as the event that revealed it saw it.
      for (const a of got) assert.ok((a.details as { stock: number }).stock < LOW_STOCK, label);
    }
  }
});
