/**
 * Databases populated by earlier releases, migrated to the latest schema on PGlite: every row kept, read and
 * checkpointed by the current code (tests/helpers/upgrade.ts; the same on PostgreSQL in
 * tests/integration/checkpoint_store_test.ts).
 */
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { checkUpgraded, upgradePopulated } from "../helpers/upgrade.ts";

for (const from of ["007_", "013_", "015_"]) {
  Deno.test(`a database populated at migration ${from.slice(0, 3)} migrates to the latest and keeps its rows`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "migration-upgrade-" });
    const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
    try {
      await upgradePopulated(db.sql, from);
      await checkUpgraded(db.sql, from);
    } finally {
      await db.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}
