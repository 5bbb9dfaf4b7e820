import assert from "node:assert/strict";
import { z } from "zod";
import { incomingEvent, storedEvent } from "../../actors/events.ts";
import { analyticsFact, productFact } from "../../actors/facts.ts";
import { checkOf, compileCheck, safeParseFast } from "../../engine/schema_check.ts";
import {
  alertSchema,
  analyticsHistorySchema,
  productMinuteSchema,
  recommendationSchema,
} from "../../engine/outputs.ts";
import { EventBuilder, fold } from "../helpers/fold.ts";
import { prng } from "../helpers/prng.ts";

/** The schemas validated on every event, by the topic or output they guard. */
const HOT_SCHEMAS: Record<string, z.ZodType> = {
  events: storedEvent,
  productEvents: productFact,
  analytics: analyticsFact,
  alerts: alertSchema,
  recommendations: recommendationSchema,
  productMinutes: productMinuteSchema,
  analyticsHistory: analyticsHistorySchema,
};

const PRODUCTS = ["p0", "p1", "p2", "p3", "p4"];
const USERS = ["u0", "u1", "u2"];

/** Stored events of every type, with gaps long enough for sessions to end and carts to be abandoned. */
function scenario(seed: number, count: number): Record<string, unknown>[] {
  const random = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const b = new EventBuilder();
  const events: Record<string, unknown>[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    at += pick([0, 1, 30, 400, 2000, 4000, 90_000]);
    const user = pick(USERS);
    const productId = pick(PRODUCTS);
    const price = pick([0, 1, 9.99, 250]);
    switch (pick(["page", "search", "view", "view", "add", "remove", "checkout", "order", "stock"])) {
      case "page":
        events.push(b.event("page_viewed", user, at, { url: "/", ...(random() < 0.5 ? { loadTime: 1.5 } : {}) }));
        break;
      case "search":
        events.push(b.event("search_performed", user, at, { query: "shoes", resultsCount: 3 }));
        break;
      case "view":
        events.push(b.event("product_viewed", user, at, { productId, price, category: "c", brand: "b" }));
        break;
      case "add":
        events.push(b.event("product_added_to_cart", user, at, { productId, quantity: 2, price, category: "c" }));
        break;
      case "remove":
        events.push(b.event("product_removed_from_cart", user, at, { productId, quantity: 1 }));
        break;
      case "checkout":
        events.push(b.event("checkout_started", user, at, { cartValue: 20 }));
        break;
      case "order":
        events.push(b.event("order_completed", user, at, {
          orderId: `o${i}`,
          items: [{ productId, quantity: 1, price: 3000, category: "c" }],
          total: random() < 0.3 ? 9000 : 30,
          currency: "USD",
        }));
        break;
      case "stock":
        events.push(b.inventory(productId, Math.floor(random() * 12), at));
        break;
    }
  }
  return events;
}

const POOL: unknown[] = [
  null,
  undefined,
  "",
  "\u0000",
  "a\u0000b",
  "x".repeat(129),
  "x".repeat(257),
  "x".repeat(1025),
  0,
  -0,
  -1,
  1.5,
  60_000,
  2 ** 53,
  Infinity,
  NaN,
  true,
  [],
  {},
  ["p1"],
  ["\u0000"],
  { productId: "p1", score: 1 },
  "2026-11-01T00:00:00Z",
  "2026-02-30T00:00:00Z",
  "2026-11-01 00:00",
  "00000000-0000-4000-8000-000000000001",
  "not-a-uuid",
  "USD",
  "usd",
  "product_viewed",
  "order_completed",
  "activity",
  "abandonment",
  "cart",
  "viewed",
];

/** A deep copy of `value` with one to three random changes: a value replaced, a key deleted or added. */
function mutate(value: unknown, random: () => number): unknown {
  const copy = structuredClone(value);
  const changes = 1 + Math.floor(random() * 3);
  for (let n = 0; n < changes; n++) {
    const slots: [Record<string, unknown> | unknown[], string | number][] = [];
    const walk = (node: unknown) => {
      if (Array.isArray(node)) node.forEach((child, i) => (slots.push([node, i]), walk(child)));
      else if (typeof node === "object" && node !== null) {
        for (const [key, child] of Object.entries(node)) {
          slots.push([node as Record<string, unknown>, key]), walk(child);
        }
      }
    };
    walk(copy);
    if (slots.length === 0) return POOL[Math.floor(random() * POOL.length)];
    const [parent, key] = slots[Math.floor(random() * slots.length)];
    const roll = random();
    if (roll < 0.6) {
      (parent as Record<string | number, unknown>)[key] = structuredClone(POOL[Math.floor(random() * POOL.length)]);
    } else if (roll < 0.75 && !Array.isArray(parent)) delete parent[key as string];
    else if (roll < 0.9 && !Array.isArray(parent)) parent.extra = 1;
    else if (!Array.isArray(parent)) {
      Object.defineProperty(parent, "__proto__", {
        value: { polluted: true },
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  return copy;
}

Deno.test("the schemas validated on every event all compile to a fast check", () => {
  for (const [name, schema] of Object.entries(HOT_SCHEMAS)) assert.ok(checkOf(schema) !== null, name);
  assert.ok(checkOf(incomingEvent) !== null, "incomingEvent");
});

Deno.test("a fast check accepts only what zod accepts, and only when zod would return the value itself", async () => {
  // Real messages from a fold of every event type (facts, alerts, recommendations, minutes), each also
  // mutated many times; whenever the fast check says yes, zod must succeed with an equal value, and
  // safeParseFast must answer exactly as zod does either way.
  const events = scenario(7, 400);
  const result = await fold(events, { until: Date.UTC(2026, 0, 20) });
  const samples: [string, unknown][] = events.map((e) => ["events", e]);
  for (const output of result.outputs) if (output.topic in HOT_SCHEMAS) samples.push([output.topic, output.value]);
  const topics = new Set(samples.map(([topic]) => topic));
  assert.deepEqual([...topics].sort(), Object.keys(HOT_SCHEMAS).sort(), "every hot schema has real samples");

  const random = prng(11);
  const tally = { fastYes: 0, zodOnly: 0, bothNo: 0 };
  const slow = new Set<string>();
  for (const [topic, sample] of samples) {
    const schema = HOT_SCHEMAS[topic];
    const check = checkOf(schema)!;
    if (!check(sample)) slow.add(topic);
    for (let n = 0; n < 30; n++) {
      const value = mutate(sample, random);
      const zod = schema.safeParse(value);
      const fast = safeParseFast(schema, value);
      assert.equal(fast.success, zod.success);
      if (zod.success) assert.deepStrictEqual(fast.data, zod.data);
      else assert.deepStrictEqual(fast.error!.issues, zod.error.issues);
      if (check(value)) {
        tally.fastYes++;
        assert.ok(zod.success, `fast check accepted what zod rejects (${topic}): ${JSON.stringify(value)}`);
        assert.deepStrictEqual(zod.data, value, `zod would return something else (${topic})`);
      } else if (zod.success) tally.zodOnly++;
      else tally.bothNo++;
    }
  }
  // Every unchanged message takes the fast path (recommendations too, since their schema lists the
  // recommendationId they carry: zod stripped it before, so each one went to zod).
  assert.deepEqual([...slow], []);
  // Both kinds of answers were exercised: mutations zod accepts as they are, and ones it rejects.
  assert.ok(tally.fastYes > 1000 && tally.bothNo > 5000, JSON.stringify(tally));
});

Deno.test("a fast check leaves to zod the values zod would change, and schemas it does not model", () => {
  const event = new EventBuilder().event("product_added_to_cart", "u", 0, { productId: "p", price: 1 });
  const check = checkOf(storedEvent)!;
  assert.equal(check(event), false, "quantity is absent: zod fills in its default");
  assert.deepEqual(safeParseFast(storedEvent, event).data, {
    ...event,
    properties: { productId: "p", price: 1, quantity: 1 },
  });
  assert.equal(check({ ...event, properties: { productId: "p", price: 1, quantity: 1 } }), true);
  assert.equal(check({ ...event, unknown: 1 }), false, "zod strips unknown keys");
  assert.equal(compileCheck(productMinuteSchema.transform((v) => v)), null, "transforms are not modelled");
  assert.equal(compileCheck(productMinuteSchema.passthrough()), null, "catch-all keys are not modelled");
});

Deno.test("a fast check sends to zod whatever is not plain data zod would return as it is", () => {
  const b = new EventBuilder();
  const alert = {
    alertId: "a1",
    type: "cart_abandoned",
    severity: "info",
    subject: { kind: "user", id: "u" },
    occurredAt: "2026-01-01T00:00:00.000Z",
    details: { cartValue: 3 },
  };
  const recommendation = { userId: "u", basedOn: "p1", items: [], generatedAt: "2026-01-01T00:00:00.000Z" };
  const hidden = { ...alert };
  Object.defineProperty(hidden, "severity", { value: "info", enumerable: false });
  const inherited = Object.assign(Object.create({ severity: "info" }), { ...alert, severity: undefined });
  delete inherited.severity;
  class Details {
    cartValue = 3;
  }
  const cases: [string, z.ZodType, unknown][] = [
    ["record as a Date", alertSchema, { ...alert, details: new Date(0) }],
    ["record as a Map", alertSchema, { ...alert, details: new Map([["a", 1]]) }],
    ["record as a class instance", alertSchema, { ...alert, details: new Details() }],
    ["record with a constructor", alertSchema, { ...alert, details: { constructor() {} } }],
    ["record with a symbol key", alertSchema, { ...alert, details: { [Symbol("s")]: 1 } }],
    ["record without a prototype", alertSchema, { ...alert, details: Object.assign(Object.create(null), { a: 1 }) }],
    ["record with a hidden key", alertSchema, {
      ...alert,
      details: Object.defineProperty({ a: 1 }, "b", { value: 2, enumerable: false }),
    }],
    ["object with a symbol key", alertSchema, { ...alert, [Symbol("s")]: 1 }],
    ["object as a class instance", alertSchema, Object.assign(new Details(), alert)],
    ["shape key not enumerable", alertSchema, hidden],
    ["shape key inherited", alertSchema, inherited],
    ["required unknown key absent", recommendationSchema, { ...recommendation, basedOn: undefined }],
    ["required unknown key deleted", recommendationSchema, (({ basedOn: _, ...r }) => r)(recommendation)],
    ["properties as a Date", storedEvent, b.event("checkout_started", "u", 0, new Date(0) as never)],
    ["array with a named property", productFact, {
      fact: "co_occurrence",
      factId: "f",
      productId: "p",
      userId: "u",
      session: "s",
      at: 0,
      relation: "viewed",
      related: Object.assign(["p2"], { extra: 1 }),
    }],
    ["array subclass", z.array(z.string()), Object.assign(new (class extends Array<string> {})(), ["a"])],
    ["one emoji for two characters", z.string().min(2), "😀"],
    ["emoji and a letter for three", z.string().min(3), "😀a"],
    ["lone surrogates for two", z.string().min(2), "\ud800\ud800"],
    ["two emoji for two", z.string().min(2), "😀😀"],
    ["four emoji for at most four", z.string().max(4), "😀😀😀😀"],
  ];
  for (const [name, schema, value] of cases) {
    const check = checkOf(schema);
    assert.ok(check !== null, name);
    const zod = schema.safeParse(value);
    const fast = safeParseFast(schema, value);
    assert.equal(fast.success, zod.success, name);
    if (check(value)) {
      assert.ok(zod.success, `${name}: the fast check accepted what zod rejects`);
      // Named properties on an array are not looked at: JSON and zod's copy both leave them out.
      if (name !== "array with a named property") {
        assert.deepStrictEqual(zod.data, value, `${name}: zod would return something else`);
      }
      assert.equal(JSON.stringify(zod.data), JSON.stringify(value), name);
    }
  }
  // The genuine article still takes the fast path.
  assert.equal(checkOf(alertSchema)!(alert), true);
  assert.equal(checkOf(recommendationSchema)!(recommendation), true);
  assert.equal(checkOf(z.string().min(2))!("😀😀"), true);
});
