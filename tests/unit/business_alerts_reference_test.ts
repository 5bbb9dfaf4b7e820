/**
 * The business alerts against the spec's rules evaluated naively: every minute boundary, each rule over the facts dated
 * in its window, at most once per cooldown per type. The global actor evaluates fewer boundaries (per cooldown once
 * its windows are empty), which must change nothing of what it raises: types, minutes and figures, for generated shops
 * with quiet spells and random thresholds, until the retention after the last fact (where the actor stops looking).
 */
import assert from "node:assert/strict";
import type { AnalyticsFact } from "../../actors/facts.ts";
import { type DomainSettings, domainSettings } from "../../actors/settings.ts";
import { driveGlobal } from "../helpers/global_actor.ts";

const MIN = 60_000;
const T0 = Date.UTC(2026, 0, 5, 8, 0, 0);

/** A deterministic generator of numbers in [0, 1) (a linear congruential one), so that a failing run is named. */
function random(seed: number): () => number {
  let state = seed;
  return () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
}

/** About 400 minutes of a shop's facts, in time order: seconds apart, with quiet spells of up to 50 minutes. */
function shop(rnd: () => number): AnalyticsFact[] {
  const facts: AnalyticsFact[] = [];
  let at = T0 + Math.floor(rnd() * MIN);
  for (let n = 0; at < T0 + 400 * MIN; n++) {
    const kind = rnd();
    const base = { factId: `events-0-${n}-activity`, at, userId: `u${n % 7}`, session: `s${n % 7}` };
    if (kind < 0.4) {
      facts.push({ ...base, fact: "activity", type: "page_viewed", loadTime: Math.floor(rnd() * 6000) / 1000 });
    } else if (kind < 0.6) {
      facts.push({ ...base, fact: "activity", type: "checkout_started", cartConverted: rnd() < 0.5 });
    } else if (kind < 0.7) {
      const cartConverted = rnd() < 0.3;
      facts.push({ ...base, fact: "activity", type: "order_completed", revenueMillis: 1000, cartConverted });
    } else if (kind < 0.85) facts.push({ ...base, fact: "abandonment", stage: "cart" });
    else facts.push({ ...base, fact: "activity", type: "product_viewed" });
    at += rnd() < 0.05 ? Math.floor(rnd() * 50 * MIN) : Math.floor(rnd() * 40_000);
  }
  return facts;
}

/** What the rules raise, evaluated at every minute boundary up to `to`, as "type occurredAt details" lines. */
function naive(s: DomainSettings, facts: readonly AnalyticsFact[], to: number): string[] {
  const raised: string[] = [];
  const last: Record<string, number> = {};
  const first = facts[0].at;
  const firstPageView = facts.find((f) => f.fact === "activity" && f.type === "page_viewed")?.at;
  const activity = (list: AnalyticsFact[], type: string) =>
    list.filter((f) => f.fact === "activity" && f.type === type) as Extract<AnalyticsFact, { fact: "activity" }>[];
  for (let at = Math.floor(first / MIN) * MIN + MIN; at <= to; at += MIN) {
    const window = (minutes: number) => facts.filter((f) => f.at >= at - minutes * MIN && f.at < at);
    const candidates: [string, Record<string, number>][] = [];
    const conversion = window(s.LOW_CONVERSION_WINDOW_MINUTES);
    const checkouts = activity(conversion, "checkout_started").length;
    const orders = activity(conversion, "order_completed").length;
    if (checkouts >= s.LOW_CONVERSION_MIN_CHECKOUTS && orders / checkouts < s.LOW_CONVERSION_RATIO) {
      const threshold = s.LOW_CONVERSION_RATIO;
      const ratio = orders / checkouts;
      candidates.push(["low_conversion", {
        windowMinutes: s.LOW_CONVERSION_WINDOW_MINUTES,
        orders,
        checkouts,
        ratio,
        threshold,
      }]);
    }
    const carts = window(s.HIGH_ABANDONMENT_WINDOW_MINUTES);
    const abandoned = carts.filter((f) => f.fact === "abandonment" && f.stage === "cart").length;
    const converted = carts.filter((f) => f.fact === "activity" && f.cartConverted).length;
    const outcomes = abandoned + converted;
    if (outcomes >= s.HIGH_ABANDONMENT_MIN_CARTS && abandoned / outcomes > s.HIGH_ABANDONMENT_RATIO) {
      const ratio = abandoned / outcomes;
      const windowMinutes = s.HIGH_ABANDONMENT_WINDOW_MINUTES;
      candidates.push(["high_cart_abandonment", {
        windowMinutes,
        abandoned,
        converted,
        ratio,
        threshold: s.HIGH_ABANDONMENT_RATIO,
      }]);
    }
    // low_traffic once a page view dated before the boundary was seen and the first fact is a window old.
    if (firstPageView !== undefined && firstPageView < at && first <= at - s.LOW_TRAFFIC_WINDOW_MINUTES * MIN) {
      const pageViews = activity(window(s.LOW_TRAFFIC_WINDOW_MINUTES), "page_viewed").length;
      if (pageViews < s.LOW_TRAFFIC_PAGE_VIEWS) {
        const windowMinutes = s.LOW_TRAFFIC_WINDOW_MINUTES;
        candidates.push(["low_traffic", { windowMinutes, pageViews, threshold: s.LOW_TRAFFIC_PAGE_VIEWS }]);
      }
    }
    const timed = activity(window(s.SLOW_PAGES_WINDOW_MINUTES), "page_viewed").filter((f) => f.loadTime !== undefined);
    const sum = timed.reduce((total, f) => total + Math.round(f.loadTime! * 1000), 0);
    const average = timed.length > 0 ? Math.round(sum / timed.length) / 1000 : 0;
    if (timed.length >= s.SLOW_PAGES_MIN_SAMPLES && average > s.SLOW_PAGES_SECONDS) {
      candidates.push(["slow_pages", {
        windowMinutes: s.SLOW_PAGES_WINDOW_MINUTES,
        averageLoadTimeSeconds: average,
        samples: timed.length,
        threshold: s.SLOW_PAGES_SECONDS,
      }]);
    }
    for (const [type, details] of candidates) {
      if (last[type] !== undefined && at - last[type] < s.BUSINESS_ALERT_COOLDOWN_MINUTES * MIN) continue;
      last[type] = at;
      raised.push(`${type} ${new Date(at).toISOString()} ${JSON.stringify(details)}`);
    }
  }
  return raised;
}

Deno.test("the business alerts are those of evaluating every minute boundary, quiet spells and cooldowns included", () => {
  for (let run = 1; run <= 100; run++) {
    const rnd = random(run);
    const settings = domainSettings({
      LOW_TRAFFIC_PAGE_VIEWS: 1 + Math.floor(rnd() * 20),
      LOW_CONVERSION_MIN_CHECKOUTS: 1 + Math.floor(rnd() * 5),
      HIGH_ABANDONMENT_MIN_CARTS: 1 + Math.floor(rnd() * 5),
      SLOW_PAGES_MIN_SAMPLES: 1 + Math.floor(rnd() * 5),
      BUSINESS_ALERT_COOLDOWN_MINUTES: 1 + Math.floor(rnd() * 90),
      ANALYTICS_RETENTION_MINUTES: 60 + Math.floor(rnd() * 200),
      LOW_TRAFFIC_WINDOW_MINUTES: 1 + Math.floor(rnd() * 30),
      SLOW_PAGES_WINDOW_MINUTES: 1 + Math.floor(rnd() * 30),
    });
    const facts = shop(rnd);
    const driver = driveGlobal(settings);
    for (const fact of facts) driver.send(fact);
    const to = Math.floor(facts.at(-1)!.at / MIN) * MIN + settings.ANALYTICS_RETENTION_MINUTES * MIN;
    driver.advanceTo(to + 1440 * MIN);
    const raised = driver.alerts
      .filter((a) => Date.parse(a.occurredAt) <= to)
      .map((a) => `${a.type} ${a.occurredAt} ${JSON.stringify(a.details)}`);
    assert.deepEqual(raised, naive(settings, facts, to), `run ${run}`);
  }
});
