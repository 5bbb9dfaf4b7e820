import assert from "node:assert/strict";
import {
  LARGEST_BATCH_RECORDS,
  parseConfig,
  parseLogClientConfig,
  SETTING_NAMES,
  topicNames,
  topicSpecs,
} from "../../engine/config.ts";
import { LATEST_TIME_MS } from "../../actors/events.ts";
import { redactUrl } from "../../engine/database_url.ts";
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
  const production = { KAFKA_BROKERS: "k:9092", DATABASE_URL: "postgres://u@x/y" };
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

Deno.test("topicSpecs() creates every topic with PARTITIONS, but the analytics feed with one (one global actor)", () => {
  const specs = topicSpecs(parseConfig({ PARTITIONS: "5" }), topicNames({ TOPIC_PREFIX: "" }));
  assert.deepEqual(Object.fromEntries(specs.map((s) => [s.topic, s.partitions])), {
    events: 5,
    "product-events": 5,
    alerts: 5,
    recommendations: 5,
    "events.dlq": 5,
    analytics: 1,
  });
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
  for (
    const value of [
      "engine-1:8080",
      "ftp://engine-1",
      "http://engine-1:8080/api",
      "http://u:p@engine-1",
      "http://u@engine-1",
      "http://engine-1/?a=1",
      "http://engine-1/#x",
      "nope",
    ]
  ) {
    assert.throws(
      () => parseConfig({ ADVERTISED_URL: value }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        const shown = value.replace(":p@", ":***@");
        assert.ok(error.message.includes(`ADVERTISED_URL=${JSON.stringify(shown)}`), error.message);
        assert.match(error.message, /http:\/\/ or https:\/\/ URL/);
        return true;
      },
      value,
    );
  }
});

Deno.test("parseConfig() rejects an ADVERTISED_URL on a wildcard address, which no other instance can dial", () => {
  // Dialled, 0.0.0.0 and :: reach the dialling host itself: every forwarded query would be answered by its sender.
  for (const value of ["http://0.0.0.0:8080", "http://0:8080", "https://[::]:8443", "http://[0:0::0]:8080"]) {
    assert.throws(
      () => parseConfig({ ADVERTISED_URL: value }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.ok(error.message.includes(`ADVERTISED_URL=${JSON.stringify(value)}`), error.message);
        assert.match(error.message, /wildcard/);
        return true;
      },
      value,
    );
  }
  assert.equal(parseConfig({ ADVERTISED_URL: "http://127.0.0.1:8080" }).ADVERTISED_URL, "http://127.0.0.1:8080");
});

Deno.test("parseConfig() rejects an ADVERTISED_URL on port 0, which no other instance can dial", () => {
  // PORT=0 binds a free port; an advertised port 0 was accepted, and every query forwarded to it failed.
  for (const value of ["http://engine-1:0", "https://engine-1:00", "http://[fd00::7]:0"]) {
    assert.throws(
      () => parseConfig({ ADVERTISED_URL: value }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.ok(error.message.includes(`ADVERTISED_URL=${JSON.stringify(value)}`), error.message);
        assert.match(error.message, /port from 1 to 65535/);
        return true;
      },
      value,
    );
  }
  assert.equal(parseConfig({ ADVERTISED_URL: "http://engine-1:1" }).ADVERTISED_URL, "http://engine-1:1");
  assert.equal(parseConfig({ ADVERTISED_URL: "http://engine-1:80" }).ADVERTISED_URL, "http://engine-1");
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
  assert.equal(parseConfig({ TRANSACTION_IDLE_TIMEOUT_MS: "1000" }).TRANSACTION_IDLE_TIMEOUT_MS, 1000);
  assert.equal(parseConfig({ TRANSACTION_IDLE_TIMEOUT_MS: "86400000" }).TRANSACTION_IDLE_TIMEOUT_MS, 86_400_000);
  // Under a second ends the engine's own checkpoint transactions between their statements.
  for (const value of ["1", "5", "999", "86400001", "1.5"]) {
    assert.throws(
      () => parseConfig({ TRANSACTION_IDLE_TIMEOUT_MS: value }),
      new RegExp(`TRANSACTION_IDLE_TIMEOUT_MS="${value}": must be 0 \\(never\\) or an integer from 1000 to 86400000`),
      value,
    );
  }
  assert.throws(() => parseConfig({ TRANSACTION_IDLE_TIMEOUT_MS: "-5" }), /TRANSACTION_IDLE_TIMEOUT_MS="-5"/);
  assert.throws(() => parseConfig({ TRANSACTION_IDLE_TIMEOUT_MS: "10s" }), /TRANSACTION_IDLE_TIMEOUT_MS="10s"/);
});

Deno.test("parseConfig() gives the consumer group a 10 s session by default; 3000–1800000 ms, anything else named", () => {
  assert.equal(parseConfig({}).KAFKA_SESSION_TIMEOUT_MS, 10_000);
  assert.equal(parseConfig({ KAFKA_SESSION_TIMEOUT_MS: "6000" }).KAFKA_SESSION_TIMEOUT_MS, 6000);
  // Three heartbeats (one a second) at least; at most what a broker allows by default (group.max.session.timeout.ms).
  assert.equal(parseConfig({ KAFKA_SESSION_TIMEOUT_MS: "3000" }).KAFKA_SESSION_TIMEOUT_MS, 3000);
  assert.equal(parseConfig({ KAFKA_SESSION_TIMEOUT_MS: "1800000" }).KAFKA_SESSION_TIMEOUT_MS, 1_800_000);
  for (const value of ["0", "1000", "2999", "1800001", "6000.5", "6s", "-6000"]) {
    assert.throws(
      () => parseConfig({ KAFKA_SESSION_TIMEOUT_MS: value }),
      new RegExp(
        `Cannot start: invalid configuration: KAFKA_SESSION_TIMEOUT_MS="${value}": must be an integer from ` +
          "3000 to 1800000, in decimal digits$",
      ),
      value,
    );
  }
});

Deno.test("parseConfig() treats a value of only whitespace like an empty one: unset, so the default applies", () => {
  const config = parseConfig({ PORT: "  ", MAX_EVENT_FUTURE_MS: "\t", STATE_TTL_DAYS: " ", HOST: " ", LOG_LEVEL: " " });
  assert.equal(config.PORT, 8080);
  assert.equal(config.MAX_EVENT_FUTURE_MS, 300_000);
  assert.equal(config.STATE_TTL_DAYS, 90);
  assert.equal(config.HOST, "0.0.0.0");
  assert.equal(config.LOG_LEVEL, "info");
  assert.equal(parseConfig({ FRAUD_NIGHT_END_HOUR: "  " }).FRAUD_NIGHT_END_HOUR, 6);
  // Text settings lose the spaces around them too: a client id is not " shop-1 ".
  assert.equal(parseConfig({ KAFKA_CLIENT_ID: " shop-1 " }).KAFKA_CLIENT_ID, "shop-1");
  assert.equal(parseConfig({ GROUP_ID: "\tshop\n" }).GROUP_ID, "shop");
  // And so do the named choices (an .env file's `LOG_LEVEL=debug ` was refused).
  assert.equal(parseConfig({ LOG_LEVEL: " debug " }).LOG_LEVEL, "debug");
  assert.equal(parseConfig({ TOPIC_PREFIX: " shop1. " }).TOPIC_PREFIX, "shop1.");
  assert.equal(
    parseConfig({ KAFKA_BROKERS: "k:9092", DATABASE_URL: "postgres://u@x/y", ROLE: "ingest\n" }).ROLE,
    "ingest",
  );
});

Deno.test("parseConfig() reads integers as plain decimal digits, surrounding whitespace trimmed", () => {
  assert.equal(parseConfig({ PORT: " 9000 " }).PORT, 9000);
  assert.equal(parseConfig({ PORT: "0" }).PORT, 0);
  assert.equal(parseConfig({ ACTOR_PACK_MS: "0" }).ACTOR_PACK_MS, 0);
  assert.equal(parseConfig({ FRAUD_NIGHT_UTC_OFFSET_MINUTES: "-60" }).FRAUD_NIGHT_UTC_OFFSET_MINUTES, -60);
  assert.equal(parseConfig({ FRAUD_ALERT_THRESHOLD: " 0.5 " }).FRAUD_ALERT_THRESHOLD, 0.5);
});

Deno.test("parseConfig() refuses hexadecimal, exponent, fractional and other non-decimal integers, naming the variable", () => {
  const cases: [string, string, RegExp][] = [
    ["PORT", "0x1F91", /must be an integer from 0 to 65535, in decimal digits/],
    ["PORT", "1e3", /must be an integer from 0 to 65535/],
    ["PORT", "+80", /must be an integer from 0 to 65535/],
    ["PORT", "0b1", /must be an integer from 0 to 65535/],
    ["MAX_EVENT_FUTURE_MS", "1e3", /must be an integer from 0 to 86400000, in decimal digits/],
    ["STATE_TTL_DAYS", "0x10", /must be an integer from 0 to 36500/],
    ["ACTOR_PACK_MS", "3e4", /must be an integer from 0 to 315360000000/],
    ["EMBEDDED_LOG_RETENTION_HOURS", "0o7", /must be an integer from 0 to 87600/],
    ["CHECKPOINT_INTERVAL_MS", "1_000", /must be an integer from 10 to 3600000/],
    ["USER_DEDUPE_EVENTS", "0x100", /must be an integer in decimal digits/],
    ["FRAUD_NIGHT_END_HOUR", "6e0", /must be an integer in decimal digits/],
    ["PORT", "8080.0", /must be an integer from 0 to 65535, in decimal digits/],
    ["PORT", "8080.", /must be an integer from 0 to 65535, in decimal digits/],
    ["CHECKPOINT_INTERVAL_MS", "1000.0", /must be an integer from 10 to 3600000, in decimal digits/],
    ["TRANSACTION_IDLE_TIMEOUT_MS", "10000.00", /must be 0 \(never\) or an integer from 1000 to 86400000/],
    ["USER_DEDUPE_EVENTS", "256.0", /must be an integer in decimal digits/],
    ["FRAUD_NIGHT_START_HOUR", "1.", /must be an integer in decimal digits/],
    ["ANALYTICS_RETENTION_MINUTES", "1440.0", /must be an integer in decimal digits/],
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

Deno.test("every numeric setting, present and future, refuses the forms Number() would read, naming the variable", () => {
  // A table over the whole schema: a setting added with z.coerce or Number() instead of the decimal readers would read
  // "0x10" as 16, "1e3" as 1000, "Infinity" as a number and "٣" as nothing in particular.
  const defaults = parseConfig({}) as unknown as Record<string, unknown>;
  const numeric = SETTING_NAMES.filter((name) => typeof defaults[name] === "number");
  assert.ok(numeric.length >= 70, `${numeric.length} numeric settings`);
  for (const name of numeric) {
    for (const value of ["0x10", "1e3", "1_000", "+5", "Infinity", "NaN", "\u0663", "5 5", "5,0"]) {
      assert.throws(
        () => parseConfig({ [name]: value }),
        (error: unknown) =>
          error instanceof ConfigError && error.message.includes(`${name}=${JSON.stringify(value)}: `),
        `${name}=${value}`,
      );
    }
  }
});

Deno.test("parseConfig() bounds the bytes ingestion holds waiting for the log: 32 MiB by default, bad values named", () => {
  assert.equal(parseConfig({}).MAX_INGEST_PENDING_BYTES, 32 * 1024 * 1024);
  assert.equal(parseConfig({ MAX_INGEST_PENDING_BYTES: "1048576" }).MAX_INGEST_PENDING_BYTES, 1024 * 1024);
  for (const value of ["0", "1023", "-1", "1e9", "lots"]) {
    assert.throws(
      () => parseConfig({ MAX_INGEST_PENDING_BYTES: value }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.includes(`MAX_INGEST_PENDING_BYTES="${value}": must be an integer from 1024 to 68719476736`),
      value,
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
  // A container name with an underscore is a name KAFKA_BROKERS and DATABASE_URL take too.
  for (
    const host of [
      "0.0.0.0",
      "::",
      "127.0.0.1",
      "::1",
      "localhost",
      "engine-1.internal",
      "engine_1",
      "fd00::7",
      "::ffff:10.0.0.1",
    ]
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
      "256.0.0.1",
      "10.300.0.1",
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

Deno.test("parseConfig() refuses a DATABASE_URL postgres.js cannot use, naming it and never showing its password", () => {
  const cases: [string, RegExp][] = [
    ["postgres://app:s3cret@db:99999/app", /each host must be a hostname, .* port from 1 to 65535/],
    ["postgres://app:s3cret@db:0/app", /port from 1 to 65535/],
    ["postgres://app:s3cret@db:54x/app", /port from 1 to 65535/],
    ["postgres://app:50%off@db/app", /the password is not valid percent-encoding/],
    ["postgres://a%zzpp:s3cret@db/app", /the user name is not valid percent-encoding/],
    ["postgress://app:s3cret@db/app", /must be a postgres:\/\/ or postgresql:\/\/ URL/],
    ["app:s3cret@db/app", /must be a postgres:\/\/ or postgresql:\/\/ URL/],
    ["postgres://app:s3cret@/app", /must name a host/],
    ["postgres://:s3cret@db/app", /must name the user/],
    ["postgres://app:s3cret@db,/app", /each host must be/],
    ["postgres://app:s3cret@not a host/app", /each host must be/],
    ["postgres://app:s3cr/et@db/app", /percent-encoded/],
    ["postgres://app:s3cr#et@db/app", /percent-encoded/],
    ["postgres://app:s3cret@db/app%zz", /the database name is not valid percent-encoding/],
    ["postgres://app:s3cret@db/app?sslmode=on", /sslmode must be one of disable, allow, prefer, require/],
    ["postgres://app:s3cret@db/app?target_session_attrs=master", /target_session_attrs must be one of/],
    ["postgres://app:s3cret@db/app?idle_timeout=5", /idle_timeout is a client option the engine sets itself/],
    ["postgres://app:s3cret@db/app?keepalives=1", /the parameter keepalives is not supported/],
    ["postgres://app:s3cret@db/app?connect_timeout=0", /connect_timeout must be whole seconds from 1/],
    ["postgres://app@db/app?password=s3cret", /password= is not supported/],
    ["postgres://app@db/app?sslpassword=s3cret", /the parameter sslpassword is not supported/],
    ["postgres://app:s3cret@/app?host=db", /host= must be a Unix socket directory/],
  ];
  for (const [url, rule] of cases) {
    assert.throws(
      () => parseConfig({ KAFKA_BROKERS: "k:9092", DATABASE_URL: url }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /DATABASE_URL="/);
        assert.match(error.message, rule);
        assert.doesNotMatch(error.message, /s3cr/, "the password is shown");
        return true;
      },
      url,
    );
  }
  // The value is shown with the password replaced.
  assert.throws(
    () => parseConfig({ KAFKA_BROKERS: "k:9092", DATABASE_URL: "postgress://app:s3cret@db/app" }),
    /DATABASE_URL="postgress:\/\/app:\*\*\*@db\/app"/,
  );
});

Deno.test("parseConfig() accepts DATABASE_URLs postgres.js connects with: encoded passwords, host lists, IPv6, parameters", () => {
  for (
    const url of [
      "postgres://app:50%25off@db/app",
      "postgresql://app:p%40ss%2Fw%3Ard@db.internal:6543/app",
      "postgres://app@db-1:5432,db-2:5433/app?target_session_attrs=read-write",
      "postgres://app@[::1]:5432/app",
      "postgres://app@10.0.0.7/app?sslmode=require&application_name=engine",
      "postgres://app@postgres_1",
      // Unix sockets: Cloud SQL on Cloud Run, local peer authentication.
      "postgres://app:s3cret@/app?host=/cloudsql/project:region:instance",
      "postgres://app@%2Fvar%2Frun%2Fpostgresql/app",
      // libpq's connect_timeout; a hosted service's channel_binding.
      "postgres://app@db/app?connect_timeout=10",
      "postgresql://app:s3cret@ep-x-123.us-east-2.aws.neon.tech/app?sslmode=require&channel_binding=prefer",
    ]
  ) {
    assert.equal(parseConfig({ KAFKA_BROKERS: "k:9092", DATABASE_URL: url }).DATABASE_URL, url);
  }
});

Deno.test("redactUrl() hides the password of valid and malformed URLs alike", () => {
  assert.equal(redactUrl("postgres://app:s3cret@db/app"), "postgres://app:***@db/app");
  assert.equal(redactUrl("postgres://app:s3cret@db:99999/app"), "postgres://app:***@db:99999/app");
  assert.equal(redactUrl("postgres://app:p@ss/w#rd@db/app"), "postgres://app:***@db/app");
  assert.equal(redactUrl("app:s3cret@db/app"), "app:***@db/app");
  assert.equal(redactUrl("postgres://app@[::1]:5432/app"), "postgres://app@[::1]:5432/app");
  assert.equal(redactUrl("postgres://db/app"), "postgres://db/app");
});

Deno.test("parseConfig() refuses KAFKA_BROKERS that are not host:port, naming the variable", () => {
  const database = { DATABASE_URL: "postgres://u@db/app" };
  for (
    const value of [
      "127.0.0.1:1,",
      "localhost",
      "kafka://localhost:9092",
      " , ",
      "localhost:0",
      "localhost:65536",
      "localhost:90x",
      "[::1]:9092",
      "kafka-1:9092,,kafka-2:9092",
      "kafka 1:9092",
    ]
  ) {
    assert.throws(
      () => parseConfig({ ...database, KAFKA_BROKERS: value }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.ok(error.message.includes(`KAFKA_BROKERS=${JSON.stringify(value)}: `), error.message);
        assert.match(error.message, /each broker must be host:port with a port from 1 to 65535/);
        return true;
      },
      value,
    );
  }
});

Deno.test("parseConfig() accepts KAFKA_BROKERS as comma-separated host:port, spaces around each trimmed", () => {
  const database = { DATABASE_URL: "postgres://u@db/app" };
  assert.equal(parseConfig({ ...database, KAFKA_BROKERS: "localhost:9092" }).KAFKA_BROKERS, "localhost:9092");
  assert.equal(
    parseConfig({ ...database, KAFKA_BROKERS: " kafka-1:9092 , 10.0.0.7:19092,kafka_2.internal:65535 " }).KAFKA_BROKERS,
    "kafka-1:9092,10.0.0.7:19092,kafka_2.internal:65535",
  );
});

/** Every duration setting with the milliseconds in one of its units. */
const DURATIONS: [name: string, unitMs: number, integer: boolean][] = [
  ["ACTOR_IDLE_MS", 1, true],
  ["ACTOR_PACK_MS", 1, true],
  ["CLOCK_IDLE_MS", 1, true],
  ["SESSION_GAP_MINUTES", 60_000, false],
  ["CART_ABANDON_MINUTES", 60_000, false],
  ["CHECKOUT_ABANDON_MINUTES", 60_000, false],
  ["FRAUD_VELOCITY_MINUTES", 60_000, false],
  ["FRAUD_DISTINCT_HOURS", 3_600_000, false],
  ["TRENDING_HALF_LIFE_MINUTES", 60_000, false],
  ["RECS_MIN_INTERVAL_SECONDS", 1000, false],
  ["ANALYTICS_RETENTION_MINUTES", 60_000, true],
  ["CATEGORY_WINDOW_MINUTES", 60_000, true],
  ["LOW_CONVERSION_WINDOW_MINUTES", 60_000, true],
  ["HIGH_ABANDONMENT_WINDOW_MINUTES", 60_000, true],
  ["LOW_TRAFFIC_WINDOW_MINUTES", 60_000, true],
  ["SLOW_PAGES_WINDOW_MINUTES", 60_000, true],
  ["BUSINESS_ALERT_COOLDOWN_MINUTES", 60_000, true],
];
const TEN_YEARS_MS = 3650 * 86_400_000;

Deno.test("parseConfig() refuses a duration over ten years (CART_ABANDON_MINUTES=1e15 overflowed next_timer_at)", () => {
  assert.throws(
    () => parseConfig({ CART_ABANDON_MINUTES: "1000000000000000" }),
    /CART_ABANDON_MINUTES="1000000000000000": must be at most 5256000 \(ten years\)/,
  );
  // The retention at its longest too, so that no business-alert window at its longest exceeds it.
  const longest = { ANALYTICS_RETENTION_MINUTES: String(TEN_YEARS_MS / 60_000) };
  for (const [name, unitMs, integer] of DURATIONS) {
    const max = TEN_YEARS_MS / unitMs;
    assert.equal(parseConfig({ ...longest, [name]: String(max) })[name as "PORT"], max, name);
    assert.throws(
      () => parseConfig({ ...longest, [name]: String(integer ? max + 1 : max + 0.5) }),
      (error: unknown) => error instanceof ConfigError && error.message.includes(`${name}=`),
      name,
    );
    // In milliseconds after the latest instant an event may carry, still exact and within a PostgreSQL bigint.
    assert.ok(LATEST_TIME_MS + max * unitMs <= Number.MAX_SAFE_INTEGER, name);
  }
});

Deno.test("parseConfig() refuses a FACT_DEDUPE_WINDOW not above CHECKPOINT_MAX_MESSAGES plus the largest batch", () => {
  assert.equal(LARGEST_BATCH_RECORDS, 10_000);
  // The defaults leave room: 32768 > 10000 + 10000.
  assert.equal(parseConfig({}).FACT_DEDUPE_WINDOW, 32_768);
  assert.equal(parseConfig({ FACT_DEDUPE_WINDOW: "20001" }).FACT_DEDUPE_WINDOW, 20_001);
  const refusals: [Record<string, string>, RegExp][] = [
    [{ FACT_DEDUPE_WINDOW: "20000" }, /current value is 20000; set FACT_DEDUPE_WINDOW above 20000/],
    [{ FACT_DEDUPE_WINDOW: "15000" }, /CHECKPOINT_MAX_MESSAGES \(10000\) plus the largest batch \(10000 records\)/],
    [{ CHECKPOINT_MAX_MESSAGES: "30000" }, /current value is 32768; set FACT_DEDUPE_WINDOW above 40000/],
  ];
  for (const [env, detail] of refusals) {
    assert.throws(
      () => parseConfig(env),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /^Cannot tell facts replayed after a crash from new ones with FACT_DEDUPE_WINDOW/);
        assert.match(error.message, /CHECKPOINT_MAX_MESSAGES/);
        assert.match(error.message, detail);
        return true;
      },
      JSON.stringify(env),
    );
  }
});

Deno.test("parseConfig() refuses a business-alert window longer than ANALYTICS_RETENTION_MINUTES (it was cut)", () => {
  const windows = [
    "LOW_CONVERSION_WINDOW_MINUTES",
    "HIGH_ABANDONMENT_WINDOW_MINUTES",
    "LOW_TRAFFIC_WINDOW_MINUTES",
    "SLOW_PAGES_WINDOW_MINUTES",
  ];
  for (const name of windows) {
    assert.equal(parseConfig({ ANALYTICS_RETENTION_MINUTES: "60", [name]: "60" })[name as "PORT"], 60);
    assert.throws(
      () => parseConfig({ ANALYTICS_RETENTION_MINUTES: "60", [name]: "100000" }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.ok(
          error.message.includes(
            `Cannot evaluate ${name} over minutes the global actor no longer keeps: current value is 100000, ` +
              "above ANALYTICS_RETENTION_MINUTES (60)",
          ),
          error.message,
        );
        return true;
      },
      name,
    );
  }
  // Every conflict is named at once.
  assert.throws(
    () =>
      parseConfig({ ANALYTICS_RETENTION_MINUTES: "60", LOW_TRAFFIC_WINDOW_MINUTES: "61", FACT_DEDUPE_WINDOW: "2000" }),
    (error: unknown) =>
      error instanceof ConfigError && /FACT_DEDUPE_WINDOW/.test(error.message) &&
      /LOW_TRAFFIC_WINDOW_MINUTES over minutes/.test(error.message),
  );
});

Deno.test("parseConfig() refuses revenue-by-category windows wider than ANALYTICS_RETENTION_MINUTES (they were cut)", () => {
  // The realtime revenueByCategory sums the global actor's minutes in memory: a wider window summed only the last
  // ANALYTICS_RETENTION_MINUTES of it, under a windowStart that said otherwise.
  assert.equal(
    parseConfig({ ANALYTICS_RETENTION_MINUTES: "60", CATEGORY_WINDOW_MINUTES: "60" }).CATEGORY_WINDOW_MINUTES,
    60,
  );
  assert.equal(parseConfig({ CATEGORY_WINDOW_MINUTES: "1440" }).CATEGORY_WINDOW_MINUTES, 1440);
  for (
    const env of [{ CATEGORY_WINDOW_MINUTES: "10080" }, {
      ANALYTICS_RETENTION_MINUTES: "60",
      CATEGORY_WINDOW_MINUTES: "61",
    }]
  ) {
    assert.throws(
      () => parseConfig(env),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        const retention = env.ANALYTICS_RETENTION_MINUTES ?? "1440";
        assert.ok(
          error.message.includes(
            `Cannot evaluate CATEGORY_WINDOW_MINUTES over minutes the global actor no longer keeps: current value is ` +
              `${env.CATEGORY_WINDOW_MINUTES}, above ANALYTICS_RETENTION_MINUTES (${retention})`,
          ),
          error.message,
        );
        return true;
      },
      JSON.stringify(env),
    );
  }
});

Deno.test("parseLogClientConfig() (deno task tail) applies the engine's rules to the broker list, group and topic prefix", () => {
  const client = parseLogClientConfig({
    KAFKA_BROKERS: " kafka-1:9092 , kafka-2:9092 ",
    GROUP_ID: " shop ",
    TOPIC_PREFIX: "  ",
    DATABASE_URL: undefined,
  });
  assert.deepEqual({ ...client }, {
    KAFKA_BROKERS: "kafka-1:9092,kafka-2:9092",
    KAFKA_CLIENT_ID: "actor-engine",
    GROUP_ID: "shop",
    TOPIC_PREFIX: "",
  });
  assert.equal(topicNames(client).alerts, "alerts", "a blank prefix is unset, as for the engine");
  assert.equal(parseLogClientConfig({}).KAFKA_BROKERS, undefined);
  assert.throws(
    () => parseLogClientConfig({ KAFKA_BROKERS: "http://kafka:9092" }),
    (error) =>
      error instanceof ConfigError &&
      /KAFKA_BROKERS="http:\/\/kafka:9092": each broker must be host:port/.test(error.message),
  );
  assert.throws(
    () => parseLogClientConfig({ TOPIC_PREFIX: "shop/" }),
    (error) => error instanceof ConfigError && /TOPIC_PREFIX="shop\/"/.test(error.message),
  );
});

Deno.test("parseConfig() refuses fraud thresholds the kept order history can never reach (the signal never fired)", () => {
  // order_velocity counts the earlier orders of USER_RECENT_ORDERS: more than FRAUD_VELOCITY_ORDERS needs one more.
  assert.equal(parseConfig({ USER_RECENT_ORDERS: "3", FRAUD_VELOCITY_ORDERS: "2" }).USER_RECENT_ORDERS, 3);
  // distinct_payment_or_country counts the order and its kept earlier ones: FRAUD_DISTINCT_LIMIT at most one more.
  assert.equal(parseConfig({ USER_RECENT_ORDERS: "3", FRAUD_DISTINCT_LIMIT: "4" }).FRAUD_DISTINCT_LIMIT, 4);
  const refused = (env: Record<string, string>, ...names: RegExp[]) =>
    assert.throws(
      () => parseConfig(env),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        for (const name of names) assert.match(error.message, name);
        return true;
      },
      JSON.stringify(env),
    );
  refused(
    { USER_RECENT_ORDERS: "2" },
    /Cannot fire order_velocity: FRAUD_VELOCITY_ORDERS is 2, but USER_RECENT_ORDERS \(2\) keeps at most 2 earlier orders/,
  );
  refused(
    { USER_RECENT_ORDERS: "50", FRAUD_VELOCITY_ORDERS: "50" },
    /FRAUD_VELOCITY_ORDERS is 50, but USER_RECENT_ORDERS \(50\)/,
  );
  refused(
    { USER_RECENT_ORDERS: "3", FRAUD_DISTINCT_LIMIT: "5" },
    /Cannot fire distinct_payment_or_country: FRAUD_DISTINCT_LIMIT is 5, but USER_RECENT_ORDERS \(3\)/,
  );
  // Both at once.
  refused({ USER_RECENT_ORDERS: "1" }, /FRAUD_VELOCITY_ORDERS/, /FRAUD_DISTINCT_LIMIT/);
});

Deno.test("parseConfig() refuses FRAUD_ALERT_THRESHOLD=0, which raised fraud_suspected on every order, with no signal", () => {
  // Every score is at least 0: an order no signal fired on scored 0 and was reported as suspected, listing nothing.
  assert.equal(parseConfig({ FRAUD_ALERT_THRESHOLD: "0.01" }).FRAUD_ALERT_THRESHOLD, 0.01);
  for (const value of ["0", "0.0", " 0 "]) {
    assert.throws(
      () => parseConfig({ FRAUD_ALERT_THRESHOLD: value }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(
          error.message,
          /FRAUD_ALERT_THRESHOLD is 0, so every order would raise fraud_suspected, even one no signal fired on; raise FRAUD_ALERT_THRESHOLD above 0/,
        );
        return true;
      },
      value,
    );
  }
});

Deno.test("parseConfig() refuses a FRAUD_ALERT_THRESHOLD above every signal's weight together (it never fired)", () => {
  const weights = {
    FRAUD_HIGH_TOTAL_WEIGHT: "0.1",
    FRAUD_VELOCITY_WEIGHT: "0.1",
    FRAUD_NIGHT_WEIGHT: "0.1",
    FRAUD_FIRST_ORDER_WEIGHT: "0.1",
    FRAUD_AOV_WEIGHT: "0.1",
    FRAUD_DISTINCT_WEIGHT: "0.1",
  };
  // Lowered weights that still reach the threshold, and every weight 0: fraud alerts turned off, as asked.
  assert.equal(parseConfig({ ...weights, FRAUD_ALERT_THRESHOLD: "0.6" }).FRAUD_ALERT_THRESHOLD, 0.6);
  const off = Object.fromEntries(Object.keys(weights).map((name) => [name, "0"]));
  assert.equal(parseConfig({ ...off, FRAUD_ALERT_THRESHOLD: "0.7" }).FRAUD_HIGH_TOTAL_WEIGHT, 0);
  // Six weights of 0.1 add up to 0.6 at most: an alert at 0.7 was never raised, and nothing said so.
  assert.throws(
    () => parseConfig({ ...weights, FRAUD_ALERT_THRESHOLD: "0.7" }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(
        error.message,
        /Cannot fire fraud_suspected: FRAUD_ALERT_THRESHOLD is 0\.7, above 0\.6, the score of every signal firing at once/,
      );
      return true;
    },
  );
});

Deno.test("parseConfig() refuses an empty night_time window, which silently never fired", () => {
  const night = (start: string, end: string, weight?: string) =>
    parseConfig({
      FRAUD_NIGHT_START_HOUR: start,
      FRAUD_NIGHT_END_HOUR: end,
      ...(weight === undefined ? {} : { FRAUD_NIGHT_WEIGHT: weight }),
    });
  // Wrapping past midnight, the whole day, and an hour of 24 read as midnight: each holds at least one hour.
  assert.equal(night("22", "6").FRAUD_NIGHT_START_HOUR, 22);
  assert.equal(night("0", "24").FRAUD_NIGHT_END_HOUR, 24);
  assert.equal(night("24", "6").FRAUD_NIGHT_START_HOUR, 24);
  // An empty window with the signal weighed 0 is the signal turned off, as asked.
  assert.equal(night("3", "3", "0").FRAUD_NIGHT_WEIGHT, 0);
  for (const [start, end] of [["3", "3"], ["0", "0"], ["24", "24"], ["24", "0"]]) {
    assert.throws(
      () => night(start, end),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.ok(
          error.message.includes(
            `Cannot fire night_time: FRAUD_NIGHT_START_HOUR (${start}) to FRAUD_NIGHT_END_HOUR (${end}) holds no hour`,
          ),
          error.message,
        );
        return true;
      },
      `${start}-${end}`,
    );
  }
});

Deno.test("parseConfig() refuses business alert thresholds that can never fire (the alert was silently off)", () => {
  // A ratio is never below 0 nor above 1, and no average loadTime is above the longest accepted (3600 s).
  assert.equal(parseConfig({ LOW_CONVERSION_RATIO: "0.001" }).LOW_CONVERSION_RATIO, 0.001);
  assert.equal(parseConfig({ HIGH_ABANDONMENT_RATIO: "0.999" }).HIGH_ABANDONMENT_RATIO, 0.999);
  assert.equal(parseConfig({ SLOW_PAGES_SECONDS: "3599.999" }).SLOW_PAGES_SECONDS, 3599.999);
  const refused = (env: Record<string, string>, ...messages: RegExp[]) =>
    assert.throws(
      () => parseConfig(env),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        for (const message of messages) assert.match(error.message, message);
        return true;
      },
      JSON.stringify(env),
    );
  refused(
    { LOW_CONVERSION_RATIO: "0" },
    /Cannot fire low_conversion: LOW_CONVERSION_RATIO is 0, and orders \/ checkouts is never below 0; raise LOW_CONVERSION_RATIO above 0/,
  );
  refused(
    { HIGH_ABANDONMENT_RATIO: "1" },
    /Cannot fire high_cart_abandonment: HIGH_ABANDONMENT_RATIO is 1, and abandoned \/ \(abandoned \+ converted\) carts is never above 1; lower HIGH_ABANDONMENT_RATIO below 1/,
  );
  refused(
    { SLOW_PAGES_SECONDS: "3600" },
    /Cannot fire slow_pages: SLOW_PAGES_SECONDS is 3600, and no page's loadTime is accepted above 3600 s; lower SLOW_PAGES_SECONDS below 3600/,
  );
  refused({ SLOW_PAGES_SECONDS: "86400" }, /SLOW_PAGES_SECONDS is 86400/);
  // Every one at once.
  refused(
    { LOW_CONVERSION_RATIO: "0", HIGH_ABANDONMENT_RATIO: "1", SLOW_PAGES_SECONDS: "5000" },
    /LOW_CONVERSION_RATIO is 0/,
    /HIGH_ABANDONMENT_RATIO is 1/,
    /SLOW_PAGES_SECONDS is 5000/,
  );
});

Deno.test("parseConfig() takes a fully qualified name with its trailing dot in HOST, KAFKA_BROKERS and DATABASE_URL", () => {
  // `kafka.svc.cluster.local.` is how Kubernetes users skip the resolver's search list; it was refused in all three.
  const config = parseConfig({
    HOST: "engine-1.svc.cluster.local.",
    KAFKA_BROKERS: "kafka.svc.cluster.local.:9092",
    DATABASE_URL: "postgres://u@db.svc.cluster.local.:5432/engine",
  });
  assert.equal(config.HOST, "engine-1.svc.cluster.local.");
  assert.equal(config.KAFKA_BROKERS, "kafka.svc.cluster.local.:9092");
  // Still refused: a lone dot, an empty label before the dot, two dots.
  for (const host of [".", "a..", "engine..", "1.2.3.4."]) {
    assert.throws(() => parseConfig({ HOST: host }), ConfigError, host);
  }
});
