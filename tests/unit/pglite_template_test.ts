/**
 * The machine-wide PGlite template: the first empty DATA_DIR is initialised and saved as the
 * template, later ones are unpacked from it and hold a working, independent database; a damaged
 * template is replaced instead of failing start-up.
 */
import assert from "node:assert/strict";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { templatePath } from "../../engine/pglite_template.ts";

Deno.test("an empty DATA_DIR is unpacked from the template the first initialisation saved", async () => {
  const root = await Deno.makeTempDir({ prefix: "pglite-template-" });
  try {
    const templateDir = `${root}/template`;
    const path = await templatePath(templateDir);
    for (const dir of ["a", "b", "c"]) await Deno.mkdir(`${root}/${dir}`);

    const first = await openEmbeddedDatabase(`${root}/a`, { logger: silentLogger, templateDir, vacuumIntervalMs: 0 });
    assert.equal(first.fromTemplate, false);
    assert.ok((await Deno.stat(path)).size > 100_000, "the template was saved");
    await first.sql`create table only_in_a (id int)`;
    await first.close();

    const second = await openEmbeddedDatabase(`${root}/b`, { logger: silentLogger, templateDir, vacuumIntervalMs: 0 });
    assert.equal(second.fromTemplate, true);
    const [row] = await second.sql<{ answer: number; a: string | null }[]>`
      select 41 + 1 as answer, to_regclass('only_in_a')::text as a`;
    assert.deepEqual({ ...row }, { answer: 42, a: null }, "a working database without what was written to the first");
    await second.sql`create table only_in_b (id int)`;
    await second.close();

    // Reopening an initialised directory never touches the template.
    const again = await openEmbeddedDatabase(`${root}/b`, { logger: silentLogger, templateDir, vacuumIntervalMs: 0 });
    assert.equal(again.fromTemplate, false);
    const [kept] = await again.sql<{ b: string | null }[]>`select to_regclass('only_in_b')::text as b`;
    assert.equal(kept.b, "only_in_b");
    await again.close();

    await Deno.writeTextFile(path, "not a tar file");
    const third = await openEmbeddedDatabase(`${root}/c`, { logger: silentLogger, templateDir, vacuumIntervalMs: 0 });
    assert.equal(third.fromTemplate, false, "a damaged template falls back to initdb");
    const [one] = await third.sql<{ one: number }[]>`select 1 as one`;
    assert.equal(one.one, 1);
    await third.close();
    assert.ok((await Deno.stat(path)).size > 100_000, "the damaged template was replaced");

    // Cut short (a copy interrupted): unpacking writes some files before it fails, and those are cleared first.
    const whole = await Deno.readFile(path);
    await Deno.writeFile(path, whole.subarray(0, Math.floor(whole.length / 2)));
    await Deno.mkdir(`${root}/d`);
    const fourth = await openEmbeddedDatabase(`${root}/d`, { logger: silentLogger, templateDir, vacuumIntervalMs: 0 });
    assert.equal(fourth.fromTemplate, false, "a truncated template falls back to initdb");
    await fourth.sql`create table only_in_d (id int)`;
    await fourth.close();
    assert.ok((await Deno.stat(path)).size > 100_000, "the truncated template was replaced");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
