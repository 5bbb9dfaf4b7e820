/**
 * The user actor builds a step's state in one copy (actors/user.ts): the same states, outputs and timers as the
 * definition before it (tests/helpers/reference_actors/, a copy of actors/user.ts and user_orders.ts as of d46a5bc),
 * over random histories of every event type (the product-keyed inventory update too), repeated eventIds and orderIds,
 * out-of-order and ahead-of-receipt times, changing client session ids, timers fired when due or not, and restores
 * from a checkpoint's JSON. Every state handed to either side is deep-frozen first, so a step that wrote into the
 * state it was given (and so into a state the engine may still hold: the reference fold, a checkpoint) throws.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { ActorContext, ActorLogic } from "../../engine/actor.ts";
import type { LogRecord } from "../../engine/log.ts";
import type { StoredEvent } from "../../actors/events.ts";
import { createUserLogic, USER_TIMERS, type UserState } from "../../actors/user.ts";
import { domainSettings } from "../../actors/settings.ts";
import { RECENT_RECOMMENDATION_REQUESTS } from "../../actors/user_state.ts";
import { createUserLogic as createReferenceLogic } from "../helpers/reference_actors/user.ts";

const MINUTE = 60_000;
const BASE = Date.UTC(2026, 0, 5, 23, 0); // an hour before midnight: the fraud rule's night hours are reached
/** Small bounds, so that histories of a few dozen events reach every one of them. */
const settings = domainSettings({
  USER_DEDUPE_EVENTS: 6,
  USER_RECENT_ALERTS: 3,
  USER_RECENT_ORDERS: 3,
  USER_RECENT_SESSIONS: 2,
  RECS_SESSION_ITEMS: 2,
  RECS_EXCLUDE_LIMIT: 2,
  FRAUD_AOV_MIN_ORDERS: 1,
  RECS_MIN_INTERVAL_SECONDS: 30, // events a minute apart ask, those of one minute's first seconds are rate-limited
});
const current = createUserLogic(settings);
const reference = createReferenceLogic(settings);

/** Freezes `value` and everything it holds. */
function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/** The user actor's steps are synchronous: a promise here would be a change of its own. */
function settled(state: UserState | Promise<UserState>): UserState {
  assert.ok(!(state instanceof Promise), "the user actor answered with a promise");
  return state;
}

type Step =
  | { kind: "event"; json: Record<string, unknown> }
  | { kind: "timer"; name: string; advanceMs: number }
  | { kind: "restore" };

const uuid = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
const product = fc.constantFrom("p1", "p2", "p3", "p4", "__proto__");
const label = fc.option(fc.constantFrom("a", "b", ""), { nil: undefined });
const price = fc.constantFrom(0, 1.5, 19.99, 120, 600, 1200);
const quantity = fc.integer({ min: 1, max: 3 });

const properties = fc.oneof(
  fc.record({
    type: fc.constant("page_viewed"),
    p: fc.record({ url: fc.constant("/"), loadTime: fc.option(fc.constantFrom(0, 1.2), { nil: undefined }) }),
  }),
  fc.record({ type: fc.constant("search_performed"), p: fc.record({ query: fc.constantFrom("", "shoes") }) }),
  fc.record({
    type: fc.constant("product_viewed"),
    p: fc.record({ productId: product, price: fc.option(price, { nil: undefined }), category: label, brand: label }),
  }),
  fc.record({
    type: fc.constant("product_added_to_cart"),
    p: fc.record({ productId: product, quantity, price, category: label, brand: label }),
  }),
  fc.record({
    type: fc.constant("product_removed_from_cart"),
    p: fc.record({ productId: product, quantity: fc.option(quantity, { nil: undefined }) }),
  }),
  fc.record({
    type: fc.constant("checkout_started"),
    p: fc.record({ cartValue: fc.option(price, { nil: undefined }) }),
  }),
  fc.record({
    type: fc.constant("order_completed"),
    p: fc.record({
      orderId: fc.constantFrom("o1", "o2", "o3", "o4", "o5", "o6"),
      items: fc.array(fc.record({ productId: product, quantity, price, category: label }), {
        minLength: 1,
        maxLength: 4,
      }),
      total: price,
      paymentMethod: fc.option(fc.constantFrom("card", "paypal", "gift"), { nil: undefined }),
      shippingCountry: fc.option(fc.constantFrom("DE", "FR", "US", "BR"), { nil: undefined }),
    }),
  }),
  fc.record({
    type: fc.constant("inventory_updated"),
    p: fc.record({ productId: product, stock: fc.integer({ min: 0, max: 20 }) }),
  }),
);

/** Minutes from BASE: mostly forward in small steps, sometimes far back or ahead (late, out of order, gaps). */
const minute = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 90 }) },
  { weight: 1, arbitrary: fc.integer({ min: -180, max: 600 }) },
);

const eventStep: fc.Arbitrary<Step> = fc.record({
  body: properties,
  id: fc.integer({ min: 0, max: 30 }), // a small pool: repeated eventIds
  minute,
  second: fc.constantFrom(0, 0, 0, 1, 30),
  receivedDelay: fc.constantFrom(0, 0, 0, 1, 5, 45, -3), // minutes; negative: dated ahead of its receipt
  sessionId: fc.option(fc.constantFrom("s1", "s2", "auto-1", "auto-2"), { nil: undefined, freq: 2 }),
}).map(({ body, id, minute, second, receivedDelay, sessionId }) => {
  const at = BASE + minute * MINUTE + second * 1000;
  return {
    kind: "event",
    json: {
      eventId: uuid(id),
      type: body.type,
      userId: "u",
      ...(sessionId !== undefined ? { sessionId } : {}),
      occurredAt: new Date(at).toISOString(),
      receivedAt: new Date(at + receivedDelay * MINUTE).toISOString(),
      properties: JSON.parse(JSON.stringify(body.p)), // without the undefined fields
    },
  };
});

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: eventStep },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("timer" as const),
      name: fc.constantFrom(USER_TIMERS.cart, USER_TIMERS.checkout, USER_TIMERS.cart, "other"),
      advanceMs: fc.constantFrom(0, MINUTE, 29 * MINUTE, 31 * MINUTE, 90 * MINUTE),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "restore" as const }) },
);

/** One side: its logic, its state, its clock and timers, and what it emitted. */
class Side {
  state: UserState;
  clock = 0;
  readonly timers = new Map<string, number>();
  readonly outputs: unknown[] = [];
  offset = 0;
  readonly ctx: ActorContext = {
    now: () => this.clock,
    emit: (topic, key, value) => this.outputs.push({ topic, key, value }),
    outputId: (rule) => `events-0-${this.offset}-${rule}`,
    setTimer: (name, at) => {
      this.outputs.push({ setTimer: name, at });
      this.timers.set(name, at);
    },
    cancelTimer: (name) => {
      this.outputs.push({ cancelTimer: name });
      this.timers.delete(name);
    },
    timer: (name) => this.timers.get(name),
  };

  constructor(readonly logic: ActorLogic<UserState, StoredEvent>) {
    this.state = deepFreeze(logic.initial("u"));
  }

  apply(s: Step): void {
    this.offset++;
    if (s.kind === "restore") {
      this.state = deepFreeze(this.logic.restore(JSON.parse(JSON.stringify(this.logic.persist(this.state)))));
      return;
    }
    if (s.kind === "timer") {
      this.clock += s.advanceMs;
      const due = this.timers.get(s.name);
      if (due !== undefined && due <= this.clock) this.timers.delete(s.name); // the runtime fires it once
      this.state = deepFreeze(settled(this.logic.onTimer!(this.state, s.name, this.ctx)));
      return;
    }
    const event = s.json;
    const key = event.type === "inventory_updated" ? (event.properties as { productId: string }).productId : "u";
    const record: LogRecord = {
      topic: "events",
      partition: 0,
      offset: this.offset,
      key,
      value: new TextEncoder().encode(JSON.stringify(event)),
      headers: {},
      timestamp: Date.parse(event.receivedAt as string),
    };
    const message = this.logic.decode(record);
    this.clock = Math.max(this.clock, this.logic.eventTime(message));
    this.state = deepFreeze(settled(this.logic.handle(this.state, message, this.ctx)));
  }
}

Deno.test("user actor: a step built in one copy gives the old definition's states, outputs and timers, and never writes into the state it was given", () => {
  fc.assert(
    fc.property(fc.array(step, { minLength: 1, maxLength: 80, size: "max" }), (steps) => {
      const now = new Side(current);
      const then = new Side(reference);
      steps.forEach((s, i) => {
        then.apply(s);
        now.apply(s);
        assert.deepStrictEqual(now.state, then.state, `state after step ${i}`);
        // The same fields in the same order: a checkpoint's JSON is the same bytes.
        assert.equal(JSON.stringify(now.state), JSON.stringify(then.state), `state's JSON after step ${i}`);
        assert.deepStrictEqual(now.outputs, then.outputs, `outputs and timer calls up to step ${i}`);
        // Their fields in the same order too: what the log gets is the same bytes.
        assert.equal(JSON.stringify(now.outputs), JSON.stringify(then.outputs), `outputs' JSON up to step ${i}`);
        assert.deepStrictEqual([...now.timers], [...then.timers], `timers after step ${i}`);
      });
    }),
    { numRuns: 300 },
  );
});

Deno.test("user actor: the property above reaches abandonments, late checkouts, fraud alerts and repeats", () => {
  // Guards the generator: a history that never raised these would compare little.
  const seen = new Set<string>();
  fc.assert(
    fc.property(fc.array(step, { minLength: 1, maxLength: 80, size: "max" }), (steps) => {
      const side = new Side(current);
      for (const s of steps) side.apply(s);
      const st = side.state;
      if (st.duplicateEvents > 0) seen.add("duplicate");
      if (st.abandonedCarts > 0) seen.add("cart abandoned");
      if (st.abandonedCheckouts > 0) seen.add("checkout abandoned");
      if (st.alerts.some((a) => a.type === "fraud_suspected")) seen.add("fraud");
      if (st.orders.count > 0) seen.add("order");
      if (st.recentSessions.length > 0) seen.add("past sessions");
      if (st.recommendations.recent.length === RECENT_RECOMMENDATION_REQUESTS) seen.add("recommendation log full");
      if (st.orders.recent.length === settings.USER_RECENT_ORDERS) seen.add("order log full");
      if (side.outputs.some((o) => (o as { key?: string }).key === "__proto__")) seen.add("__proto__ product");
      const views = side.outputs.filter((o) => (o as { value?: { fact?: string } }).value?.fact === "product_viewed");
      if (views.some((o) => "recommend" in (o as { value: object }).value)) seen.add("view asking");
      if (views.some((o) => !("recommend" in (o as { value: object }).value))) seen.add("view rate-limited");
      if (
        side.outputs.some((o) =>
          (o as { value?: { fact?: string; at?: number } }).value?.fact === "abandonment" &&
          String((o as { value: { factId: string } }).value.factId).endsWith("a-late-checkout")
        )
      ) seen.add("late checkout abandoned");
    }),
    { numRuns: 300 },
  );
  assert.deepStrictEqual([...seen].sort(), [
    "__proto__ product",
    "cart abandoned",
    "checkout abandoned",
    "duplicate",
    "fraud",
    "late checkout abandoned",
    "order",
    "order log full",
    "past sessions",
    "recommendation log full",
    "view asking",
    "view rate-limited",
  ]);
});
