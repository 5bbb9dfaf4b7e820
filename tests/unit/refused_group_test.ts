/**
 * A start-up refused for a GROUP_ID that does not own DATA_DIR's state (a typo) must leave nothing of that group
 * behind: a group registered on the consumed topics holds their records from embedded log retention until its rows
 * are deleted (README, "Retention"), so a refused start used to stop the log from being trimmed, for good.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../engine/config.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { startEngine } from "../../engine/engine.ts";
import { ConfigError } from "../../engine/errors.ts";
import { silentLogger } from "../../engine/logger.ts";

Deno.test("an engine refused for another GROUP_ID registers no consumer group that would hold the log from retention", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "refused-group-" });
  try {
    const env = { DATA_DIR: dataDir, HOST: "127.0.0.1", PORT: "0" };
    const owner = await startEngine(parseConfig({ ...env, GROUP_ID: "shop" }), silentLogger);
    await owner.stop();
    await assert.rejects(
      startEngine(parseConfig({ ...env, GROUP_ID: "shpo" }), silentLogger),
      (error) => error instanceof ConfigError && /Cannot start with GROUP_ID="shpo"/.test(error.message),
    );
    const db = await openEmbeddedDatabase(dataDir, { logger: silentLogger, vacuumIntervalMs: 0 });
    try {
      const groups = await db.sql<{ group_id: string }[]>`
        select distinct group_id from embedded_log_group_offsets order by group_id`;
      assert.deepEqual(groups.map((g) => g.group_id), ["shop"], "only the group that owns the state holds the log");
    } finally {
      await db.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
