/** The faster CRC-32C gives kafkajs's checksums, and kafkajs's record batch encoder takes it. */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { crc32c } from "../../engine/kafkajs_crc32c.ts";
import { prng } from "../helpers/prng.ts";

/** kafkajs's own byte-at-a-time function (src/protocol/recordBatch/crc32C/crc32C.js), loaded from its file. */
const original: (bytes: Uint8Array) => number = createRequire(
  import.meta.resolve("kafkajs/src/protocol/encoder.js"),
)("./recordBatch/crc32C/crc32C.js");

Deno.test("crc32c() gives kafkajs's checksum for every length and alignment, and the standard check value", () => {
  assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283, "RFC 3720's CRC-32C check value");
  assert.equal(crc32c(new Uint8Array(0)), 0);
  const random = prng(11);
  const pool = Uint8Array.from({ length: 70_000 }, () => Math.floor(random() * 256));
  for (let n = 0; n < 3_000; n++) {
    const length = n < 100 ? n : Math.floor(random() ** 3 * 65_536);
    const start = Math.floor(random() * (pool.length - length));
    const bytes = pool.subarray(start, start + length); // views at every offset, as kafkajs's buffers are
    assert.equal(crc32c(bytes), original(bytes) >>> 0, `length ${length} at ${start}`);
  }
});

/** Runs, in a process of its own (kafkajs loads its encoder once per process), installFastCrc32c() before or after the encoder. */
async function install(encoderFirst: boolean): Promise<unknown> {
  const code = `
    import { createRequire } from "node:module";
    import { crc32c, installFastCrc32c, kafkajsChecksum } from "${
    import.meta.resolve("../../engine/kafkajs_crc32c.ts")
  }";
    const require = createRequire(import.meta.resolve("kafkajs/src/protocol/encoder.js"));
    const load = () => typeof require("./recordBatch/v0/index.js").RecordBatch;
    const early = ${encoderFirst} ? load() : "";
    const installed = installFastCrc32c();
    const batch = early || load();
    console.log(JSON.stringify({ installed, again: installFastCrc32c(), used: kafkajsChecksum() === crc32c, batch }));
  `;
  const { code: status, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    cwd: new URL("../..", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(status, 0, new TextDecoder().decode(stderr));
  return JSON.parse(new TextDecoder().decode(stdout));
}

Deno.test("kafkajs's record batch encoder takes crc32c() when installFastCrc32c() runs before it is loaded", async () => {
  assert.deepEqual(await install(false), { installed: true, again: true, used: true, batch: "function" });
});

Deno.test("installFastCrc32c() after the encoder was loaded says so and leaves kafkajs's own in place", async () => {
  assert.deepEqual(await install(true), { installed: false, again: false, used: false, batch: "function" });
});
