import assert from "node:assert/strict";
import { parseConfig, topicNames } from "../../engine/config.ts";
import { ConfigError } from "../../engine/errors.ts";

Deno.test("parseConfig() with an empty environment gives embedded mode and the documented defaults", () => {
  const config = parseConfig({});
  assert.equal(config.mode, "embedded");
  assert.equal(config.PORT, 8080);
  assert.equal(config.PARTITIONS, 12);
  assert.equal(config.DATA_DIR, "./data");
  assert.equal(config.CHECKPOINT_INTERVAL_MS, 1000);
  assert.equal(config.LOG_LEVEL, "info");
  assert.ok(Object.isFrozen(config));
});

Deno.test("parseConfig() with an empty environment gives the default SPEC.md states for every setting it names", () => {
  const config = parseConfig({});
  // HTTP API: "≤ 1,000 events and ≤ 1 MiB by default"; actor semantics: STATE_TTL_DAYS "(default 90)".
  const engine = { MAX_BATCH_EVENTS: 1000, MAX_BODY_BYTES: 1024 * 1024, STATE_TTL_DAYS: 90 };
  // Domain rules (defaults), in the order SPEC.md lists them.
  const domain = {
    SESSION_GAP_MINUTES: 30, // "a new session after 30 minutes without events"
    CART_ABANDON_MINUTES: 30, // "no checkout or order within 30 minutes of its last change"
    CHECKOUT_ABANDON_MINUTES: 30, // "a checkout with no order within 30 minutes"
    FRAUD_ALERT_THRESHOLD: 0.7, // "alert at ≥ 0.7"
    FRAUD_HIGH_TOTAL: 1000, // "total > 1,000 (0.3)"
    FRAUD_HIGH_TOTAL_WEIGHT: 0.3,
    FRAUD_VELOCITY_ORDERS: 2, // "more than 2 earlier orders in the past 5 minutes (0.4)"
    FRAUD_VELOCITY_MINUTES: 5,
    FRAUD_VELOCITY_WEIGHT: 0.4,
    FRAUD_NIGHT_START_HOUR: 0, // "placed between 00:00 and 06:00 (0.2)"
    FRAUD_NIGHT_END_HOUR: 6,
    FRAUD_NIGHT_WEIGHT: 0.2,
    FRAUD_FIRST_ORDER_TOTAL: 500, // "a first order over 500 (0.3)"
    FRAUD_FIRST_ORDER_WEIGHT: 0.3,
    FRAUD_AOV_MULTIPLIER: 5, // "total ≥ 5× the user's average order value after 3+ orders (0.4)"
    FRAUD_AOV_MIN_ORDERS: 3,
    FRAUD_AOV_WEIGHT: 0.4,
    FRAUD_DISTINCT_LIMIT: 3, // "3+ distinct payment methods or shipping countries within 24 hours (0.4)"
    FRAUD_DISTINCT_HOURS: 24,
    FRAUD_DISTINCT_WEIGHT: 0.4,
    LOW_STOCK_THRESHOLD: 10, // "below the threshold (default 10)"
    TRENDING_HALF_LIFE_MINUTES: 60, // "exponentially decayed, 1-hour half-life"
    LOW_CONVERSION_RATIO: 0.02, // "orders / checkouts < 2% over 15 minutes"
    LOW_CONVERSION_WINDOW_MINUTES: 15,
    HIGH_ABANDONMENT_RATIO: 0.8, // "> 80% of carts abandoned over 15 minutes"
    HIGH_ABANDONMENT_WINDOW_MINUTES: 15,
    LOW_TRAFFIC_PAGE_VIEWS: 100, // "fewer than 100 page views in 10 minutes"
    LOW_TRAFFIC_WINDOW_MINUTES: 10,
    SLOW_PAGES_SECONDS: 3, // "average `loadTime` > 3 s over 5 minutes"
    SLOW_PAGES_WINDOW_MINUTES: 5,
    BUSINESS_ALERT_COOLDOWN_MINUTES: 60, // "each at most once per hour"
  };
  const expected: Record<string, number> = { ...engine, ...domain };
  const actual = Object.fromEntries(
    Object.keys(expected).map((name) => [name, (config as unknown as Record<string, unknown>)[name]]),
  );
  assert.deepEqual(actual, expected);
});

Deno.test("parseConfig() gives production mode when KAFKA_BROKERS and DATABASE_URL are set", () => {
  const config = parseConfig({ KAFKA_BROKERS: "k:9092", DATABASE_URL: "postgres://u@h/db", PARTITIONS: "6" });
  assert.equal(config.mode, "production");
  assert.equal(config.PARTITIONS, 6);
});

Deno.test("parseConfig() names every bad variable with its value", () => {
  assert.throws(
    () => parseConfig({ PORT: "eighty", PARTITIONS: "0", LOG_LEVEL: "loud" }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /PORT="eighty"/);
      assert.match(error.message, /PARTITIONS="0"/);
      assert.match(error.message, /LOG_LEVEL="loud"/);
      return true;
    },
  );
});

Deno.test("parseConfig() refuses KAFKA_BROKERS without DATABASE_URL", () => {
  assert.throws(() => parseConfig({ KAFKA_BROKERS: "k:9092" }), /DATABASE_URL/);
  assert.throws(() => parseConfig({ DATABASE_URL: "mysql://x" }), /DATABASE_URL="mysql:\/\/x"/);
});

Deno.test("ROLE: all by default, ingest only in production mode, anything else named", () => {
  const production = { KAFKA_BROKERS: "k:9092", DATABASE_URL: "postgres://x/y" };
  assert.equal(parseConfig(production).ROLE, "all");
  assert.equal(parseConfig({ ...production, ROLE: "ingest" }).ROLE, "ingest");
  assert.throws(() => parseConfig({ ROLE: "ingest" }), /ROLE="ingest" needs production mode/);
  assert.throws(() => parseConfig({ ...production, ROLE: "worker" }), /ROLE="worker"/);
});

Deno.test("topicNames() applies TOPIC_PREFIX to every topic", () => {
  const topics = topicNames({ TOPIC_PREFIX: "shop1." });
  assert.deepEqual(Object.values(topics).sort(), [
    "shop1.alerts",
    "shop1.analytics",
    "shop1.events",
    "shop1.events.dlq",
    "shop1.product-events",
    "shop1.recommendations",
  ]);
});

Deno.test("parseConfig() covers the domain thresholds: defaults, overrides and bad values", () => {
  assert.equal(parseConfig({}).CART_ABANDON_MINUTES, 30);
  assert.equal(parseConfig({ CART_ABANDON_MINUTES: "45" }).CART_ABANDON_MINUTES, 45);
  assert.throws(() => parseConfig({ FRAUD_ALERT_THRESHOLD: "high" }), /FRAUD_ALERT_THRESHOLD="high"/);
});

Deno.test("parseConfig() accepts ADVERTISED_URL as an http(s) origin, normalised; unset by default", () => {
  assert.equal(parseConfig({}).ADVERTISED_URL, undefined);
  assert.equal(parseConfig({ ADVERTISED_URL: "http://engine-1:8080" }).ADVERTISED_URL, "http://engine-1:8080");
  assert.equal(
    parseConfig({ ADVERTISED_URL: " https://Engine-2.internal/ " }).ADVERTISED_URL,
    "https://engine-2.internal",
  );
  assert.equal(parseConfig({ ADVERTISED_URL: "http://10.0.0.7:9000" }).ADVERTISED_URL, "http://10.0.0.7:9000");
});

Deno.test("parseConfig() rejects an ADVERTISED_URL that is not an http(s) origin, naming the variable", () => {
  for (const value of ["engine-1:8080", "ftp://engine-1", "http://engine-1:8080/api", "http://u:p@engine-1", "nope"]) {
    assert.throws(
      () => parseConfig({ ADVERTISED_URL: value }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.ok(error.message.includes(`ADVERTISED_URL=${JSON.stringify(value)}`), error.message);
        assert.match(error.message, /http:\/\/ or https:\/\/ URL/);
        return true;
      },
      value,
    );
  }
});

Deno.test("parseConfig() keeps the embedded log a week by default; 0 keeps it forever, negatives are refused", () => {
  assert.equal(parseConfig({}).EMBEDDED_LOG_RETENTION_HOURS, 168);
  assert.equal(parseConfig({ EMBEDDED_LOG_RETENTION_HOURS: "0" }).EMBEDDED_LOG_RETENTION_HOURS, 0);
  assert.throws(() => parseConfig({ EMBEDDED_LOG_RETENTION_HOURS: "-1" }), /EMBEDDED_LOG_RETENTION_HOURS="-1"/);
  assert.throws(() => parseConfig({ EMBEDDED_LOG_RETENTION_HOURS: "1.5" }), /EMBEDDED_LOG_RETENTION_HOURS="1.5"/);
});

Deno.test("parseConfig() ends idle transactions after 10 s by default; 0 never, anything else named", () => {
  assert.equal(parseConfig({}).TRANSACTION_IDLE_TIMEOUT_MS, 10_000);
  assert.equal(parseConfig({ TRANSACTION_IDLE_TIMEOUT_MS: "0" }).TRANSACTION_IDLE_TIMEOUT_MS, 0);
  assert.throws(() => parseConfig({ TRANSACTION_IDLE_TIMEOUT_MS: "-5" }), /TRANSACTION_IDLE_TIMEOUT_MS="-5"/);
  assert.throws(() => parseConfig({ TRANSACTION_IDLE_TIMEOUT_MS: "10s" }), /TRANSACTION_IDLE_TIMEOUT_MS="10s"/);
});

Deno.test("parseConfig() treats a value of only whitespace like an empty one: unset, so the default applies", () => {
  const config = parseConfig({ PORT: "  ", MAX_EVENT_FUTURE_MS: "\t", STATE_TTL_DAYS: " ", HOST: " ", LOG_LEVEL: " " });
  assert.equal(config.PORT, 8080);
  assert.equal(config.MAX_EVENT_FUTURE_MS, 300_000);
  assert.equal(config.STATE_TTL_DAYS, 90);
  assert.equal(config.HOST, "0.0.0.0");
  assert.equal(config.LOG_LEVEL, "info");
  assert.equal(parseConfig({ FRAUD_NIGHT_END_HOUR: "  " }).FRAUD_NIGHT_END_HOUR, 6);
});

Deno.test("parseConfig() reads integers as plain decimal digits, surrounding whitespace trimmed", () => {
  assert.equal(parseConfig({ PORT: " 9000 " }).PORT, 9000);
  assert.equal(parseConfig({ PORT: "0" }).PORT, 0);
  assert.equal(parseConfig({ ACTOR_PACK_MS: "0" }).ACTOR_PACK_MS, 0);
  assert.equal(parseConfig({ FRAUD_NIGHT_UTC_OFFSET_MINUTES: "-60" }).FRAUD_NIGHT_UTC_OFFSET_MINUTES, -60);
  assert.equal(parseConfig({ FRAUD_ALERT_THRESHOLD: " 0.5 " }).FRAUD_ALERT_THRESHOLD, 0.5);
});

Deno.test("parseConfig() refuses hexadecimal, exponent and other non-decimal integers, naming the variable", () => {
  const cases: [string, string, RegExp][] = [
    ["PORT", "0x1F91", /must be an integer from 0 to 65535, in decimal digits/],
    ["PORT", "1e3", /must be an integer from 0 to 65535/],
    ["PORT", "+80", /must be an integer from 0 to 65535/],
    ["PORT", "0b1", /must be an integer from 0 to 65535/],
    ["MAX_EVENT_FUTURE_MS", "1e3", /must be an integer from 0 to 86400000, in decimal digits/],
    ["STATE_TTL_DAYS", "0x10", /must be an integer from 0 to 36500/],
    ["ACTOR_PACK_MS", "3e4", /must be an integer >= 0/],
    ["EMBEDDED_LOG_RETENTION_HOURS", "0o7", /must be an integer from 0 to 87600/],
    ["CHECKPOINT_INTERVAL_MS", "1_000", /must be an integer from 10 to 3600000/],
    ["USER_DEDUPE_EVENTS", "0x100", /must be an integer in decimal digits/],
    ["FRAUD_NIGHT_END_HOUR", "6e0", /must be an integer in decimal digits/],
    ["FRAUD_HIGH_TOTAL", "1e3", /must be a decimal number/],
    ["CART_ABANDON_MINUTES", "0x1E", /must be a decimal number/],
  ];
  for (const [name, value, allowed] of cases) {
    assert.throws(
      () => parseConfig({ [name]: value }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.ok(error.message.includes(`${name}=${JSON.stringify(value)}: `), error.message);
        assert.match(error.message, allowed);
        return true;
      },
      `${name}=${value}`,
    );
  }
});

Deno.test("parseConfig() names an out-of-range integer once", () => {
  assert.throws(
    () => parseConfig({ PORT: "99999999999999999999" }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.message.split('PORT="99999999999999999999"').length, 2, error.message);
      return true;
    },
  );
});

Deno.test("parseConfig() refuses DATABASE_URL without KAFKA_BROKERS instead of ignoring it", () => {
  assert.throws(
    () => parseConfig({ DATABASE_URL: "postgres://u@h/db" }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /DATABASE_URL is set but KAFKA_BROKERS is not/);
      assert.match(error.message, /unset DATABASE_URL for embedded mode/);
      return true;
    },
  );
  assert.equal(parseConfig({ DATABASE_URL: "", KAFKA_BROKERS: "" }).mode, "embedded");
});

Deno.test("parseConfig() accepts HOST as a hostname, IPv4 or IPv6 literal", () => {
  for (
    const host of ["0.0.0.0", "::", "127.0.0.1", "::1", "localhost", "engine-1.internal", "fd00::7", "::ffff:10.0.0.1"]
  ) {
    assert.equal(parseConfig({ HOST: host }).HOST, host);
  }
  assert.equal(parseConfig({ HOST: " localhost " }).HOST, "localhost");
});

Deno.test("parseConfig() rejects a HOST that cannot be bound, naming the variable and what is allowed", () => {
  for (
    const host of [
      "not a host!",
      "http://localhost",
      "localhost:8080",
      "10.0.0.256",
      "8080",
      "-engine",
      "a..b",
      "[::1]",
    ]
  ) {
    assert.throws(
      () => parseConfig({ HOST: host }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.ok(error.message.includes(`HOST=${JSON.stringify(host)}: `), error.message);
        assert.match(error.message, /must be a hostname or an IPv4 or IPv6 address/);
        return true;
      },
      host,
    );
  }
});

Deno.test("parseConfig() refuses a TOPIC_PREFIX that would make topic names longer than Kafka accepts", () => {
  assert.equal(parseConfig({ TOPIC_PREFIX: "p".repeat(200) }).TOPIC_PREFIX.length, 200);
  assert.throws(() => parseConfig({ TOPIC_PREFIX: "p".repeat(201) }), /TOPIC_PREFIX="p+": at most 200 characters/);
});

Deno.test("parseConfig() keeps MAX_EVENT_FUTURE_MS within the day the log side allows", () => {
  assert.equal(parseConfig({ MAX_EVENT_FUTURE_MS: "86400000" }).MAX_EVENT_FUTURE_MS, 86_400_000);
  assert.throws(
    () => parseConfig({ MAX_EVENT_FUTURE_MS: "86400001" }),
    /MAX_EVENT_FUTURE_MS="86400001": must be an integer from 0 to 86400000/,
  );
});
