import assert from "node:assert/strict";
import {
  BUNDLE_HEADER,
  BUNDLE_INDEX_HEADER,
  bundleRecords,
  expandBundle,
  isBundle,
  OutputBundler,
} from "../../engine/fact_bundle.ts";
import { ValidationError } from "../../engine/errors.ts";
import type { LogRecord, OutgoingRecord } from "../../engine/log.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { DLQ_HEADERS } from "../../engine/dead_letter.ts";
import { emitTestAlert, Harness, recorderLogic } from "../helpers/runtime.ts";
import type { ActorContext } from "../../engine/actor.ts";
import { TerminalError } from "../../engine/errors.ts";

const text = (bytes: Uint8Array | string) => typeof bytes === "string" ? bytes : new TextDecoder().decode(bytes);

/** What the log would hand back for an appended record. */
function asRead(record: OutgoingRecord, offset: number): LogRecord {
  return {
    topic: record.topic,
    partition: record.partition ?? -1,
    offset,
    key: record.key,
    value: typeof record.value === "string" ? new TextEncoder().encode(record.value) : record.value,
    headers: record.headers ?? {},
    timestamp: 0,
  };
}

Deno.test("bundleRecords() puts each fact in its key's partition, in order, and expandBundle() gives the exact records back", () => {
  const facts: OutgoingRecord[] = Array.from({ length: 500 }, (_, i) => ({
    topic: "product-events",
    key: `sku-${i % 37}-é`,
    value: JSON.stringify({ fact: "view", n: i, text: "ü".repeat(i % 5) }),
  }));
  const others: OutgoingRecord[] = [
    { topic: "alerts", key: "u1", value: "{}" },
    { topic: "product-events", key: "sku-1", value: "{}", headers: { custom: "kept apart" } },
  ];
  const out = bundleRecords([...facts.slice(0, 250), ...others, ...facts.slice(250)], new Map([["product-events", 6]]));
  assert.deepEqual(
    out.filter((r) => !r.headers?.[BUNDLE_HEADER]),
    others,
    "other topics and records with headers pass",
  );
  const bundles = out.filter((r) => r.headers?.[BUNDLE_HEADER]);
  assert.equal(bundles.length, 7, "one bundle per partition, two for the one the record with headers went to");
  const expanded = bundles.flatMap((b, i) => expandBundle(asRead(b, i)));
  for (const entry of expanded) assert.equal(entry.partition, partitionForKey(entry.key!, 6));
  for (let p = 0; p < 6; p++) {
    const sent = facts.filter((f) => partitionForKey(f.key, 6) === p).map((f) => [f.key, f.value]);
    const got = expanded.filter((e) => e.partition === p).map((e) => [e.key, text(e.value!)]);
    assert.deepEqual(got, sent, `partition ${p}: same records, same order`);
  }
  const indexes = expanded.filter((e) => e.offset === 0).map((e) => e.headers[BUNDLE_INDEX_HEADER]);
  assert.deepEqual(indexes, indexes.map((_, i) => String(i)));
});

Deno.test("a record with headers goes alone, between the bundles of what came before and after it", () => {
  const record = (value: string, headers?: Record<string, string>): OutgoingRecord => ({
    topic: "analytics",
    key: "global",
    value,
    headers,
  });
  const out = bundleRecords([record("a"), record("b", { h: "1" }), record("c")], new Map([["analytics", 1]]));
  const values = out.flatMap((r, i) =>
    r.headers?.[BUNDLE_HEADER] ? expandBundle(asRead(r, i)).map((e) => text(e.value!)) : [text(r.value)]
  );
  assert.deepEqual(values, ["a", "b", "c"]);
});

Deno.test("bundles are split to stay under the size limit; a larger record goes alone", () => {
  const facts: OutgoingRecord[] = Array.from({ length: 100 }, (_, i) => ({
    topic: "analytics",
    key: "global",
    value: "x".repeat(i === 50 ? 5_000 : 90),
  }));
  const bundles = bundleRecords(facts, new Map([["analytics", 1]]), 1_000);
  assert.ok(bundles.every((b) => (b.value as Uint8Array).length <= 1_000 || expandBundle(asRead(b, 0)).length === 1));
  assert.ok(bundles.length >= 10);
  const values = bundles.flatMap((b, i) => expandBundle(asRead(b, i)).map((e) => text(e.value!)));
  assert.deepEqual(values, facts.map((f) => f.value));
});

Deno.test("bundles keep exact bytes as they grow: byte values, non-ASCII text, values too large to encode in place", () => {
  const facts: OutgoingRecord[] = Array.from({ length: 1_200 }, (_, i) => ({
    topic: "analytics",
    key: i % 7 === 0 ? `clé-${i}` : `k${i}`,
    value: i % 3 === 0 ? new Uint8Array([i & 0xff, 0x80, 0xff, 0]) : i === 601
      ? `{"big":"${"é".repeat(40_000)}"}` // more than the encoding scratch holds
      : JSON.stringify({ n: i, text: "ü€😀".repeat(i % 4), pad: "x".repeat(i % 150) }),
  }));
  const bundles = bundleRecords(facts, new Map([["analytics", 1]]));
  assert.ok(bundles.length >= 1 && (bundles[0].value as Uint8Array).length > 64 * 1024, "grown past its first buffer");
  const entries = bundles.flatMap((b, i) => expandBundle(asRead(b, i)));
  assert.deepEqual(entries.map((e) => e.key), facts.map((f) => f.key));
  const bytes = (v: Uint8Array | string) => typeof v === "string" ? new TextEncoder().encode(v) : v;
  facts.forEach((f, n) => {
    const [sent, got] = [bytes(f.value), entries[n].value!];
    assert.ok(sent.length === got.length && sent.every((b, i) => got[i] === b), `entry ${n}: bytes differ`);
  });
});

Deno.test("OutputBundler: records() closes the bundles so far and keeps them; later records start new bundles after them", () => {
  const bundler = new OutputBundler(new Map([["analytics", 1], ["product-events", 3]]));
  const fact = (topic: string, key: string, n: number): OutgoingRecord => ({ topic, key, value: `{"n":${n}}` });
  const entries = (records: OutgoingRecord[]) =>
    records.flatMap((r, i) =>
      r.headers?.[BUNDLE_HEADER]
        ? expandBundle(asRead(r, i)).map((e) => `${r.topic}/${e.key}=${text(e.value!)}`)
        : [`${r.topic}/${r.key}=${text(r.value)}`]
    );
  for (let n = 0; n < 6; n++) bundler.add(fact(n % 2 ? "analytics" : "product-events", `k${n % 3}`, n));
  bundler.add({ topic: "alerts", key: "u", value: "alert" });
  assert.equal(bundler.length, 1 + new Set([0, 2, 4].map((n) => partitionForKey(`k${n % 3}`, 3))).size + 1);
  const first = bundler.records();
  const firstEntries = entries(first);
  assert.equal(firstEntries.length, 7);
  // A publish that failed is retried with the same records, plus what was handled since, after them.
  bundler.add(fact("analytics", "k0", 6));
  const second = bundler.records();
  assert.deepEqual(second.slice(0, first.length), first, "the earlier records, unchanged");
  assert.deepEqual(entries(second), [...firstEntries, 'analytics/k0={"n":6}']);
  assert.deepEqual(entries(first), firstEntries, "a returned list does not change with later records");
  bundler.clear();
  assert.equal(bundler.length, 0);
  assert.deepEqual(bundler.records(), []);
  bundler.add(fact("analytics", "k1", 7));
  assert.deepEqual(entries(bundler.records()), ['analytics/k1={"n":7}']);
});

Deno.test("a malformed bundle is a validation error, not a partial read", () => {
  const [bundle] = bundleRecords([{ topic: "t", key: "k", value: "value" }], new Map([["t", 1]]));
  const read = asRead(bundle, 0);
  assert.ok(isBundle(read));
  assert.throws(
    () => expandBundle({ ...read, value: read.value!.subarray(0, read.value!.length - 1) }),
    ValidationError,
  );
  assert.throws(() => expandBundle({ ...read, headers: { [BUNDLE_HEADER]: "99" } }), /unknown bundle version/);
});

Deno.test("the runtime handles bundled records one by one: distinct output ids, bad entries dead-lettered alone", async () => {
  const h = new Harness(
    recorderLogic({
      handle: (_key, message) => {
        if (message.n === 13) throw new TerminalError("13 is unlucky");
      },
    }),
    1,
  );
  await h.start();
  const entries = [1, 2, 13, 3].map((n) => ({ topic: h.topics.events, key: n === 2 ? "b" : "a", value: `{"n":${n}}` }));
  entries.splice(3, 0, { topic: h.topics.events, key: "a", value: "{not json" });
  const [bundle] = bundleRecords(entries, new Map([[h.topics.events, 1]]));
  h.send("a", { n: 0 });
  const [read, broken] = h.log.appendNow([bundle, {
    topic: h.topics.events,
    key: "",
    value: "\u0005",
    headers: { [BUNDLE_HEADER]: "1" },
  }]);
  h.send("b", { n: 4 });
  await h.drained();
  await h.stop();
  assert.deepEqual((await h.stored("a"))?.values, [0, 1, 3]);
  assert.deepEqual((await h.stored("b"))?.values, [2, 4]);
  const dlq = h.log.all(h.topics.dlq);
  assert.deepEqual(
    dlq.map((r) => [r.headers[DLQ_HEADERS.offset], r.headers[BUNDLE_INDEX_HEADER], text(r.value!)]),
    [["1", "3", "{not json"], ["2", undefined, "\u0005"], ["1", "2", '{"n":13}']],
    "entries are dead-lettered with their bytes and index; a broken bundle as a whole",
  );
  // Each names its error and its source as any dead letter does: the bundle's topic, partition and append time.
  assert.deepEqual(
    dlq.map((r) => [
      r.key,
      r.headers[DLQ_HEADERS.errorCode],
      r.headers[DLQ_HEADERS.topic],
      r.headers[DLQ_HEADERS.partition],
      r.headers[DLQ_HEADERS.timestamp],
    ]),
    [
      ["a", "validation_failed", h.topics.events, "0", String(read.timestamp)],
      ["", "validation_failed", h.topics.events, "0", String(broken.timestamp)],
      ["a", "terminal", h.topics.events, "0", String(read.timestamp)],
    ],
  );
  assert.match(dlq[0].headers[DLQ_HEADERS.errorMessage], /JSON/);
  assert.match(dlq[1].headers[DLQ_HEADERS.errorMessage], /bundle truncated/);
  assert.match(dlq[2].headers[DLQ_HEADERS.errorMessage], /13 is unlucky/);
});

Deno.test("a key that starts with U+FEFF comes out of its bundle as it went in", () => {
  const keys = ["\uFEFF", "\uFEFFsku-1", "sku-\uFEFF", "\uFEFF\uFEFFx"];
  const [bundle] = bundleRecords(
    keys.map((key) => ({ topic: "product-events", key, value: "{}" })),
    new Map([["product-events", 1]]),
  );
  // A leading U+FEFF was dropped as a byte order mark: "\uFEFFsku-1" came back as "sku-1", another product.
  assert.deepEqual(expandBundle(asRead(bundle, 0)).map((r) => r.key), keys);
});

Deno.test("entries of one bundle get distinct output ids, so each one's alert is stored", async () => {
  // Every message raises an alert whose id is ctx.outputId: derived from the record, and for a
  // bundle entry from its index too.
  const logic = {
    ...recorderLogic(),
    handle: (state: { key: string; values: readonly number[] }, message: { n: number }, ctx: ActorContext) => {
      emitTestAlert(ctx, "recorded", state.key, { n: message.n });
      return { ...state, values: [...state.values, message.n] };
    },
  };
  const h = new Harness(logic, 1);
  await h.start();
  const entries = [1, 2, 3].map((n) => ({ topic: h.topics.events, key: "a", value: `{"n":${n}}` }));
  h.log.appendNow(bundleRecords(entries, new Map([[h.topics.events, 1]])));
  await h.drained();
  await h.stop();
  // With the index left out, the three shared one id, and the alerts table (unique by id) kept one.
  assert.equal(h.store.alerts.size, 3);
  assert.deepEqual([...h.store.alerts.values()].map((a) => a.details.n).sort(), [1, 2, 3]);
});

Deno.test("a bundle counts as its entries toward CHECKPOINT_MAX_MESSAGES: a bundle of that many facts is checkpointed at once", async () => {
  const h = new Harness(recorderLogic(), 1, 5, { checkpointIntervalMs: 1e9 }); // checkpoint after 5 messages
  await h.start();
  const entries = [1, 2, 3, 4, 5].map((n) => ({ topic: h.topics.events, key: "a", value: `{"n":${n}}` }));
  h.log.appendNow(bundleRecords(entries, new Map([[h.topics.events, 1]])));
  await h.drained(); // no housekeeping round: only the message count can checkpoint it
  assert.deepEqual((await h.stored("a"))?.values, [1, 2, 3, 4, 5]);
  await h.stop();
});

Deno.test("a bundle keeps an entry of 3-byte characters too long for the encoding scratch, after a small one", () => {
  // 30,000 units of "€" are 90,000 bytes: a scratch sized for 2 bytes a unit would take it and truncate it.
  const facts: OutgoingRecord[] = [
    { topic: "analytics", key: "global", value: '{"n":1}' },
    { topic: "analytics", key: "global", value: `{"category":"${"€".repeat(30_000)}"}` },
    { topic: "analytics", key: "€".repeat(25_000), value: "{}" },
  ];
  const bundles = bundleRecords(facts, new Map([["analytics", 1]]));
  const entries = bundles.flatMap((b, i) => expandBundle(asRead(b, i)));
  assert.deepEqual(entries.map((e) => [e.key, text(e.value!)]), facts.map((f) => [f.key, f.value]));
});

Deno.test("a record given a partition is bundled for that partition, not its key's", () => {
  const other = (partitionForKey("global", 3) + 1) % 3;
  const out = bundleRecords(
    [{ topic: "analytics", key: "global", value: "{}", partition: other }],
    new Map([["analytics", 3]]),
  );
  assert.deepEqual(out.map((r) => r.partition), [other]);
});
