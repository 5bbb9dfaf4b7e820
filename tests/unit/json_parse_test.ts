import assert from "node:assert/strict";
import fc from "fast-check";
import { parseJson } from "../../engine/json_parse.ts";

/** What a JSON round trip makes of a JSON value, built without JSON.parse (-0 is written as 0). */
function normalised(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalised);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, entry] of Object.entries(value)) {
      Object.defineProperty(out, key, {
        value: normalised(entry),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return Object.is(value, -0) ? 0 : value;
}

/** Names made of the characters JSON escapes, a backslash first among them. */
const trickyName = fc.string({ unit: fc.constantFrom("a", "\\", '"', "\n", "\t", "u", "é", "_"), maxLength: 5 });

const trickyJson = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.jsonValue({ maxDepth: 1 }),
    fc.array(tie("value"), { maxLength: 4 }),
    tie("object"),
  ),
  object: fc.array(fc.tuple(fc.oneof(trickyName, fc.string()), tie("value")), { maxLength: 5 })
    .map((entries) => normalised(Object.fromEntries(entries))),
})).value;

Deno.test("parseJson reads an escaped name right after a shape whose next name has a backslash", () => {
  // With this V8, JSON.parse gives the second object the name `a\` (see engine/json_parse.ts).
  for (const [seen, next] of [["a\\", 'a"'], ["a\\", "a\n"], ['x\\"', 'x""'], ["\\n", "\na"]]) {
    const prefix = `shape${seen.length}${next.charCodeAt(1)}`;
    parseJson(`{"${prefix}":1,${JSON.stringify(seen)}:1}`);
    JSON.parse(`{"${prefix}":1,${JSON.stringify(seen)}:1}`);
    const parsed = parseJson(`{"${prefix}":1,${JSON.stringify(next)}:2}`) as Record<string, number>;
    assert.deepEqual(Object.keys(parsed), [prefix, next]);
    assert.equal(parsed[next], 2);
  }
});

Deno.test("parseJson gives back every JSON value as a JSON round trip should, whatever was parsed before", () => {
  fc.assert(
    fc.property(fc.array(trickyJson, { minLength: 1, maxLength: 8 }), (values) => {
      // Parse them all first, so that later texts meet the shapes earlier ones left behind.
      const texts = values.map((value) => JSON.stringify(value));
      for (const text of texts) parseJson(text);
      texts.forEach((text, i) => assert.deepEqual(parseJson(text), normalised(values[i])));
    }),
    { numRuns: 1_500 },
  );
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      assert.deepEqual(parseJson(JSON.stringify(value, null, 1)), normalised(value));
    }),
    { numRuns: 1_000 },
  );
});

Deno.test("parseJson rejects exactly what JSON.parse rejects, with JSON.parse's error", () => {
  const texts = fc.tuple(
    trickyJson,
    fc.nat(),
    fc.constantFrom("", "\\", '"', "{", "}", "[", ",", ":", "0", "-", "e", "\u0001"),
  )
    .map(([value, at, insert]) => {
      const text = JSON.stringify(value) + "\\"; // a backslash somewhere, so that the exact parser runs
      const i = at % text.length;
      return text.slice(0, i) + insert + text.slice(i + (insert === "" ? 1 : 0));
    });
  fc.assert(
    fc.property(texts, (text) => {
      let expected: unknown;
      try {
        JSON.parse(text);
      } catch (error) {
        expected = error;
      }
      if (expected === undefined) {
        assert.doesNotThrow(() => parseJson(text));
      } else {
        assert.throws(() => parseJson(text), (error: unknown) => {
          assert.ok(error instanceof SyntaxError);
          assert.equal(error.message, (expected as Error).message);
          return true;
        });
      }
    }),
    { numRuns: 3_000 },
  );
  for (const bad of ['{"a\\":1}', '["\\x"]', '{"a":1,}', '"\\', "[1]\\", '{"\\u00G0":1}', "-\\"]) {
    assert.throws(() => parseJson(bad), SyntaxError, bad);
  }
});

Deno.test("parseJson makes __proto__ an own property, as JSON.parse does", () => {
  const parsed = parseJson('{"__proto__":{"polluted":true},"k\\n":1}') as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(parsed), Object.prototype);
  assert.deepEqual(Object.keys(parsed), ["__proto__", "k\n"]);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});
