import assert from "node:assert/strict";
import fc from "fast-check";
import { KEY_TABLE_LIMIT, StatePacker } from "../../engine/state_packer.ts";
import { fold } from "../helpers/fold.ts";
import { uuidv7 } from "../../engine/uuid.ts";
import { parseJson } from "../../engine/json_parse.ts";

const viaJson = (value: unknown) => parseJson(JSON.stringify(value));

Deno.test("unpack(pack(x)) is x as a JSON round trip gives it back, for arbitrary JSON values", () => {
  const packer = new StatePacker();
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      assert.deepEqual(packer.unpack(packer.pack(value)), viaJson(value));
    }),
    { numRuns: 2_000 },
  );
});

Deno.test("the packer keeps the strings it gives special encodings exactly, and near misses as they are", () => {
  const packer = new StatePacker();
  const strings = fc.oneof(
    fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
    fc.uuid(),
    fc.uuid().map((u) => u.toUpperCase()),
    fc.string({ unit: "binary" }),
    fc.constantFrom("2026-13-01T00:00:00.000Z", "2026-11-01T00:00:00.000+00:00", "1969-12-31T23:59:59.999Z", "ab"),
  );
  fc.assert(
    fc.property(fc.array(strings), fc.array(strings), (a, b) => {
      const value = { a, b, again: [...a, ...b], object: Object.fromEntries(a.map((s, i) => [s, b[i] ?? null])) };
      assert.deepEqual(packer.unpack(packer.pack(value)), viaJson(value));
    }),
    { numRuns: 1_000 },
  );
  // Shaped like timestamps, but Date.parse rolls them over (Feb 30 is Mar 2) or rejects them: kept as text.
  for (const s of ["2026-02-30T00:00:00.000Z", "2026-04-31T12:00:00.000Z", "2026-13-01T00:00:00.000Z"]) {
    assert.equal(packer.unpack(packer.pack(s)), s);
  }
});

Deno.test("the packer follows JSON for what JSON drops or changes", () => {
  const packer = new StatePacker();
  const value = {
    gone: undefined,
    fn: () => 1,
    list: [undefined, () => 1, NaN, Infinity, -0, 1e300, -5, 2 ** 53, 0.1],
    date: new Date(Date.UTC(2026, 10, 1)),
    nested: { toJSON: () => ({ replaced: true }) },
    dropped: { toJSON: () => undefined },
    once: { toJSON: () => ({ toJSON: () => "twice" }) },
    keyed: { toJSON: (key: string) => `as ${key}` },
    boxed: [new String("ab"), new Number(3), new Boolean(false)],
    ["__proto__"]: 1,
  };
  const json = viaJson(value);
  const unpacked = packer.unpack(packer.pack(value)) as Record<string, unknown>;
  assert.deepEqual(unpacked, json);
  assert.equal(Object.getPrototypeOf(unpacked), Object.prototype);
  assert.equal(packer.unpack(packer.pack(undefined)), null);
  assert.throws(() => packer.pack({ n: 1n }), TypeError);
});

Deno.test("a corrupted packed string fails to unpack instead of looping or inventing values", () => {
  const packer = new StatePacker();
  const packed = packer.pack({ id: "0190b2a0-0000-7000-8000-000000000000", at: "2026-11-01T00:00:00.000Z", n: 1e15 });
  for (let cut = 1; cut < packed.length; cut++) assert.throws(() => packer.unpack(packed.slice(0, cut)), /corrupt/);
  assert.throws(() => packer.unpack(String.fromCharCode(0x08, 0x05)), /back-reference/);
});

Deno.test("the shared key table is bounded; keys beyond it are spelled out and still read back", () => {
  const packer = new StatePacker();
  const wide = Object.fromEntries(Array.from({ length: KEY_TABLE_LIMIT + 100 }, (_, i) => [`key-${i}`, i]));
  assert.deepEqual(packer.unpack(packer.pack(wide)), wide);
  assert.equal(packer.keyCount, KEY_TABLE_LIMIT);
  const later = { "key-5": 1, "never-seen": 2 };
  assert.deepEqual(packer.unpack(packer.pack(later)), later);
  assert.equal(packer.keyCount, KEY_TABLE_LIMIT);
});

Deno.test("a user state of ten product views packs to under a third of its JSON", async () => {
  const base = Date.UTC(2026, 10, 1);
  const events = Array.from({ length: 200 }, (_, i) => ({
    eventId: uuidv7(base + i),
    type: "product_viewed",
    userId: `user-${i % 20}`,
    occurredAt: new Date(base + i * 1_000).toISOString(),
    properties: { productId: `sku-${(i * 7919) % 50}`, price: 19.99, category: "shoes" },
  }));
  const result = await fold(events);
  const packer = new StatePacker();
  for (const userId of result.users.keys()) {
    const persisted = result.persisted("user", userId);
    const packed = packer.pack(persisted);
    assert.deepEqual(packer.unpack(packed), viaJson(persisted));
    assert.ok(
      packed.length * 3 < JSON.stringify(persisted).length,
      `${packed.length} vs ${JSON.stringify(persisted).length}`,
    );
  }
});

Deno.test("an unpacked __proto__ key is an ordinary own property, as JSON.parse makes it: it can be changed and deleted", () => {
  const packer = new StatePacker();
  const unpacked = packer.unpack(packer.pack(parseJson('{"__proto__":"abc","a":1}'))) as Record<string, unknown>;
  assert.deepEqual(
    Object.getOwnPropertyDescriptor(unpacked, "__proto__"),
    Object.getOwnPropertyDescriptor(JSON.parse('{"__proto__":"abc"}'), "__proto__"),
  );
  // It was not configurable: redefining it threw "Cannot redefine property", and so did delete.
  Object.defineProperty(unpacked, "__proto__", { value: "changed" });
  assert.equal(delete unpacked["__proto__"], true);
  assert.deepEqual(Object.keys(unpacked), ["a"]);
});

Deno.test("edge values come back exactly: text in every UTF-16 range, empty strings, number extremes, -0, Maps and nested arrays", () => {
  const packer = new StatePacker();
  const texts = [
    "",
    "ascii",
    "caf\u00e9 \u00ff", // Latin-1 beyond ASCII
    "\u0100\u0142\u00f3d\u017a", // Latin Extended: Łódź
    "\u041f\u0440\u0438\u0432\u0435\u0442", // Cyrillic
    "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627", // Hebrew, Arabic
    "\u4e2d\u6587 \u65e5\u672c\u8a9e \ud55c\uad6d\uc5b4", // CJK, Hangul
    "\ud83d\uded2 \ud83d\udc5f\ud83c\udffd", // emoji: surrogate pairs, a modifier
    "\ud800 lone \udfff", // unpaired surrogates
    '\u0001\u0000\t\n"\\', // control characters, quote, backslash
    "\uffff\ufeff",
  ];
  const value = {
    texts,
    again: texts, // the second time as back-references
    keyed: Object.fromEntries(texts.map((t, i) => [t, i])),
    numbers: [
      0,
      -0,
      1,
      -1,
      0xef,
      0xf0,
      127,
      128,
      2 ** 31,
      -(2 ** 31) - 1,
      Number.MAX_SAFE_INTEGER,
      Number.MIN_SAFE_INTEGER,
      2 ** 53,
      -(2 ** 53) - 2,
      1e21,
      Number.MAX_VALUE,
      -Number.MAX_VALUE,
      Number.MIN_VALUE,
      0.1 + 0.2,
      -1.5e-300,
    ],
    map: new Map([["a", 1]]),
    set: new Set([1]),
    nested: [[], [[]], [[1, [2, ["three", [null, [true, [false]]]]]]], [{}], [{ a: [{ b: [] }] }]],
  };
  const unpacked = packer.unpack(packer.pack(value)) as typeof value;
  assert.deepEqual(unpacked, viaJson(value));
  assert.ok(Object.is(unpacked.numbers[1], 0), "JSON writes -0 as 0");
  assert.deepEqual(unpacked.texts, texts);
  assert.equal(packer.unpack(packer.pack("")), "");
});
