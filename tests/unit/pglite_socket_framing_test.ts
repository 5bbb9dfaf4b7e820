/**
 * A large statement sent to the embedded database is copied a bounded number of times on its way in: PGlite's socket
 * server used to append every socket read to its buffer with Buffer.concat, so a statement of S bytes arriving in
 * reads of c bytes was copied S/c times (S²/2c bytes: 626 MB for an 8 MB statement, 3.8 s instead of 0.7 s for 16 MB).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";

/** Runs `work` while counting the bytes every Buffer.concat call returns. */
async function concatenatedBytes(work: () => Promise<void>): Promise<number> {
  const original = Buffer.concat;
  let bytes = 0;
  Buffer.concat = function (list: readonly Uint8Array[], totalLength?: number) {
    const out = original.call(Buffer, list, totalLength);
    bytes += out.length;
    return out;
  } as typeof Buffer.concat;
  try {
    await work();
  } finally {
    Buffer.concat = original;
  }
  return bytes;
}

Deno.test("a 4 MiB statement reaches PGlite through its socket server with linear copying, pipelined ones in order", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "pglite-socket-framing-" });
  const db = await openEmbeddedDatabase(dataDir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    const size = 4 * 1024 * 1024;
    const big = "x".repeat(size);
    let answers: number[] = [];
    const bytes = await concatenatedBytes(async () => {
      // Small statements pipelined before and after the large one, on the one connection: each answered, in order.
      answers = await Promise.all([
        db.sql<{ n: number }[]>`select 1 as n`.then(([r]) => r.n),
        db.sql<{ n: number }[]>`select length(${big}::text) as n`.then(([r]) => r.n),
        db.sql<{ n: number }[]>`select length(${"y".repeat(70_000)}::text) as n`.then(([r]) => r.n),
        db.sql<{ n: number }[]>`select 3 as n`.then(([r]) => r.n),
      ]);
    });
    assert.deepEqual(answers, [1, size, 70_000, 3]);
    // The statement is copied a few times in all (postgres.js, the socket server), not once per socket read.
    assert.ok(bytes < 4 * size, `Buffer.concat returned ${bytes} bytes for a ${size}-byte statement`);
  } finally {
    await db.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
