import assert from "node:assert/strict";
import { assessFraud, type OrderHistoryView, type PastOrder } from "../../actors/fraud.ts";
import { DEFAULT_DOMAIN_SETTINGS, domainSettings } from "../../actors/settings.ts";
import { EventBuilder, fold } from "../helpers/fold.ts";

const s = DEFAULT_DOMAIN_SETTINGS;
const NOON = Date.UTC(2026, 2, 10, 12, 0, 0);
const MIN = 60_000;
const NONE: OrderHistoryView = { count: 0, revenue: 0, recent: [] };

/** A history of `count` earlier orders of `each`, `minutesApart` apart before `at`. */
function history(
  count: number,
  each: number,
  at = NOON,
  minutesApart = 60,
  extra: Partial<PastOrder>[] = [],
): OrderHistoryView {
  const recent = Array.from({ length: count }, (_, i) => ({
    orderId: `o${i}`,
    at: new Date(at - (i + 1) * minutesApart * MIN).toISOString(),
    total: each,
    ...extra[i],
  }));
  return { count, revenue: count * each, recent };
}

/** Earlier orders of 10 placed `ago` ms before noon. */
function at(ago: number[]): OrderHistoryView {
  const recent = ago.map((ms, i) => ({ orderId: `e${i}`, at: new Date(NOON - ms).toISOString(), total: 10 }));
  return { count: 10, revenue: 100, recent };
}

Deno.test("fraud: aov_spike at exactly a fractional FRAUD_AOV_MULTIPLIER's times the average", () => {
  // 1.1 × 3,000 millis is 3,300.0000000000005 in floating point: exactly 1.1× an average of 1 did not fire.
  const cases = [[1.1, 1.1, true], [1.1, 1.099, false], [2.7, 2.7, true], [4.9, 4.9, true], [2.5, 2.5, true]];
  for (const [multiplier, total, fires] of cases) {
    const s = domainSettings({ FRAUD_AOV_MULTIPLIER: multiplier as number });
    const signals = assessFraud({ at: NOON, total: total as number }, history(3, 1), s).signals;
    assert.equal(signals.includes("aov_spike"), fires, `${multiplier}× with ${total}: ${signals}`);
  }
});

Deno.test("fraud: each signal alone, at its edge", () => {
  const regular = history(5, 900); // average 900: no spike below 4,500
  const cases: [string, Parameters<typeof assessFraud>[0], OrderHistoryView, string[]][] = [
    ["total 1,000.01", { at: NOON, total: 1000.01 }, regular, ["high_total"]],
    ["total exactly 1,000", { at: NOON, total: 1000 }, regular, []],
    ["3 earlier orders in 5 min", { at: NOON, total: 10 }, at([1, 2, 5 * MIN]), ["order_velocity"]],
    ["2 earlier orders in 5 min", { at: NOON, total: 10 }, at([1, 2]), []],
    ["3 orders, the oldest 5 min 1 ms before", { at: NOON, total: 10 }, at([1, 2, 5 * MIN + 1]), []],
    ["03:00 UTC", { at: Date.UTC(2026, 2, 10, 3), total: 10 }, regular, ["night_time"]],
    ["00:00 UTC", { at: Date.UTC(2026, 2, 10, 0), total: 10 }, regular, ["night_time"]],
    ["06:00 UTC", { at: Date.UTC(2026, 2, 10, 6), total: 10 }, regular, []],
    ["first order 500.01", { at: NOON, total: 500.01 }, NONE, ["first_order_high"]],
    ["first order exactly 500", { at: NOON, total: 500 }, NONE, []],
    ["5× the average after 3 orders", { at: NOON, total: 500 }, history(3, 100), ["aov_spike"]],
    ["just under 5×", { at: NOON, total: 499.99 }, history(3, 100), []],
    // Exactly 5× an average of 10.20: 51 ≥ 5 × (30.6 / 3) used to be false in floating point (5 × 10.200000000000001).
    ["exactly 5× an average of 10.20", { at: NOON, total: 51 }, { ...history(3, 10.2), revenue: 30.6 }, ["aov_spike"]],
    ["exactly 5× an average of 0.09", { at: NOON, total: 0.45 }, { ...history(3, 0.09), revenue: 0.27 }, ["aov_spike"]],
    ["just under 5× an average of 10.20", { at: NOON, total: 50.99 }, { ...history(3, 10.2), revenue: 30.6 }, []],
    // A history that no longer holds every order: the average is the whole revenue's, 612 / 60.
    ["exactly 5× the average of 60 orders", { at: NOON, total: 51 }, {
      count: 60,
      revenue: 612,
      recent: history(50, 10.2).recent,
    }, ["aov_spike"]],
    ["5× after only 2 orders", { at: NOON, total: 500 }, history(2, 100), []],
    // No average to exceed: free orders (100% coupons, samples) are no baseline for a spike.
    ["an order after 3 free orders", { at: NOON, total: 20 }, history(3, 0), []],
    ["a free order after 3 free orders", { at: NOON, total: 0 }, history(3, 0), []],
    // A late order: the orders already handled are dated after it, so by event time it is the first.
    [
      "first order 500.01, later ones handled before it",
      { at: NOON, total: 500.01 },
      history(3, 100, NOON + 4 * 60 * MIN),
      [
        "first_order_high",
      ],
    ],
    ["5× the average of the earlier orders only", { at: NOON, total: 500 }, {
      count: 4,
      revenue: 10_300,
      recent: [...history(1, 10_000, NOON + 2 * 60 * MIN).recent, ...history(3, 100).recent],
    }, ["aov_spike"]],
    [
      "3 payment methods in 24 h",
      { at: NOON, total: 10, paymentMethod: "card" },
      history(2, 10, NOON, 60, [{ paymentMethod: "paypal" }, { paymentMethod: "crypto" }]),
      ["distinct_payment_or_country"],
    ],
    [
      "3 shipping countries in 24 h",
      { at: NOON, total: 10, shippingCountry: "FR" },
      history(2, 10, NOON, 60, [{ shippingCountry: "DE" }, { shippingCountry: "US" }]),
      ["distinct_payment_or_country"],
    ],
    // One method or country spelled by different clients: case and surrounding spaces make no other.
    [
      "one payment method in three spellings",
      { at: NOON, total: 10, paymentMethod: "card" },
      history(2, 10, NOON, 60, [{ paymentMethod: "Card" }, { paymentMethod: " CARD " }]),
      [],
    ],
    [
      "one shipping country in three spellings",
      { at: NOON, total: 10, shippingCountry: "fr" },
      history(2, 10, NOON, 60, [{ shippingCountry: "FR" }, { shippingCountry: "Fr " }]),
      [],
    ],
    // A late order: the orders already handled are dated after it, so they are not within the 24 h before it.
    [
      "two other payment methods only on orders dated after it",
      { at: NOON, total: 10, paymentMethod: "card" },
      history(2, 10, NOON + 3 * 60 * MIN, 60, [{ paymentMethod: "paypal" }, { paymentMethod: "crypto" }]),
      [],
    ],
    [
      "two other shipping countries only on orders dated after it",
      { at: NOON, total: 10, shippingCountry: "FR" },
      history(2, 10, NOON + 3 * 60 * MIN, 60, [{ shippingCountry: "DE" }, { shippingCountry: "US" }]),
      [],
    ],
    // The window's edge is inclusive, as velocity's is: an order exactly 24 h before counts.
    [
      "the third method exactly 24 h before",
      { at: NOON, total: 10, paymentMethod: "card" },
      history(2, 10, NOON, 60 * 12, [{ paymentMethod: "paypal" }, { paymentMethod: "crypto" }]),
      ["distinct_payment_or_country"],
    ],
    [
      "the third method 24 h 1 ms before",
      { at: NOON, total: 10, paymentMethod: "card" },
      history(2, 10, NOON - 1, 60 * 12, [{ paymentMethod: "paypal" }, { paymentMethod: "crypto" }]),
      [],
    ],
    [
      "the third method 25 h ago",
      { at: NOON, total: 10, paymentMethod: "card" },
      history(2, 10, NOON, 60 * 12.5, [{ paymentMethod: "paypal" }, { paymentMethod: "crypto" }]),
      [],
    ],
  ];
  for (const [name, order, past, signals] of cases) {
    const result = assessFraud(order, past, s);
    assert.deepEqual(result.signals, signals, name);
    const expected = signals.length === 0 ? 0 : {
      high_total: 0.3,
      order_velocity: 0.4,
      night_time: 0.2,
      first_order_high: 0.3,
      aov_spike: 0.4,
      distinct_payment_or_country: 0.4,
    }[signals[0]]!;
    assert.equal(result.score, expected, name);
    assert.equal(result.suspected, false, name);
  }
});

Deno.test("fraud: signals add up, the score is capped at 1, and the alert fires at 0.7 or more", () => {
  const night = Date.UTC(2026, 2, 10, 2);
  // high total + first order high = 0.6: below the threshold.
  assert.deepEqual(assessFraud({ at: NOON, total: 1500 }, NONE, s), {
    score: 0.6,
    signals: ["high_total", "first_order_high"],
    suspected: false,
  });
  // high total + velocity = exactly 0.7: at the threshold.
  const fast = assessFraud({ at: NOON, total: 1500 }, history(3, 1000, NOON, 1), s);
  assert.deepEqual(fast, { score: 0.7, signals: ["high_total", "order_velocity"], suspected: true });
  // + night + first order: 0.8.
  assert.equal(assessFraud({ at: night, total: 1500 }, NONE, s).score, 0.8);
  // Everything but first_order_high (exclusive with aov_spike): 0.3+0.4+0.2+0.4+0.4 = 1.7, capped at 1.
  const all = assessFraud(
    { at: night, total: 5000, paymentMethod: "a", shippingCountry: "X" },
    history(3, 100, night, 1, [{ paymentMethod: "b", shippingCountry: "Y" }, { paymentMethod: "c" }]),
    s,
  );
  assert.deepEqual(all.signals, [
    "high_total",
    "order_velocity",
    "night_time",
    "aov_spike",
    "distinct_payment_or_country",
  ]);
  assert.equal(all.score, 1);
  assert.equal(all.suspected, true);
});

Deno.test("fraud: thresholds, weights and the night window are settings", () => {
  const custom = domainSettings({
    FRAUD_HIGH_TOTAL: 100,
    FRAUD_HIGH_TOTAL_WEIGHT: 0.9,
    FRAUD_NIGHT_UTC_OFFSET_MINUTES: 120,
  });
  assert.deepEqual(assessFraud({ at: NOON, total: 150 }, history(5, 100), custom), {
    score: 0.9,
    signals: ["high_total"],
    suspected: true,
  });
  // 23:00 UTC is 01:00 at UTC+2.
  assert.deepEqual(assessFraud({ at: Date.UTC(2026, 2, 10, 23), total: 10 }, history(5, 100), custom).signals, [
    "night_time",
  ]);
  const wrapping = domainSettings({ FRAUD_NIGHT_START_HOUR: 22, FRAUD_NIGHT_END_HOUR: 5 });
  assert.deepEqual(assessFraud({ at: Date.UTC(2026, 2, 10, 23), total: 10 }, NONE, wrapping).signals, ["night_time"]);
  assert.deepEqual(assessFraud({ at: Date.UTC(2026, 2, 10, 5), total: 10 }, NONE, wrapping).signals, []);
});

Deno.test("fraud_suspected is emitted by the user actor, listing the signals, from the user's own history", async () => {
  const b = new EventBuilder(Date.UTC(2026, 2, 10, 1, 0, 0)); // 01:00 UTC: night
  const order = (id: string, seconds: number, total: number) =>
    b.event("order_completed", "u", seconds, {
      orderId: id,
      items: [{ productId: "p", quantity: 1, price: total }],
      total,
      paymentMethod: id,
    });
  const r = await fold([order("o1", 0, 20), order("o2", 60, 20), order("o3", 120, 20), order("o4", 180, 1500)]);
  const alerts = r.alerts.filter((a) => a.type === "fraud_suspected");
  assert.equal(alerts.length, 1);
  const [alert] = alerts;
  assert.deepEqual(alert.details, {
    orderId: "o4",
    total: 1500,
    currency: "USD",
    score: 1,
    signals: ["high_total", "order_velocity", "night_time", "aov_spike", "distinct_payment_or_country"],
  });
  assert.equal(alert.severity, "critical");
  assert.deepEqual(alert.subject, { kind: "user", id: "u" });
  assert.equal(alert.occurredAt, new Date(b.time(180)).toISOString());
  assert.match(alert.alertId, /^events-\d+-3-fraud_suspected$/);
  const u = r.users.get("u")!;
  assert.deepEqual(u.alerts.map((a) => a.alertId), [alert.alertId]);
  assert.equal(u.fraud?.orderId, "o4");
  // o3 (third order, at night, third payment method, two earlier orders in 5 min): 0.2 + 0.4 = 0.6.
  const third = await fold([order("o1", 0, 20), order("o2", 60, 20), order("o3", 120, 20)]);
  assert.deepEqual(third.users.get("u")!.fraud?.signals, ["night_time", "distinct_payment_or_country"]);
  assert.equal(third.alerts.length, 0);
});

Deno.test("fraud: orders of one instant are earlier in arrival order, for every signal alike", async () => {
  // One receive time for a batch posted without occurredAt; REES46 purchase rows of one order share a second.
  const b = new EventBuilder(Date.UTC(2026, 2, 10, 12, 0, 0));
  const order = (id: string, total: number) =>
    b.event("order_completed", "u", 0, { orderId: id, items: [{ productId: id, quantity: 1, price: total }], total });
  const r = await fold([order("a", 600), order("b", 600), order("c", 100), order("d", 100), order("e", 100)]);
  // "e" has 4 earlier orders in 5 minutes (velocity) and is compared with their average (350).
  assert.deepEqual(r.users.get("u")!.fraud, {
    score: 0.4,
    signals: ["order_velocity"],
    suspected: false,
    orderId: "e",
  });
  // "b" is the second order, not a first one over 500: the first-order and average signals used to see no earlier
  // order of the same instant, though velocity counted them.
  const b2 = await fold([order("a", 600), order("b", 600)]);
  assert.deepEqual(b2.users.get("u")!.fraud?.signals, []);
  const spike = await fold([order("a", 100), order("b", 100), order("c", 100), order("d", 500)]);
  assert.deepEqual(spike.users.get("u")!.fraud?.signals, ["order_velocity", "aov_spike"]);
  assert.equal(spike.alerts.length, 1, "velocity 0.4 + average spike 0.4");
});

Deno.test("fraud: a blank payment method or shipping country is none given, not a third one within 24 hours", () => {
  // Storefronts send "" for a field they do not know (the product actor ignores a blank category or brand too).
  for (const blank of ["", " "]) {
    const methods = history(2, 10, NOON, 60, [{ paymentMethod: "paypal" }, { paymentMethod: blank }]);
    assert.deepEqual(assessFraud({ at: NOON, total: 10, paymentMethod: "card" }, methods, s).signals, [], "method");
    const countries = history(2, 10, NOON, 60, [{ shippingCountry: "DE" }, { shippingCountry: "US" }]);
    assert.deepEqual(assessFraud({ at: NOON, total: 10, shippingCountry: blank }, countries, s).signals, [], "country");
  }
  // Three given ones still fire.
  const three = history(2, 10, NOON, 60, [{ paymentMethod: "paypal" }, { paymentMethod: "crypto" }]);
  assert.deepEqual(assessFraud({ at: NOON, total: 10, paymentMethod: "card" }, three, s).signals, [
    "distinct_payment_or_country",
  ]);
});
