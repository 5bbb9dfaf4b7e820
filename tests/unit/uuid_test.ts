import assert from "node:assert/strict";
import { uuidv7 } from "../../engine/uuid.ts";

Deno.test("uuidv7() has version 7, the RFC variant, and the timestamp in its first 48 bits", () => {
  const at = Date.UTC(2026, 10, 22, 12, 0, 0, 123);
  const id = uuidv7(at);
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(parseInt(id.replaceAll("-", "").slice(0, 12), 16), at);
});

Deno.test("uuidv7() ids sort by creation time and do not repeat", () => {
  const ids = Array.from({ length: 1000 }, (_, i) => uuidv7(1_700_000_000_000 + i));
  assert.deepEqual([...ids].sort(), ids);
  assert.equal(new Set(Array.from({ length: 10_000 }, () => uuidv7(1))).size, 10_000);
});
