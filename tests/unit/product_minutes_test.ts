/**
 * Product minute counts (the `productMinutes` stored output): the product actor emits one delta per
 * fact, the partition worker adds them up per product and minute, and the checkpoint adds them to
 * the store with the offset that covers them, so transient failures (rewinds) and crashes never
 * count a fact twice. Checked against sums computed directly from the facts sent.
 */
import assert from "node:assert/strict";
import type { ActorLogic } from "../../engine/actor.ts";
import type { ProductMessage } from "../../actors/facts.ts";
import { productLogic, type ProductState } from "../../actors/product.ts";
import { countMinute } from "../../actors/product_minute.ts";
import { minuteOf as minuteOfMs } from "../../actors/rollups.ts";
import { initialProduct } from "../../actors/product_state.ts";
import { ProductMinuteDeltas } from "../../engine/product_minutes.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { migrate } from "../../sql/migrations.ts";
import { storeProductMinutes } from "../../sql/product_minutes.ts";
import { Harness } from "../helpers/runtime.ts";
import { EventBuilder, fold } from "../helpers/fold.ts";
import { prng } from "../helpers/prng.ts";

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 10, 22, 10, 0);

type Fact = Record<string, unknown> & { factId: string; productId: string; at: number; fact: string };

/** Random views, cart adds and orders of 6 products over 3 hours. */
function randomFacts(seed: number, n: number): Fact[] {
  const random = prng(seed);
  return Array.from({ length: n }, (_, i) => {
    const productId = `p${Math.floor(random() * 6)}`;
    const base = {
      factId: `f${i}`,
      productId,
      userId: `u${i % 7}`,
      session: `s${i % 7}`,
      at: T0 + Math.floor(random() * 180 * MINUTE),
      category: `c${productId.slice(1) as string}`.replace(/[345]$/, "x"),
    };
    const kind = random();
    if (kind < 0.6) return { ...base, fact: "product_viewed", coViewed: [] };
    if (kind < 0.8) return { ...base, fact: "product_added_to_cart", quantity: 2, priceMillis: 1500 };
    return {
      ...base,
      fact: "product_ordered",
      orderId: `o${i}`,
      quantity: 1 + (i % 3),
      revenueMillis: 1000 * (1 + (i % 3)),
      coBought: [],
    };
  });
}

/** Sums per product over [from, to), straight from the facts. */
function expectedSums(facts: readonly Fact[], from: number, to: number) {
  const out = new Map<string, { views: number; cartAdds: number; orders: number; units: number; revenue: number }>();
  for (const f of facts) {
    if (f.at < from || f.at >= to) continue;
    const s = out.get(f.productId) ?? { views: 0, cartAdds: 0, orders: 0, units: 0, revenue: 0 };
    if (f.fact === "product_viewed") s.views++;
    if (f.fact === "product_added_to_cart") s.cartAdds++;
    if (f.fact === "product_ordered") {
      s.orders++;
      s.units += f.quantity as number;
      s.revenue += f.revenueMillis as number;
    }
    out.set(f.productId, s);
  }
  return out;
}

/** The same sums from the checkpoint store's product minutes. */
function storedSums(h: Harness, from: number, to: number) {
  const out = new Map<string, { views: number; cartAdds: number; orders: number; units: number; revenue: number }>();
  for (const m of h.store.productMinutes.values()) {
    if (m.minute < from || m.minute >= to) continue;
    const s = out.get(m.productId) ?? { views: 0, cartAdds: 0, orders: 0, units: 0, revenue: 0 };
    s.views += m.views;
    s.cartAdds += m.cartAdds;
    s.orders += m.orders;
    s.units += m.units;
    s.revenue += m.revenueMillis;
    out.set(m.productId, s);
  }
  return out;
}

/** Products ranked by views, ties by id. */
const ranking = (sums: Map<string, { views: number }>) =>
  [...sums].sort(([a, x], [b, y]) => y.views - x.views || (a < b ? -1 : 1)).map(([id]) => id);

const sorted = <V>(m: Map<string, V>) => new Map([...m].sort(([a], [b]) => (a < b ? -1 : 1)));

/** The product logic, failing transiently on chosen facts (the worker then rewinds to its checkpoint). */
function flakyProductLogic(failOn: Set<string>): ActorLogic<ProductState, ProductMessage> {
  return {
    ...productLogic,
    handle: (state, message, ctx) => {
      if ("fact" in message && failOn.delete(message.factId)) throw new Error("database hiccup");
      return productLogic.handle(state, message, ctx);
    },
  };
}

Deno.test("the product actor emits one minute delta per counted fact, and none for a duplicate", () => {
  const emitted: unknown[] = [];
  const ctx = {
    now: () => T0,
    emit: (topic: string, _key: string, value: unknown) => topic === "productMinutes" && emitted.push(value),
    outputId: (rule: string) => `x-${rule}`,
    setTimer: () => {},
    cancelTimer: () => {},
    timer: () => undefined,
  };
  const at = T0 + 90_500;
  const view = { fact: "product_viewed", factId: "f1", productId: "p1", userId: "u", session: "s", at, coViewed: [] };
  let state = productLogic.handle(initialProduct("p1"), { ...view, category: "toys" } as ProductMessage, ctx);
  state = productLogic.handle(state as ProductState, view as ProductMessage, ctx); // same factId: dropped
  assert.equal(emitted.length, 1);
  assert.deepEqual(emitted[0], {
    productId: "p1",
    minute: T0 + MINUTE,
    category: "toys",
    brand: null,
    views: 1,
    cartAdds: 0,
    orders: 0,
    categoryOrders: 0,
    units: 0,
    revenueMillis: 0,
    keepFrom: T0 + MINUTE - 30 * 86_400_000,
  });
});

Deno.test("ProductMinuteDeltas adds deltas up per product and minute", () => {
  const deltas = new ProductMinuteDeltas();
  const p = initialProduct("p1");
  const firstDelta = countMinute(p, T0 + 1, { views: 1 }, 30);
  deltas.add(firstDelta);
  deltas.add(countMinute(p, T0 + 59_999, { orders: 1, units: 3, revenueMillis: 4500 }, 30));
  deltas.add(countMinute(p, T0 + MINUTE, { views: 1 }, 30));
  deltas.add(countMinute(initialProduct("p2"), T0, { cartAdds: 1 }, 30));
  assert.equal(deltas.size, 3);
  const first = deltas.values().find((d) => d.productId === "p1" && d.minute === T0)!;
  assert.deepEqual([first.views, first.orders, first.units, first.revenueMillis], [1, 1, 3, 4500]);
  // Sums are kept in the collection's own objects: the deltas given to it are left as they were.
  assert.deepEqual([firstDelta.views, firstDelta.orders, firstDelta.units], [1, 0, 0]);
  deltas.clear();
  assert.equal(deltas.size, 0);
  assert.deepEqual(deltas.values(), []);
});

Deno.test("storeProductMinutes adds each delta to its product's row for its minute (PostgreSQL, via PGlite)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "product-minutes-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    const deltas = new ProductMinuteDeltas();
    const p = { ...initialProduct("p1"), category: { value: "shoes", at: T0 } };
    for (const at of [T0 + 1, T0 + 59_999, T0 + MINUTE, T0 + 7 * MINUTE + 5]) {
      deltas.add(countMinute(p, at, { views: 1 }, 30));
    }
    deltas.add(countMinute(initialProduct("p2"), T0 + 2 * MINUTE, { orders: 1, units: 2, revenueMillis: 1500 }, 30));
    await db.sql.begin((tx) => storeProductMinutes(tx, 0, deltas.values()));
    await db.sql.begin((tx) => storeProductMinutes(tx, 0, deltas.values())); // a second checkpoint adds again
    const rows = await db.sql<{ product_id: string; ms: string; category: string | null; sums: string }[]>`
      select product_id, (extract(epoch from minute) * 1000)::bigint as ms, category,
             concat_ws(',', views, orders, units, revenue_millis) as sums
        from product_minutes order by product_id, minute`;
    assert.deepEqual(rows.map((r) => [r.product_id, Number(r.ms), r.category, r.sums]), [
      ["p1", T0, "shoes", "4,0,0,0"],
      ["p1", T0 + MINUTE, "shoes", "2,0,0,0"],
      ["p1", T0 + 7 * MINUTE, "shoes", "2,0,0,0"],
      ["p2", T0 + 2 * MINUTE, null, "0,2,4,3000"],
    ]);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stored product minutes equal the facts' sums per window, through rewinds and a crash", async () => {
  const facts = randomFacts(7, 600);
  // Transient failures in the middle of batches: the worker rewinds and drops the deltas it had added up.
  const h = new Harness(flakyProductLogic(new Set(["f37", "f122", "f123", "f401"])), 3, 45);
  await h.start();
  for (const f of facts.slice(0, 300)) h.send(f.productId, f);
  await h.drained();
  await h.crash();
  for (const f of facts.slice(300)) h.send(f.productId, f);
  await h.start("second-instance");
  await h.drained();
  await h.stop();

  const end = T0 + 180 * MINUTE;
  for (const minutes of [5, 15, 60, 180]) {
    const from = end - minutes * MINUTE;
    const expected = expectedSums(facts, from, end);
    assert.deepEqual(sorted(storedSums(h, from, end)), sorted(expected), `${minutes}-minute window`);
    assert.deepEqual(ranking(storedSums(h, from, end)), ranking(expected), `${minutes}-minute ranking`);
  }
  // Every stored minute is a minute boundary and carries its product's category.
  for (const m of h.store.productMinutes.values()) {
    assert.equal(m.minute % MINUTE, 0);
    assert.ok(m.category?.startsWith("c"));
  }
});

Deno.test("a checkpoint whose earlier attempt committed (lost reply) adds nothing twice", async () => {
  const h = new Harness(productLogic, 1);
  await h.start();
  const facts = randomFacts(3, 50);
  for (const f of facts) h.send(f.productId, f);
  await h.drained();
  await h.stop();
  const before = structuredClone([...h.store.productMinutes]);
  const [id, row] = [...h.store.partitions][0];
  const [groupId] = id.split("/");
  const delta = { ...[...h.store.productMinutes.values()][0], keepFrom: 0 };
  const tp = { topic: h.topics.events, partition: 0 };
  const write = {
    tp,
    groupId,
    epoch: row.epoch,
    clock: row.clock,
    kind: "product",
    upserts: [],
    deletes: [],
    projections: { alerts: [], recommendations: [], analyticsHistory: [], productMinutes: [delta] },
  };
  // The same epoch already stands at nextOffset: the retry is acknowledged and writes nothing.
  const retried = await h.store.commit({ ...write, previousOffset: row.nextOffset - 10, nextOffset: row.nextOffset });
  assert.equal(retried.committed, true);
  // An offset that is neither: nothing written, and the writer is told where the store stands.
  const stale = await h.store.commit({ ...write, previousOffset: 1, nextOffset: 2 });
  assert.equal(stale.committed, false);
  assert.equal(stale.storedOffset, row.nextOffset);
  assert.equal(stale.storedClock, row.clock);
  assert.deepEqual([...h.store.productMinutes], before);
});

Deno.test("ProductMinuteDeltas sums each category of a product's minute apart, keeping the latest brand and history bound", () => {
  const deltas = new ProductMinuteDeltas();
  const delta = (category: string | null, brand: string | null, keepFrom: number) => ({
    productId: "p1",
    minute: T0,
    category,
    brand,
    views: 1,
    cartAdds: 0,
    orders: 0,
    units: 0,
    revenueMillis: 0,
    keepFrom,
  });
  deltas.add(delta("phones", "acme", T0 - 30 * 86_400_000));
  // The product was recategorised within the minute: its views count in each category, as the realtime revenue does.
  deltas.add(delta("tablets", "globex", T0 + MINUTE - 30 * 86_400_000));
  deltas.add(delta("tablets", null, T0 + MINUTE - 30 * 86_400_000));
  deltas.add(delta("phones", "initech", T0 - 30 * 86_400_000));
  const sums = Object.fromEntries(deltas.values().map((d) => [d.category, [d.brand, d.views, d.keepFrom]]));
  assert.deepEqual(sums, {
    phones: ["initech", 2, T0 - 30 * 86_400_000],
    tablets: ["globex", 2, T0 + MINUTE - 30 * 86_400_000],
  }, "the latest brand reported, and the bound of the latest fact: older minutes go");
  assert.equal(deltas.size, 2);
});

Deno.test("a checkpoint prunes its own partition's product minutes before the newest history bound of its deltas, no others (PostgreSQL, via PGlite)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "product-minutes-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    const delta = (productId: string, minute: number, keepFrom: number) => ({
      ...countMinute(initialProduct(productId), minute, { views: 1 }, 30),
      keepFrom,
    });
    const bound = T0 + 10 * MINUTE;
    // Partition 1, replaying a backlog, still counts minutes that partition 0's clock has left behind.
    await db.sql.begin((tx) => storeProductMinutes(tx, 1, [delta("p9", T0, T0)]));
    await db.sql.begin((tx) =>
      storeProductMinutes(tx, 0, [delta("p1", T0, T0), delta("p1", bound - MINUTE, T0), delta("p2", bound, T0)])
    );
    // A late fact's delta carries an older bound than the fact after it: the newest one counts.
    await db.sql.begin((tx) =>
      storeProductMinutes(tx, 0, [delta("p3", bound + MINUTE, bound - MINUTE), delta("p3", bound + 2 * MINUTE, bound)])
    );
    const rows = await db.sql<{ product_id: string; ms: string }[]>`
      select product_id, (extract(epoch from minute) * 1000)::bigint as ms from product_minutes
       order by product_id, minute`;
    assert.deepEqual(rows.map((r) => [r.product_id, Number(r.ms)]), [
      ["p2", bound],
      ["p3", bound + MINUTE],
      ["p3", bound + 2 * MINUTE],
      ["p9", T0],
    ]);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a fact dated ahead of its receipt prunes its partition's product minutes only from its receipt: a minute inside the 30-day window stays", async () => {
  const DAY = 86_400_000;
  const received = T0;
  const h = new Harness(productLogic, 1);
  await h.start();
  // p1's view 29 days 23 h 58 min before the latest receipt: inside the 30d window ending at the minute after it.
  const old = received - 30 * DAY + 2 * MINUTE;
  h.send("p1", {
    fact: "product_viewed",
    factId: "f1",
    productId: "p1",
    userId: "u1",
    session: "s1",
    at: old,
    coViewed: [],
  });
  await h.drained();
  // p2 viewed on a client clock five minutes fast (accepted up to MAX_EVENT_FUTURE_MS), as the user actor forwards it.
  h.send("p2", {
    fact: "product_viewed",
    factId: "f2",
    productId: "p2",
    userId: "u2",
    session: "s2",
    at: received + 5 * MINUTE,
    receivedAt: received,
    coViewed: [],
  });
  await h.drained();
  await h.stop();
  const windowFrom = received + MINUTE - 30 * DAY;
  assert.ok(minuteOfMs(old) >= windowFrom);
  assert.deepEqual(
    [...h.store.productMinutes.values()].map((m) => [m.productId, m.minute]).sort(),
    [["p1", minuteOfMs(old)], ["p2", received + 5 * MINUTE]].sort(),
  );
});

Deno.test("the user actor forwards a fast client's receipt time with its product facts, and their history bound follows it", async () => {
  const b = new EventBuilder(T0);
  const folded = await fold([{
    ...b.event("product_viewed", "u1", 600, { productId: "p1" }),
    receivedAt: new Date(b.time(300)).toISOString(), // the client's clock is five minutes fast
  }]);
  const facts = folded.outputs.filter((o) => o.topic === "productEvents").map((o) =>
    o.value as Record<string, unknown>
  );
  assert.deepEqual(facts.map((f) => [f.at, f.receivedAt]), [[b.time(600), b.time(300)]]);
  const minutes = folded.outputs.filter((o) => o.topic === "productMinutes").map((o) =>
    o.value as { keepFrom: number }
  );
  assert.deepEqual(minutes.map((m) => m.keepFrom), [minuteOfMs(b.time(300)) - 30 * 86_400_000]);
});

Deno.test("stored product minutes sum each fact under its own category when products change category mid-minute, through rewinds and a crash", async () => {
  // Every fact states one of three categories, whatever its product's earlier or later facts said.
  const random = prng(11);
  const facts: Fact[] = randomFacts(5, 400).map((f) => ({
    ...f,
    category: ["phones", "tablets", "toys"][Math.floor(random() * 3)],
  }));
  const h = new Harness(flakyProductLogic(new Set(["f20", "f250"])), 2, 30);
  await h.start();
  for (const f of facts.slice(0, 200)) h.send(f.productId, f);
  await h.drained();
  await h.crash();
  for (const f of facts.slice(200)) h.send(f.productId, f);
  await h.start("second-instance");
  await h.drained();
  await h.stop();

  const byCategory = (rows: Iterable<{ category?: unknown; views: number; units: number; revenue: number }>) => {
    const out: Record<string, [number, number, number]> = {};
    for (const r of rows) {
      const s = out[r.category as string] ??= [0, 0, 0];
      s[0] += r.views;
      s[1] += r.units;
      s[2] += r.revenue;
    }
    return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
  };
  const expected = byCategory(facts.map((f) => ({
    category: f.category,
    views: f.fact === "product_viewed" ? 1 : 0,
    units: f.fact === "product_ordered" ? f.quantity as number : 0,
    revenue: f.fact === "product_ordered" ? f.revenueMillis as number : 0,
  })));
  const stored = byCategory(
    [...h.store.productMinutes.values()].map((m) => ({ ...m, revenue: m.revenueMillis })),
  );
  assert.deepEqual(stored, expected);
});
