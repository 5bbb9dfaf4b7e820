import assert from "node:assert/strict";
import { decodeEvent, recordJson, utf8Text } from "../../actors/decode.ts";
import { decodeProductMessage } from "../../actors/facts.ts";
import { ValidationError } from "../../engine/errors.ts";
import { ORIGIN_HEADERS } from "../../engine/dead_letter.ts";
import { prng } from "../helpers/prng.ts";

const strict = new TextDecoder("utf-8", { fatal: true });

/** The strict decoder's answer: the text, or "invalid". */
function reference(bytes: Uint8Array): string {
  try {
    return strict.decode(bytes);
  } catch {
    return "invalid";
  }
}

function answer(bytes: Uint8Array): string {
  try {
    return utf8Text(bytes);
  } catch (error) {
    assert.ok(error instanceof TypeError, String(error));
    return "invalid";
  }
}

Deno.test("utf8Text decodes exactly as a strict decoder: same text, and an error for every invalid byte sequence", () => {
  const random = prng(5);
  const pieces = ["a", '{"k":1}', "é", "€", "😀", "\uFFFD", "\uFEFF", "\u0000", "ÿ", "日本"];
  let invalid = 0;
  let replacementKept = 0;
  for (let n = 0; n < 20_000; n++) {
    let text = "";
    for (let i = Math.floor(random() * 12); i > 0; i--) text += pieces[Math.floor(random() * pieces.length)];
    const bytes = new TextEncoder().encode(text);
    // Corrupt some: a random byte, a truncated sequence, or a stray continuation or lead byte.
    if (bytes.length > 0 && random() < 0.5) {
      const at = Math.floor(random() * bytes.length);
      bytes[at] = [0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xf0, 0xff, Math.floor(random() * 256)][Math.floor(random() * 8)];
    }
    const expected = reference(bytes);
    assert.equal(answer(bytes), expected, `bytes ${[...bytes]}`);
    if (expected === "invalid") invalid++;
    else if (expected.includes("\uFFFD")) replacementKept++;
  }
  assert.ok(invalid > 1000 && replacementKept > 1000, `${invalid} invalid, ${replacementKept} with a real U+FFFD`);
});

Deno.test("recordJson names invalid UTF-8 and JSON as validation errors", () => {
  const record = (value: Uint8Array) => ({
    topic: "t",
    partition: 0,
    offset: 0,
    key: "k",
    value,
    headers: {},
    timestamp: 0,
  });
  assert.deepEqual(recordJson(record(new TextEncoder().encode('{"a":"\uFFFD"}'))), { a: "\uFFFD" });
  assert.throws(
    () => recordJson(record(new Uint8Array([0x7b, 0xff, 0x7d]))),
    (e) => e instanceof ValidationError && /not UTF-8 JSON/.test(e.message),
  );
  assert.throws(() => recordJson(record(new TextEncoder().encode("{"))), ValidationError);
});

Deno.test("recordJson reads names that differ by an escape as they were written (category revenue of facts)", () => {
  const encode = (value: unknown) => ({ value: new TextEncoder().encode(JSON.stringify(value)) });
  const facts = [
    { fact: "order", categoryRevenue: { a: 1, "tools\\": 2 } },
    { fact: "order", categoryRevenue: { a: 3, 'tools"': 4 } },
    { fact: "order", categoryRevenue: { a: 5, "tools\t": 6 } },
  ];
  for (const fact of facts) assert.deepEqual(recordJson(encode(fact) as Parameters<typeof recordJson>[0]), fact);
});

Deno.test("an event read from the log dated more than a day after its receipt is refused, naming occurredAt", () => {
  const record = (event: Record<string, unknown>, topic = "events") => ({
    topic,
    partition: 0,
    offset: 0,
    key: topic === "events" ? "u" : "p1",
    value: new TextEncoder().encode(JSON.stringify({
      eventId: "3b241101-e2bb-4255-8caf-4136c566a962",
      receivedAt: "2026-11-01T10:00:00.000Z",
      ...event,
    })),
    headers: {},
    timestamp: 0,
  });
  const view = { type: "product_viewed", userId: "u", properties: { productId: "p1" } };
  const stock = { type: "inventory_updated", properties: { productId: "p1", stock: 3 } };
  // A day ahead is taken (the most MAX_EVENT_FUTURE_MS allows at the edge)...
  assert.equal(decodeEvent(record({ ...view, occurredAt: "2026-11-02T10:00:00.000Z" })).type, "product_viewed");
  // ...2062 for 2026 is not: it moved its partition's clock decades ahead, and the minutes kept for
  // windowed history were expired before it.
  for (
    const decode of [
      () => decodeEvent(record({ ...view, occurredAt: "2062-11-01T10:00:00.000Z" })),
      () => decodeProductMessage(record({ ...stock, occurredAt: "2026-11-02T10:00:00.001Z" }, "product-events")),
    ]
  ) {
    assert.throws(decode, (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.deepEqual(error.problems.map((p) => p.path), ["occurredAt"]);
      assert.match(error.message, /occurredAt: is more than 24 h after receivedAt/);
      return true;
    });
  }
});

Deno.test("an event whose occurredAt and receivedAt are both more than a day after the record's append is refused", () => {
  const appended = Date.UTC(2026, 10, 1, 10, 0, 0);
  const record = (occurredAt: string, headers: Record<string, string> = {}) => ({
    topic: "events",
    partition: 0,
    offset: 0,
    key: "u",
    value: new TextEncoder().encode(JSON.stringify({
      eventId: "3b241101-e2bb-4255-8caf-4136c566a962",
      type: "page_viewed",
      userId: "u",
      occurredAt,
      receivedAt: occurredAt, // a producer writing straight to the log chose both
      properties: { url: "/" },
    })),
    headers,
    timestamp: appended,
  });
  assert.equal(decodeEvent(record("2026-11-02T10:00:00.000Z")).type, "page_viewed", "a day after is taken");
  assert.throws(() => decodeEvent(record("2062-11-01T10:00:00.000Z")), (error: unknown) => {
    assert.ok(error instanceof ValidationError);
    assert.deepEqual(error.problems.map((p) => p.path), ["occurredAt"]);
    assert.match(error.message, /occurredAt: is more than 24 h after the record was appended/);
    return true;
  });
  // Even with a record time forged to match: timers it arms (up to ten years of settings) would pass year 9999,
  // whose alerts PostgreSQL cannot store.
  const forged = { ...record("9999-12-31T23:45:00.000Z"), timestamp: Date.UTC(9999, 11, 31, 23, 40) };
  assert.throws(
    () => decodeEvent(forged),
    /occurredAt: is after 9990-01-02T23:59:59.999Z: timers it arms would pass year 9999/,
  );
  // A record re-injected by `dlq replay` is judged by its first append, named in its headers.
  const firstAppend = String(appended - 30 * 86_400_000);
  assert.throws(
    () => decodeEvent(record("2026-11-02T10:00:00.000Z", { [ORIGIN_HEADERS.time]: firstAppend })),
    /occurredAt: is more than 24 h after the record was appended/,
  );
});

/** A record as a service would produce it straight to the log (no HTTP edge in between). */
function produced(event: Record<string, unknown>, at: { key?: string; offset?: number; topic?: string } = {}) {
  return {
    topic: at.topic ?? "events",
    partition: 3,
    offset: at.offset ?? 41,
    key: at.key ?? String(event.userId),
    value: new TextEncoder().encode(JSON.stringify(event)),
    headers: {},
    timestamp: Date.UTC(2026, 10, 22, 11, 0, 0, 250),
  };
}

Deno.test("an event produced straight to the log gets the id and times the HTTP edge would have given it, the same on a replay", () => {
  const view = { type: "page_viewed", userId: "u1", properties: { url: "/" } };
  const event = decodeEvent(produced(view));
  assert.equal(event.receivedAt, "2026-11-22T11:00:00.250Z", "received when appended");
  assert.equal(event.occurredAt, event.receivedAt, "occurred when received, as over HTTP");
  assert.match(event.eventId, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(decodeEvent(produced(view)).eventId, event.eventId, "a replay of the record derives the same id");
  assert.notEqual(decodeEvent(produced(view, { offset: 42 })).eventId, event.eventId, "another record, another id");
  const stock = { type: "inventory_updated", properties: { productId: "p1", stock: 3 } };
  const update = decodeProductMessage(produced(stock, { key: "p1", topic: "product-events" }));
  assert.equal((update as { receivedAt: string }).receivedAt, "2026-11-22T11:00:00.250Z");
});

Deno.test("an event produced straight to the log is stored as the HTTP edge stores it: id in lower case, times in UTC", () => {
  const page = { type: "page_viewed", userId: "u1", properties: { url: "/" } };
  const cases = [
    // An id in upper case and a time with an offset; the append time for receivedAt.
    [{ eventId: "3B241101-E2BB-4255-8CAF-4136C566A962", occurredAt: "2026-11-22T12:59:30+02:00" }, "10:59:30.000Z"],
    // RFC 3339 allows a lower-case t and z.
    [{ occurredAt: "2026-11-22t10:59:30z", receivedAt: "2026-11-22t11:00:00.250z" }, "10:59:30.000Z"],
  ] as const;
  for (const [fields, occurred] of cases) {
    const event = decodeEvent(produced({ eventId: "3b241101-e2bb-4255-8caf-4136c566a962", ...page, ...fields }));
    assert.equal(event.eventId, "3b241101-e2bb-4255-8caf-4136c566a962");
    assert.equal(event.occurredAt, `2026-11-22T${occurred}`);
    assert.equal(event.receivedAt, "2026-11-22T11:00:00.250Z");
  }
});

Deno.test("an event keyed by anything but its user (or its product, for stock) is refused, naming the field", () => {
  const cases = [
    () => decodeEvent(produced({ type: "page_viewed", userId: "u1", properties: { url: "/" } }, { key: "u2" })),
    () =>
      decodeProductMessage(
        produced({ type: "inventory_updated", properties: { productId: "p1", stock: 3 } }, {
          key: "p2",
          topic: "product-events",
        }),
      ),
  ];
  for (const [i, decode] of cases.entries()) {
    assert.throws(decode, (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.deepEqual(error.problems.map((p) => p.path), [i === 0 ? "userId" : "properties.productId"]);
      assert.match(error.message, /the record's key must be the event's/);
      return true;
    });
  }
});

Deno.test("an order already in the log with a currency that is no ISO 4217 code is still handled (the HTTP edge refuses it)", () => {
  const order = {
    type: "order_completed",
    userId: "u1",
    properties: { orderId: "o1", items: [{ productId: "p1", quantity: 1, price: 5 }], total: 5, currency: "XYZ" },
  };
  const event = decodeEvent(produced(order));
  assert.equal(event.type === "order_completed" && event.properties.currency, "XYZ");
});
