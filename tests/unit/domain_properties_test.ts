import assert from "node:assert/strict";
import fc from "fast-check";
import { addToCart, type Cart, EMPTY_CART, removeFromCart } from "../../actors/cart.ts";
import { toMillis } from "../../actors/money.ts";
import type { PersistedProduct } from "../../actors/product_state.ts";
import type { UserState } from "../../actors/user_state.ts";
import { EventBuilder, fold, type FoldResult } from "../helpers/fold.ts";

const PRODUCTS = ["p0", "p1", "p2", "p3", "p4"];
const USERS = ["u0", "u1", "u2", "u3"];
const PRICES = [0, 0.1, 1, 2.5, 9.99, 19.99, 1000.01];

/** One step of a user: the kind of event and its parameters (times are added when building). */
type Step =
  | { kind: "page"; loadTime?: number }
  | { kind: "search" }
  | { kind: "view"; product: number; price: number }
  | { kind: "add"; product: number; quantity: number; price: number }
  | { kind: "remove"; product: number; quantity?: number }
  | { kind: "checkout" }
  | { kind: "order"; lines: { product: number; quantity: number; price: number }[] }
  | { kind: "stock"; product: number; stock: number };

const product = fc.integer({ min: 0, max: PRODUCTS.length - 1 });
const price = fc.constantFrom(...PRICES);
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant("page" as const),
    loadTime: fc.option(fc.constantFrom(0.5, 2, 4), { nil: undefined }),
  }),
  fc.record({ kind: fc.constant("search" as const) }),
  fc.record({ kind: fc.constant("view" as const), product, price }),
  fc.record({ kind: fc.constant("add" as const), product, quantity: fc.integer({ min: 1, max: 4 }), price }),
  fc.record({
    kind: fc.constant("remove" as const),
    product,
    quantity: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
  }),
  fc.record({ kind: fc.constant("checkout" as const) }),
  fc.record({
    kind: fc.constant("order" as const),
    lines: fc.array(fc.record({ product, quantity: fc.integer({ min: 1, max: 3 }), price }), {
      minLength: 1,
      maxLength: 3,
    }),
  }),
  fc.record({ kind: fc.constant("stock" as const), product, stock: fc.integer({ min: 0, max: 30 }) }),
);
/** Seconds between consecutive steps: same second, seconds, minutes, past the session gap and abandonment. */
const gap = fc.constantFrom(0, 1, 20, 300, 1200, 1900, 4000);

/** A timed step of one user. */
interface Timed {
  readonly user: number;
  readonly step: Step;
  readonly at: number;
}

function build(b: EventBuilder, timed: readonly Timed[]): Record<string, unknown>[] {
  return timed.map(({ user, step, at }, i) => {
    const u = USERS[user];
    switch (step.kind) {
      case "page":
        return b.event("page_viewed", u, at, {
          url: "/",
          ...(step.loadTime !== undefined ? { loadTime: step.loadTime } : {}),
        });
      case "search":
        return b.event("search_performed", u, at, { query: "q" });
      case "view":
        return b.event("product_viewed", u, at, {
          productId: PRODUCTS[step.product],
          price: step.price,
          category: "c",
        });
      case "add":
        return b.event("product_added_to_cart", u, at, {
          productId: PRODUCTS[step.product],
          quantity: step.quantity,
          price: step.price,
        });
      case "remove":
        return b.event("product_removed_from_cart", u, at, {
          productId: PRODUCTS[step.product],
          ...(step.quantity !== undefined ? { quantity: step.quantity } : {}),
        });
      case "checkout":
        return b.event("checkout_started", u, at, {});
      case "order": {
        const items = step.lines.map((l) => ({ productId: PRODUCTS[l.product], quantity: l.quantity, price: l.price }));
        const total = items.reduce((t, l) => t + l.quantity * toMillis(l.price), 0) / 1000;
        return b.event("order_completed", u, at, { orderId: `o${i}`, items, total });
      }
      case "stock":
        return b.inventory(PRODUCTS[step.product], step.stock, at);
    }
  });
}

/** Steps of several users with non-decreasing times, in time order. */
const timeline = fc.array(fc.record({ user: fc.integer({ min: 0, max: USERS.length - 1 }), step, gap }), {
  minLength: 1,
  maxLength: 40,
}).map((raw) => {
  let at = 0;
  return raw.map(({ user, step, gap }) => ({ user, step, at: at += gap }));
});

/** What must not depend on partitioning: states without output ids and dedupe memories. */
function normalized(result: FoldResult) {
  const users = [...result.users.values()].sort(byKey("userId")).map((u) => ({
    ...u,
    alerts: u.alerts.map(({ alertId: _, ...rest }) => rest),
  }));
  const products = [...result.products.keys()].sort().map((id) => {
    const { dedupe: _d, ...rest } = result.persisted("product", id) as PersistedProduct;
    return rest;
  });
  const global = result.global
    ? (result.persisted("global", "global") as { minutes: unknown[]; facts: number }).minutes
    : [];
  return { users, products, global };
}

function byKey<T>(key: keyof T): (a: T, b: T) => number {
  return (a, b) => String(a[key]).localeCompare(String(b[key]));
}

Deno.test("property: the cart value is never negative and always Σ quantity × price", () => {
  const op = fc.oneof(
    fc.record({ add: fc.constant(true), product, quantity: fc.integer({ min: 1, max: 5 }), price }),
    fc.record({
      add: fc.constant(false),
      product,
      quantity: fc.option(fc.integer({ min: 1, max: 9 }), { nil: undefined }),
    }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      let cart: Cart = EMPTY_CART;
      ops.forEach((o, t) => {
        cart = o.add
          ? addToCart(cart, PRODUCTS[o.product], { quantity: o.quantity, price: o.price }, t)
          : removeFromCart(cart, PRODUCTS[o.product], o.quantity, t).cart;
        assert.ok(cart.value >= 0);
        assert.ok(cart.units >= 0);
        const expected = Object.values(cart.items).reduce((sum, i) => sum + i.quantity * toMillis(i.price), 0);
        assert.equal(toMillis(cart.value), expected);
        for (const item of Object.values(cart.items)) assert.ok(item.quantity >= 1);
      });
    }),
    { numRuns: 300 },
  );
});

Deno.test("property: the user actor's cart is never negative, whatever the events", async () => {
  await fc.assert(
    fc.asyncProperty(timeline, async (steps) => {
      const result = await fold(build(new EventBuilder(), steps));
      for (const u of result.users.values()) {
        assert.ok(u.cart.value >= 0 && u.cart.units >= 0);
        for (const item of Object.values(u.cart.items)) assert.ok(item.quantity >= 1);
      }
    }),
    { numRuns: 60 },
  );
});

Deno.test("property: counts are conserved under any interleaving of users", async () => {
  const perUser = fc.array(fc.array(fc.record({ step, gap }), { maxLength: 10 }), {
    minLength: USERS.length,
    maxLength: USERS.length,
  });
  await fc.assert(
    fc.asyncProperty(perUser, fc.infiniteStream(fc.nat()), async (sequences, randomness) => {
      // Each user's steps keep their order and their times; only the interleaving varies.
      const streams: Timed[][] = sequences.map((steps, user) => {
        let at = 0;
        return steps.map(({ step, gap }) => ({
          user,
          step: step.kind === "stock" ? { kind: "page" } : step,
          at: at += gap,
        }));
      });
      const inOrder = streams.flat();
      const cursors = streams.map(() => 0);
      const shuffled: Timed[] = [];
      const random = randomness[Symbol.iterator]();
      while (shuffled.length < inOrder.length) {
        const open = streams.map((s, u) => cursors[u] < s.length ? u : -1).filter((u) => u >= 0);
        const u = open[random.next().value! % open.length];
        shuffled.push(streams[u][cursors[u]++]);
      }
      const b1 = new EventBuilder();
      const events = build(b1, inOrder);
      const byId = new Map(inOrder.map((t, i) => [t, events[i]]));
      const a = await fold(events);
      const b = await fold(shuffled.map((t) => byId.get(t)!));

      const counts = (r: FoldResult) =>
        [...r.products.keys()].sort().map((id) => {
          const p = r.persisted("product", id) as PersistedProduct;
          return [
            id,
            p.views,
            p.uniqueViewers,
            p.cartAdds,
            p.cartUnitsAdded,
            p.cartUnitsRemoved,
            p.orders,
            p.unitsSold,
            p.revenue,
            p.trendingScore,
            p.coViewed,
            p.coBought,
          ];
        });
      assert.deepEqual(counts(b), counts(a));
      const carts = (r: FoldResult) =>
        [...r.users.values()].sort(byKey("userId")).map((
          u,
        ) => [u.userId, u.cart.items, u.eventCount, u.orders.revenueMillis]);
      assert.deepEqual(carts(b), carts(a));

      // Conservation: what users did is what products and the global rollups counted.
      const users = [...a.users.values()];
      const sum = (f: (u: UserState) => number) => users.reduce((n, u) => n + f(u), 0);
      const products = [...a.products.values()];
      assert.equal(products.reduce((n, p) => n + p.views, 0), sum((u) => u.productViews));
      const ordered = inOrder.flatMap((t) => t.step.kind === "order" ? t.step.lines : []);
      assert.equal(products.reduce((n, p) => n + p.unitsSold, 0), ordered.reduce((n, l) => n + l.quantity, 0));
      const minutes = a.global?.minutes ?? [];
      assert.equal(
        minutes.reduce((n, m) => n + Object.values(m.events).reduce((x, y) => x + y, 0), 0),
        sum((u) => u.eventCount),
      );
      assert.equal(minutes.reduce((n, m) => n + m.orders, 0), sum((u) => u.orders.count));
      assert.equal(minutes.reduce((n, m) => n + m.revenueMillis, 0), sum((u) => u.orders.revenueMillis));
    }),
    { numRuns: 60 },
  );
});

Deno.test("property: the same input under any partition assignment, with states packed after every step, gives the same final states", async () => {
  await fc.assert(
    fc.asyncProperty(
      timeline,
      fc.constantFrom(1, 2, 3, 5, 12),
      fc.func(fc.nat()),
      async (steps, partitions, assign) => {
        const events = build(new EventBuilder(), steps);
        const until = new EventBuilder().time(steps.at(-1)!.at + 3 * 3600);
        const reference = await fold(events, { partitions: 1, until });
        const other = await fold(events, {
          partitions,
          until,
          partitionOf: (_topic, key, n) => assign(key) % n,
          roundTrip: "packed",
        });
        const kafka = await fold(events, { partitions: 12, until, roundTrip: true });
        assert.deepEqual(normalized(other), normalized(reference));
        assert.deepEqual(normalized(kafka), normalized(reference));
        // Alerts of users and products too (the global actor's depend on when abandonments reach it).
        const local = (r: FoldResult) =>
          r.alerts.filter((x) => x.subject.kind !== "global").map((x) => [x.type, x.subject.id, x.occurredAt]).sort();
        assert.deepEqual(local(other), local(reference));
      },
    ),
    { numRuns: 60 },
  );
});
