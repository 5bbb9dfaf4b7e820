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
