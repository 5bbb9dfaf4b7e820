import assert from "node:assert/strict";
import {
  DEFAULT_DOMAIN_SETTINGS,
  DOMAIN_SETTING_NAMES,
  domainSettings,
  domainSettingsSchema,
} from "../../actors/settings.ts";

Deno.test("domain settings: documented defaults, frozen", () => {
  const s = DEFAULT_DOMAIN_SETTINGS;
  assert.equal(s.SESSION_GAP_MINUTES, 30);
  assert.equal(s.CART_ABANDON_MINUTES, 30);
  assert.equal(s.CHECKOUT_ABANDON_MINUTES, 30);
  assert.equal(s.FRAUD_ALERT_THRESHOLD, 0.7);
  assert.equal(s.FRAUD_HIGH_TOTAL, 1000);
  assert.equal(s.LOW_STOCK_THRESHOLD, 10);
  assert.equal(s.TRENDING_HALF_LIFE_MINUTES, 60);
  assert.equal(s.LOW_CONVERSION_RATIO, 0.02);
  assert.equal(s.HIGH_ABANDONMENT_RATIO, 0.8);
  assert.equal(s.LOW_TRAFFIC_PAGE_VIEWS, 100);
  assert.equal(s.SLOW_PAGES_SECONDS, 3);
  assert.equal(s.BUSINESS_ALERT_COOLDOWN_MINUTES, 60);
  assert.ok(Object.isFrozen(s));
  assert.equal(DOMAIN_SETTING_NAMES.length, Object.keys(s).length);
});

Deno.test("domain settings: values are coerced from environment strings and validated", () => {
  const parsed = domainSettingsSchema.parse({ SESSION_GAP_MINUTES: "45", RECS_TOP_K: "3", PORT: "ignored" });
  assert.equal(parsed.SESSION_GAP_MINUTES, 45);
  assert.equal(parsed.RECS_TOP_K, 3);
  assert.equal((parsed as Record<string, unknown>).PORT, undefined);
  const bad = domainSettingsSchema.safeParse({
    LOW_STOCK_THRESHOLD: "-1",
    FRAUD_ALERT_THRESHOLD: "2",
    RECS_TOP_K: "x",
  });
  assert.equal(bad.success, false);
  assert.deepEqual(bad.error!.issues.map((i) => i.path[0]).sort(), [
    "FRAUD_ALERT_THRESHOLD",
    "LOW_STOCK_THRESHOLD",
    "RECS_TOP_K",
  ]);
  assert.equal(domainSettings({ RECS_TOP_K: 7 }).RECS_TOP_K, 7);
});

Deno.test("domain settings: durations in minutes are at least a second (a 0 ms half-life made the trending score NaN)", () => {
  for (const name of ["TRENDING_HALF_LIFE_MINUTES", "SESSION_GAP_MINUTES", "CART_ABANDON_MINUTES"] as const) {
    const bad = domainSettingsSchema.safeParse({ [name]: "0.000001" });
    assert.equal(bad.success, false, name);
    assert.match(bad.error!.issues[0].message, /at least 0.0167 \(one second\)/);
    assert.equal(domainSettingsSchema.parse({ [name]: "0.5" })[name], 0.5);
  }
});

Deno.test("domain settings: a value out of range is refused naming the bound, one of the wrong form saying how to write it", () => {
  const message = (input: Record<string, string>) => domainSettingsSchema.safeParse(input).error!.issues[0].message;
  // Every problem used to read "must be an integer in decimal digits, e.g. 30", also for 25 hours.
  assert.match(message({ FRAUD_NIGHT_END_HOUR: "25" }), /<=\s?24/);
  assert.match(message({ USER_DEDUPE_EVENTS: "0" }), />=\s?1/);
  assert.match(message({ FRAUD_ALERT_THRESHOLD: "2" }), /<=\s?1/);
  assert.equal(message({ FRAUD_NIGHT_END_HOUR: "1.5" }), "must be an integer in decimal digits, e.g. 30");
  assert.equal(message({ FRAUD_ALERT_THRESHOLD: "0x1" }), "must be a decimal number, e.g. 0.5");
});
