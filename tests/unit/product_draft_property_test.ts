/**
 * The product actor builds a step's state in one copy (actors/product.ts): the same states (their fields in the same
 * order, and the same persisted form), and the same outputs, as the definition before it
 * (tests/helpers/reference_actors/product.ts, a copy of actors/product.ts as of d46a5bc), over random messages of
 * every kind: facts from several user partitions, replayed and retried copies, timer facts, inventory updates (events
 * too, repeated eventIds among them), stock crossing its thresholds, recommendations asked for, and restores from a
 * checkpoint's JSON. Every state handed to either side is frozen, with what it holds (a sketch's registers and the
 * co-occurrence maps excepted: freezing does not reach into those), so that a step that wrote into it throws.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { ActorContext, ActorLogic } from "../../engine/actor.ts";
import type { LogRecord } from "../../engine/log.ts";
import type { ProductMessage } from "../../actors/facts.ts";
import { createProductLogic, type ProductState } from "../../actors/product.ts";
import { domainSettings } from "../../actors/settings.ts";
import { createProductLogic as createReferenceLogic } from "../helpers/reference_actors/product.ts";

const MINUTE = 60_000;
const BASE = Date.UTC(2026, 0, 5, 12);
/** Small bounds, so that a few dozen messages reach them. */
const settings = domainSettings({
  FACT_DEDUPE_WINDOW: 1024,
  FACT_DEDUPE_RECENT_IDS: 4,
  RELATED_CANDIDATES: 3,
  LOW_STOCK_THRESHOLD: 3,
  RECS_TOP_K: 2,
});
const current = createProductLogic(settings);
const reference = createReferenceLogic(settings);

/** Freezes `value` and the plain objects and arrays it holds (not typed arrays, whose elements cannot be frozen). */
function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !ArrayBuffer.isView(value) && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/** The product actor's steps are synchronous: a promise here would be a change of its own. */
function settled(state: ProductState | Promise<ProductState>): ProductState {
  assert.ok(!(state instanceof Promise), "the product actor answered with a promise");
  return state;
}

const uuid = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
const other = fc.constantFrom("p2", "p3", "p4", "p5", "p6", "p1", "__proto__");
const related = fc.array(other, { maxLength: 4 });
const label = fc.option(fc.constantFrom("a", "b", ""), { nil: undefined });

const factBody = fc.oneof(
  fc.record({
    fact: fc.constant("product_viewed"),
    priceMillis: fc.option(fc.constantFrom(0, 1500, 19990), { nil: undefined }),
    category: label,
    brand: label,
    coViewed: related,
    recommend: fc.option(fc.record({ exclude: related }), { nil: undefined }),
  }),
  fc.record({
    fact: fc.constant("product_added_to_cart"),
    quantity: fc.integer({ min: 1, max: 3 }),
    priceMillis: fc.constantFrom(0, 1500, 19990),
    category: label,
    brand: label,
    recommend: fc.option(fc.record({ exclude: related }), { nil: undefined }),
  }),
  fc.record({ fact: fc.constant("product_removed_from_cart"), quantity: fc.integer({ min: 0, max: 3 }) }),
  fc.record({
    fact: fc.constant("product_ordered"),
    orderId: fc.constantFrom("o1", "o2", "o3"),
    quantity: fc.integer({ min: 1, max: 4 }),
    revenueMillis: fc.constantFrom(0, 2500, 100000),
    category: label,
    repeatsCategory: fc.option(fc.boolean(), { nil: undefined }),
    categoryFromCart: fc.option(fc.boolean(), { nil: undefined }),
    coBought: related,
  }),
  fc.record({ fact: fc.constant("co_occurrence"), relation: fc.constantFrom("viewed", "bought"), related }),
);

/** A message as JSON: a fact (from one of four user partitions, or a timer's), or an inventory update event. */
const message: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      body: factBody,
      partition: fc.integer({ min: 0, max: 3 }),
      offset: fc.integer({ min: 0, max: 40 }), // a small range: replayed offsets
      timer: fc.boolean(),
      minute: fc.integer({ min: -60, max: 240 }),
      receivedEarlier: fc.constantFrom(0, 0, 0, 2),
      user: fc.constantFrom("u1", "u2", "u3"),
    }).map(({ body, partition, offset, timer, minute, receivedEarlier, user }) => {
      const at = BASE + minute * MINUTE;
      return {
        ...JSON.parse(JSON.stringify(body)), // without the undefined fields
        factId: timer ? `timer-${offset}` : `events-${partition}-${offset}-p0`,
        productId: "p1",
        userId: user,
        session: `${user}/1`,
        at,
        ...(receivedEarlier > 0 ? { receivedAt: at - receivedEarlier * MINUTE } : {}),
      };
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      id: fc.integer({ min: 0, max: 10 }),
      minute: fc.integer({ min: -60, max: 240 }),
      stock: fc.integer({ min: 0, max: 8 }),
    }).map(({ id, minute, stock }) => ({
      eventId: uuid(id),
      type: "inventory_updated",
      occurredAt: new Date(BASE + minute * MINUTE).toISOString(),
      receivedAt: new Date(BASE + minute * MINUTE).toISOString(),
      properties: { productId: "p1", stock },
    })),
  },
);

type Step = { kind: "message"; json: Record<string, unknown> } | { kind: "restore" };
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 12, arbitrary: message.map((json) => ({ kind: "message" as const, json })) },
  { weight: 1, arbitrary: fc.constant({ kind: "restore" as const }) },
);

/** One side: its logic, its state and what it emitted. */
class Side {
  state: ProductState;
  offset = 0;
  readonly outputs: unknown[] = [];
  readonly ctx: ActorContext = {
    now: () => BASE,
    emit: (topic, key, value) => this.outputs.push({ topic, key, value }),
    outputId: (rule) => `product-events-0-${this.offset}-${rule}`,
    setTimer: () => {},
    cancelTimer: () => {},
    timer: () => undefined,
  };

  constructor(readonly logic: ActorLogic<ProductState, ProductMessage>) {
    this.state = deepFreeze(logic.initial("p1"));
  }

  apply(s: Step): void {
    this.offset++;
    if (s.kind === "restore") {
      this.state = deepFreeze(this.logic.restore(JSON.parse(JSON.stringify(this.logic.persist(this.state)))));
      return;
    }
    const record: LogRecord = {
      topic: "product-events",
      partition: 0,
      offset: this.offset,
      key: "p1",
      value: new TextEncoder().encode(JSON.stringify(s.json)),
      headers: {},
      timestamp: BASE,
    };
    this.state = deepFreeze(settled(this.logic.handle(this.state, this.logic.decode(record), this.ctx)));
  }
}

Deno.test("product actor: a step built in one copy gives the old definition's states and outputs, and never writes into the state it was given", () => {
  fc.assert(
    fc.property(fc.array(step, { minLength: 1, maxLength: 80, size: "max" }), (steps) => {
      const now = new Side(current);
      const then = new Side(reference);
      steps.forEach((s, i) => {
        then.apply(s);
        now.apply(s);
        assert.deepStrictEqual(now.state, then.state, `state after step ${i}`);
        assert.deepStrictEqual(Object.keys(now.state), Object.keys(then.state), `fields' order after step ${i}`);
        assert.equal(
          JSON.stringify(now.logic.persist(now.state)),
          JSON.stringify(then.logic.persist(then.state)),
          `persisted state after step ${i}`,
        );
        assert.deepStrictEqual(now.outputs, then.outputs, `outputs up to step ${i}`);
        // Their fields in the same order too: what the log gets is the same bytes.
        assert.equal(JSON.stringify(now.outputs), JSON.stringify(then.outputs), `outputs' JSON up to step ${i}`);
      });
    }),
    { numRuns: 200 },
  );
});

Deno.test("product actor: the property above reaches duplicates, stock alerts, recommendations and full co-occurrence lists", () => {
  // Guards the generator: histories that never reached these would compare little.
  const seen = new Set<string>();
  fc.assert(
    fc.property(fc.array(step, { minLength: 1, maxLength: 80, size: "max" }), (steps) => {
      const side = new Side(current);
      for (const s of steps) side.apply(s);
      const st = side.state;
      if (st.duplicates > 0) seen.add("duplicate");
      if (st.recommendationsSent > 0) seen.add("recommendation");
      if (st.coViewed.size === settings.RELATED_CANDIDATES) seen.add("coViewed full");
      if (st.coBought.size === settings.RELATED_CANDIDATES) seen.add("coBought full");
      if (st.stock !== null) seen.add("stock");
      for (const o of side.outputs as { topic: string; value: { type?: string } }[]) {
        if (o.topic === "alerts" && o.value.type) seen.add(`alert ${o.value.type}`);
      }
    }),
    { numRuns: 300 },
  );
  assert.deepStrictEqual([...seen].sort(), [
    "alert low_inventory",
    "alert out_of_stock",
    "coBought full",
    "coViewed full",
    "duplicate",
    "recommendation",
    "stock",
  ]);
});
