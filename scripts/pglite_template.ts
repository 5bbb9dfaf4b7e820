/**
 * Saves the machine-wide PGlite template (engine/pglite_template.ts) ahead of time, so that even the
 * first engine start on an empty DATA_DIR skips initdb. The Dockerfile runs it at build time;
 * on a development machine the first start does the same by itself.
 *
 *   deno run -A scripts/pglite_template.ts
 */
import { openEmbeddedDatabase } from "../engine/embedded_database.ts";
import { createLogger } from "../engine/logger.ts";
import { DEFAULT_TEMPLATE_DIR, readManifest, templatePath } from "../engine/pglite_template.ts";

const logger = createLogger("warn");
const dir = await Deno.makeTempDir({ prefix: "pglite-template-" });
try {
  const db = await openEmbeddedDatabase(dir, { logger, vacuumIntervalMs: 0 });
  await db.close();
  const path = await templatePath(DEFAULT_TEMPLATE_DIR);
  // Throws (exit code 1) when no whole template was saved: a build must not ship without one.
  const { files, bytes } = await readManifest(path);
  Deno.stdout.writeSync(new TextEncoder().encode(`PGlite template: ${path} (${files} files, ${bytes} bytes)\n`));
} finally {
  await Deno.remove(dir, { recursive: true });
}
