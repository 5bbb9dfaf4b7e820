import assert from "node:assert/strict";
import { recordBytes, utf8Bytes } from "../../engine/kafka_producer.ts";

Deno.test("utf8Bytes() and recordBytes() count what TextEncoder writes: keys, values and headers", () => {
  const encoder = new TextEncoder();
  const samples = ["", "ascii", "é", "€", "😀", "a\ud800b", "\udc00", "x\ud83d", "日本語", "€".repeat(150)];
  // The bounds of each UTF-8 length: U+0080 takes 2 bytes, U+07FF 2, U+0800 3, U+FFFF 3.
  samples.push("a\u0080", "\u007f\u0080", "\u07ff", "\u0800", "\uffff", "\u00ff\u0100");
  for (const text of samples) assert.equal(utf8Bytes(text), encoder.encode(text).byteLength, JSON.stringify(text));
  const record = { topic: "t", key: "clé", value: "😀 ok", headers: { "dlq-error-message": "naïve", h: "" } };
  const expected = ["clé", "😀 ok", "dlq-error-message", "naïve", "h", ""].reduce(
    (n, t) => n + encoder.encode(t).byteLength,
    0,
  );
  assert.equal(recordBytes([record, { topic: "t", key: "", value: new Uint8Array(7) }]), expected + 7);
});
