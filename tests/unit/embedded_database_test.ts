/**
 * A DATA_DIR whose files PGlite cannot use stops start-up with the file-system error spelled out,
 * never with PGlite's bare errno ("undefined").
 */
import assert from "node:assert/strict";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { DatabaseUnavailableError } from "../../engine/errors.ts";
import { silentLogger } from "../../engine/logger.ts";

Deno.test("a pgdata that is a file, not a directory, is named with the error PGlite met", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "embedded-database-" });
  try {
    // An initialised DATA_DIR whose pgdata was replaced by a regular file (a bad copy or restore).
    await Deno.writeTextFile(`${dataDir}/pgdata`, "not a directory\n");
    await Deno.writeTextFile(`${dataDir}/pgdata.initialised`, "2026-12-05T00:00:00.000Z\n");
    const error = await openEmbeddedDatabase(dataDir, { logger: silentLogger, templateDir: null, vacuumIntervalMs: 0 })
      .then(() => undefined, (e) => e);
    assert.ok(error instanceof DatabaseUnavailableError, String(error));
    assert.doesNotMatch(error.message, /undefined/);
    assert.equal(
      error.message,
      `Cannot open the embedded database in ${dataDir}/pgdata: not a directory (ENOTDIR, a file-system error)`,
    );
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
