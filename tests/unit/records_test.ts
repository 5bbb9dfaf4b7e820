import assert from "node:assert/strict";
import { addTo, get, put, withEntry } from "../../actors/records.ts";
import { parseJson } from "../../engine/json_parse.ts";

const AWKWARD_KEYS = ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", "prototype", "", "sku-1"];

Deno.test("put() makes every key an own, enumerable entry, without touching the prototype", () => {
  const record: Record<string, number> = {};
  AWKWARD_KEYS.forEach((key, i) => put(record, key, i));
  assert.equal(Object.getPrototypeOf(record), Object.prototype, "the prototype is unchanged");
  assert.deepEqual(Object.keys(record), AWKWARD_KEYS, "in insertion order");
  for (const [i, key] of AWKWARD_KEYS.entries()) {
    assert.ok(Object.hasOwn(record, key), key);
    assert.equal(get(record, key), i, key);
  }
  assert.deepEqual(parseJson(JSON.stringify(record)), Object.fromEntries(AWKWARD_KEYS.map((k, i) => [k, i])));
  assert.equal(({} as Record<string, unknown>).toString, Object.prototype.toString, "Object.prototype is untouched");
});

Deno.test("get() reads own entries only; withEntry() copies; addTo() adds in place", () => {
  const record: Record<string, number> = { a: 1 };
  for (const key of AWKWARD_KEYS.filter((k) => k !== "sku-1")) assert.equal(get(record, key), undefined, key);
  const next = withEntry(record, "__proto__", 2);
  assert.deepEqual(record, { a: 1 }, "the original is unchanged");
  assert.equal(get(next, "__proto__"), 2);
  assert.equal(Object.getPrototypeOf(next), Object.prototype);
  addTo(next, "__proto__", 3);
  addTo(next, "constructor", 4);
  addTo(next, "constructor", 1);
  assert.deepEqual(parseJson(JSON.stringify(next)), { a: 1, ["__proto__"]: 5, constructor: 5 });
});
