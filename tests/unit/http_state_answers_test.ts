/**
 * GET /v1/users/{id} and /v1/products/{id} answer the documented User and Product (http/state_answers.ts):
 * real states folded from events, read live from memory, from the last checkpoint, and through the
 * owning instance (the query forwarded once), give the same public view in all three, with none of
 * the engine's internals and every time an ISO 8601 string.
 */
import assert from "node:assert/strict";
import type { CheckpointStore } from "../../engine/checkpoint.ts";
import type { ActorRuntime } from "../../engine/runtime.ts";
import { createStateReader, INSTANCE_HEADER, type StateReader } from "../../engine/state_reader.ts";
import { productAnswer, userAnswer } from "../../http/state_answers.ts";
import { EventBuilder, fold } from "../helpers/fold.ts";
import { BASE, FIXTURE_FORWARD_SECRET, httpFixture } from "./http_fixture.ts";

const b = new EventBuilder();
const order = {
  orderId: "o1",
  items: [{ productId: "p1", quantity: 2, price: 10, category: "shoes" }, { productId: "p2", quantity: 1, price: 5 }],
  total: 25,
  currency: "EUR",
  paymentMethod: "card",
};
const folded = await fold([
  b.inventory("p1", 12, 0),
  b.event("page_viewed", "alice", 1, { url: "/" }),
  b.event("product_viewed", "alice", 2, { productId: "p1", price: 10, category: "shoes", brand: "acme" }),
  b.event("product_viewed", "alice", 3, { productId: "p2", price: 5 }),
  b.event("product_added_to_cart", "alice", 4, { productId: "p1", quantity: 2, price: 10, category: "shoes" }),
  b.event("checkout_started", "alice", 5, { cartValue: 20 }),
  b.event("order_completed", "alice", 6, order),
  b.event("product_viewed", "bob", 7, { productId: "p1" }),
  b.event("product_added_to_cart", "alice", 100, { productId: "p2", price: 5 }),
], { until: b.time(3 * 3600) });
const AS_OF = "2026-11-22T11:59:00.000Z";

/** The three ways a state is read: from memory, from the checkpoint, and forwarded to the owner (which has it in memory). */
function readers(kind: string, key: string, state: unknown): Record<string, StateReader> {
  const runtime = (live: boolean) =>
    ({
      lookup: (k: string, id: string) => live && k === kind && id === key ? { state, partition: 0 } : undefined,
      owned: () => [],
    }) as unknown as ActorRuntime;
  const store = {
    read: (k: string, id: string) =>
      Promise.resolve(k === kind && id === key ? { state, updatedAt: new Date(AS_OF) } : null),
  } as unknown as CheckpointStore;
  const owner = httpFixture(createStateReader(runtime(true), store));
  const routing = {
    registry: {
      instanceId: "asker",
      owner: () => Promise.resolve({ instanceId: "owner", httpUrl: BASE }),
    },
    forwardSecret: FIXTURE_FORWARD_SECRET,
    kinds: {
      [kind]: { topic: "t", partitions: 1, path: (id: string) => `/v1/${kind}s/${encodeURIComponent(id)}` },
    },
    fetch: async (input: string | URL | Request, init?: RequestInit) => (await owner).handle(new Request(input, init)),
  };
  return {
    memory: createStateReader(runtime(true), store),
    checkpoint: createStateReader(runtime(false), store),
    forwarded: createStateReader(runtime(false), store, routing),
  };
}

async function answers(
  kind: "user" | "product",
  key: string,
  stored: unknown = folded.persisted(kind, key),
): Promise<Record<string, Record<string, unknown>>> {
  const found: Record<string, Record<string, unknown>> = {};
  for (const [name, reader] of Object.entries(readers(kind, key, stored))) {
    const { handle } = await httpFixture(reader);
    const response = await handle(new Request(`${BASE}/v1/${kind}s/${key}`));
    assert.equal(response.status, 200, name);
    found[name] = await response.json();
    // README: the instance that answered is also the x-engine-instance header.
    assert.equal(response.headers.get(INSTANCE_HEADER), found[name].instance ?? null, `${name}: ${INSTANCE_HEADER}`);
  }
  return found;
}

/** The answer without where it came from. */
function view({ source: _s, asOf: _a, instance: _i, ...rest }: Record<string, unknown>): Record<string, unknown> {
  return rest;
}

/** Every key anywhere in `value`. */
function keys(value: unknown, found = new Set<string>()): Set<string> {
  if (Array.isArray(value)) value.forEach((v) => keys(v, found));
  else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      found.add(k);
      keys(v, found);
    }
  }
  return found;
}

Deno.test("GET /v1/users/{id} answers the documented User, the same from memory, the checkpoint and the owner", async () => {
  const found = await answers("user", "alice");
  for (const [name, body] of Object.entries(found)) {
    const user = userAnswer.strict().parse(body);
    for (const internal of ["seenEventHashes", "revenueMillis", "recent", "version", "viewed", "bought"]) {
      assert.ok(!keys(body).has(internal), `${name}: ${internal} is internal`);
    }
    assert.equal(user.productViews, 2, name);
    assert.deepEqual(user.recentProducts, ["p2", "p1"], name);
    assert.deepEqual(user.cart.items, { p2: { quantity: 1, price: 5 } }, name);
    assert.deepEqual(user.orders.lastOrder, {
      orderId: "o1",
      at: new Date(b.time(6)).toISOString(),
      total: 25,
      currency: "EUR",
      items: 2,
      units: 3,
    });
    assert.deepEqual(user.alerts.map((a) => a.type), ["cart_abandoned"], name);
  }
  assert.deepEqual([found.memory.source, found.memory.asOf, found.memory.instance], ["memory", undefined, undefined]);
  assert.deepEqual([found.checkpoint.source, found.checkpoint.asOf], ["checkpoint", AS_OF]);
  assert.deepEqual([found.forwarded.source, found.forwarded.instance], ["memory", "owner"]);
  assert.deepEqual(view(found.checkpoint), view(found.memory));
  assert.deepEqual(view(found.forwarded), view(found.memory));
});

Deno.test("GET /v1/products/{id} answers the documented Product, the same from memory, the checkpoint and the owner", async () => {
  const found = await answers("product", "p1");
  for (const [name, body] of Object.entries(found)) {
    const product = productAnswer.strict().parse(body);
    for (const internal of ["viewers", "dedupe", "trend", "coViewed", "coBought", "inventory", "attributes"]) {
      assert.ok(!keys(body).has(internal), `${name}: ${internal} is internal`);
    }
    assert.equal(product.lastEventAt, new Date(b.time(7)).toISOString(), `${name}: times are ISO 8601`);
    assert.deepEqual(
      [product.views, product.uniqueViewers, product.orders, product.unitsSold, product.revenue, product.stock],
      [2, 2, 1, 2, 20, 10],
      name,
    );
    assert.deepEqual([product.category, product.brand, product.price], ["shoes", "acme", 10], name);
    assert.deepEqual(product.conversion, { viewToCart: 0.5, viewToPurchase: 0.5 }, name);
    assert.deepEqual(product.related, [{ productId: "p2", score: 4 }], name);
    assert.ok(product.trendingScore > 0, name);
  }
  assert.deepEqual(view(found.checkpoint), view(found.memory));
  assert.deepEqual(view(found.forwarded), view(found.memory));
});

Deno.test("GET /v1/products/{id} of a product never seen answers 404, from memory, the checkpoint and the owner", async () => {
  for (const [name, reader] of Object.entries(readers("product", "p1", folded.persisted("product", "p1")))) {
    const { handle } = await httpFixture(reader);
    const response = await handle(new Request(`${BASE}/v1/products/never-seen`));
    assert.equal(response.status, 404, name);
    assert.equal(response.headers.get("content-type"), "application/problem+json", name);
    const problem = await response.json();
    assert.equal(problem.status, 404, name);
    assert.match(problem.detail, /never-seen/, name);
  }
});

Deno.test("related products forwarded to the owner are still ranked from all the candidates it counts", async () => {
  // q0 viewed again after each of 14 other products in one session: more candidates than its short `related` list.
  const many = await fold(
    Array.from({ length: 14 }, (_, i) => [
      b.event("product_viewed", "carol", 10 + 2 * i, { productId: `q${i + 1}` }),
      b.event("product_viewed", "carol", 11 + 2 * i, { productId: "q0" }),
    ]).flat(),
  );
  const cases = [
    { key: "p1", stored: folded.persisted("product", "p1"), candidates: 1 },
    { key: "q0", stored: many.persisted("product", "q0"), candidates: 14 },
  ];
  for (const { key, stored, candidates } of cases) {
    const related = async (reader: StateReader) => {
      const { handle } = await httpFixture(reader);
      return await (await handle(new Request(`${BASE}/v1/products/${key}/related?limit=100`))).json();
    };
    const { memory, forwarded } = readers("product", key, stored);
    const [local, remote] = [await related(memory), await related(forwarded)];
    assert.equal(local.items.length, candidates, key);
    assert.deepEqual(remote.items, local.items, key);
  }
  const shown = productAnswer.parse((await answers("product", "q0", many.persisted("product", "q0"))).memory).related;
  assert.ok(shown.length < 14, `GET /v1/products/q0 lists ${shown.length} related products`);
});

Deno.test("GET /v1/users/{id} shows a checkout awaiting its order, and once reported abandoned, as the user actor holds it", async () => {
  const pending = await fold([
    b.event("product_added_to_cart", "dave", 0, { productId: "p1", quantity: 2, price: 10 }),
    b.event("checkout_started", "dave", 60, { cartValue: 20 }),
  ], { until: b.time(600) });
  const abandoned = await fold([
    b.event("product_added_to_cart", "dave", 0, { productId: "p1", quantity: 2, price: 10 }),
    b.event("checkout_started", "dave", 60, { cartValue: 20 }),
  ], { until: b.time(3 * 3600) });
  const startedAt = new Date(b.time(60)).toISOString();
  for (const [name, r, isAbandoned] of [["pending", pending, false], ["abandoned", abandoned, true]] as const) {
    for (const [source, body] of Object.entries(await answers("user", "dave", r.persisted("user", "dave")))) {
      const user = userAnswer.parse(body);
      assert.deepEqual(user.checkout, { startedAt, cartValue: 20, abandoned: isAbandoned }, `${name}, ${source}`);
      assert.equal(user.abandonedCheckouts, isAbandoned ? 1 : 0, `${name}, ${source}`);
    }
  }
});

Deno.test("GET /v1/users/{id} shows the current session, and the earlier ones apart, most recent first", async () => {
  const r = await fold([
    b.event("page_viewed", "erin", 0, { url: "/" }),
    b.event("page_viewed", "erin", 3600, { url: "/" }), // an hour later: a new session
    b.event("product_viewed", "erin", 3660, { productId: "p1" }),
    b.event("page_viewed", "erin", 7200, { url: "/" }), // and a third
  ]);
  for (const [source, body] of Object.entries(await answers("user", "erin", r.persisted("user", "erin")))) {
    const user = userAnswer.parse(body);
    assert.equal(user.sessionCount, 3, source);
    assert.deepEqual(
      [user.session?.number, user.session?.startedAt, user.session?.events],
      [3, new Date(b.time(7200)).toISOString(), 1],
      source,
    );
    assert.deepEqual(
      user.recentSessions.map((s) => [s.number, s.events, s.productViews]),
      [[2, 2, 1], [1, 1, 0]],
      source,
    );
  }
});
