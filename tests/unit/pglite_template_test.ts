/**
 * The machine-wide PGlite template: the first empty DATA_DIR is initialised and saved as the
 * template (a data directory), later ones are copied from it and hold a working, independent database;
 * a damaged or incomplete template is replaced instead of failing start-up.
 */
import assert from "node:assert/strict";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { copyTemplate, readManifest, saveTemplate, templatePath } from "../../engine/pglite_template.ts";

const open = (dataDir: string, templateDir: string) =>
  openEmbeddedDatabase(dataDir, { logger: silentLogger, templateDir, vacuumIntervalMs: 0 });

/** Files under `dir`, relative to it. */
async function filesUnder(dir: string, prefix = ""): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(`${dir}/${prefix}`)) {
    const name = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory) found.push(...await filesUnder(dir, name));
    else found.push(name);
  }
  return found;
}

/** Whether `path` exists. */
async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("an empty DATA_DIR is copied from the template the first initialisation saved", async () => {
  const root = await Deno.makeTempDir({ prefix: "pglite-template-" });
  try {
    const templateDir = `${root}/template`;
    const path = await templatePath(templateDir);
    for (const dir of ["a", "b"]) await Deno.mkdir(`${root}/${dir}`);
    // A template saved by an earlier version, a gzipped tarball beside it: never read, removed when one is saved.
    await Deno.mkdir(templateDir);
    await Deno.writeTextFile(`${path}.tar.gz`, "an old template");

    const first = await open(`${root}/a`, templateDir);
    assert.equal(first.fromTemplate, false);
    assert.ok((await Deno.stat(`${path}/PG_VERSION`)).isFile, "the template was saved as a data directory");
    const manifest = await readManifest(path);
    assert.ok(manifest.files > 500 && manifest.bytes > 10_000_000, JSON.stringify(manifest));
    assert.equal(await exists(`${path}.tar.gz`), false, "the old tarball was removed");
    for (const name of await filesUnder(path)) {
      assert.equal((await Deno.stat(`${path}/${name}`)).mode! & 0o022, 0, `${name} is writable by its owner only`);
    }
    await first.sql`create table only_in_a (id int)`;
    await first.close();

    const second = await open(`${root}/b`, templateDir);
    assert.equal(second.fromTemplate, true);
    const [row] = await second.sql<{ answer: number; a: string | null }[]>`
      select 41 + 1 as answer, to_regclass('only_in_a')::text as a`;
    assert.deepEqual({ ...row }, { answer: 42, a: null }, "a working database without what was written to the first");
    await second.sql`create table only_in_b (id int)`;
    await second.close();
    assert.deepEqual(
      (await filesUnder(`${root}/b/pgdata`)).filter((name) => name.startsWith("pglite-template")),
      [],
      "the template's manifest is not copied into a database",
    );
    assert.equal(await exists(`${root}/b/pgdata.copying`), false, "the copy was renamed into place");

    // Reopening an initialised directory never touches the template.
    const again = await open(`${root}/b`, templateDir);
    assert.equal(again.fromTemplate, false);
    const [kept] = await again.sql<{ b: string | null }[]>`select to_regclass('only_in_b')::text as b`;
    assert.equal(kept.b, "only_in_b");
    await again.close();
    assert.equal(await exists(`${path}/base`), true);
    const [tableInTemplate] = await filesUnder(path).then((names) => names.filter((name) => name.includes("only_in")));
    assert.equal(tableInTemplate, undefined, "nothing written to a database reaches the template");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a damaged or incomplete template is deleted, and that start initialises from scratch and saves a new one", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "pglite-template-" });
  try {
    const templateDir = `${root}/template`;
    const path = await templatePath(templateDir);
    await Deno.mkdir(`${root}/first`);
    await (await open(`${root}/first`, templateDir)).close();
    const saved = await readManifest(path);
    // A whole data directory like the template, to put the template back after each damage without an initdb.
    assert.equal(await copyTemplate(path, `${root}/pristine`, `${root}/pristine.copying`, silentLogger), true);
    const onlyTheTemplate = async () => {
      const left = (await Array.fromAsync(Deno.readDir(templateDir))).map((entry) => entry.name);
      assert.deepEqual(left, [path.slice(path.lastIndexOf("/") + 1)], "no temporary or damaged copies left");
    };

    /** Damages the template, then starts on a new DATA_DIR, which must initialise and replace it (an initdb: ~5 s). */
    const startsAfter = async (name: string, damage: () => Promise<void>) => {
      await t.step(`${name}: the start initialises, the next copies the new template`, async () => {
        await damage();
        await Deno.mkdir(`${root}/${name}`);
        const db = await open(`${root}/${name}`, templateDir);
        try {
          assert.equal(db.fromTemplate, false, "the damaged template was not used");
          await db.sql`create table mine (id int)`;
          const [one] = await db.sql<{ one: number }[]>`select count(*)::int + 1 as one from mine`;
          assert.equal(one.one, 1);
        } finally {
          await db.close();
        }
        assert.deepEqual(await readManifest(path), saved, "a whole template was saved in its place");
        await onlyTheTemplate();
        assert.equal(await exists(`${root}/${name}/pgdata.copying`), false);
        // The replacement is used by the next start.
        await Deno.mkdir(`${root}/${name}-next`);
        const next = await open(`${root}/${name}-next`, templateDir);
        assert.equal(next.fromTemplate, true);
        await next.close();
      });
    };
    /** Damages the template, then copies it as a start would: refused and deleted, nothing left at the target. */
    const refusedAfter = async (name: string, damage: () => Promise<void>) => {
      await t.step(`${name}: the copy is refused and the template deleted`, async () => {
        await damage();
        const target = `${root}/${name}/pgdata`;
        await Deno.mkdir(`${root}/${name}`);
        assert.equal(await copyTemplate(path, target, `${target}.copying`, silentLogger), false);
        assert.equal(await exists(path), false, "the damaged template was deleted");
        assert.deepEqual(await Array.fromAsync(Deno.readDir(`${root}/${name}`)), [], "nothing left in DATA_DIR");
        await saveTemplate(`${root}/pristine`, path, silentLogger);
        assert.deepEqual(await readManifest(path), saved);
        await onlyTheTemplate();
      });
    };

    await refusedAfter("no-pg-version", () => Deno.remove(`${path}/PG_VERSION`));
    await refusedAfter("no-manifest", () => Deno.remove(`${path}/pglite-template.json`));
    await refusedAfter("bad-manifest", () => Deno.writeTextFile(`${path}/pglite-template.json`, "not json"));
    // Cut short (a `cp -r` of .cache interrupted): files missing that PGlite opens without (template1's, base/1), and
    // that `create database` would only miss later.
    const filesMissing = async () => {
      for (const name of await filesUnder(path, "base/1")) await Deno.remove(`${path}/${name}`);
    };
    await refusedAfter("files-missing", filesMissing);
    await refusedAfter("file-cut-short", async () => {
      const [biggest] = (await Promise.all(
        (await filesUnder(path)).map(async (name) => ({ name, size: (await Deno.stat(`${path}/${name}`)).size })),
      )).sort((a, b) => b.size - a.size);
      await Deno.truncate(`${path}/${biggest.name}`, Math.floor(biggest.size / 2));
    });
    // A copy that fails: the template holds something that is neither a file nor a directory.
    await refusedAfter("copy-fails", () => Deno.symlink("/nonexistent", `${path}/base/dangling`));
    // Through a start, a refused copy and a copy PGlite cannot open (its control file garbage of the same size, whole
    // by its counts).
    await startsAfter("files-missing-start", filesMissing);
    await startsAfter("pglite-refuses", async () => {
      const control = `${path}/global/pg_control`;
      await Deno.writeFile(control, new Uint8Array((await Deno.stat(control)).size).fill(7));
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a copy of the template an interrupted start left in DATA_DIR is deleted, not taken for a database", async () => {
  const root = await Deno.makeTempDir({ prefix: "pglite-template-" });
  try {
    const templateDir = `${root}/template`;
    await Deno.mkdir(`${root}/first`);
    await (await open(`${root}/first`, templateDir)).close();
    await Deno.mkdir(`${root}/data/pgdata.copying/base`, { recursive: true });
    await Deno.writeTextFile(`${root}/data/pgdata.copying/PG_VERSION`, "17\n");
    const db = await open(`${root}/data`, templateDir);
    try {
      assert.equal(db.fromTemplate, true);
      const [one] = await db.sql<{ one: number }[]>`select 1 as one`;
      assert.equal(one.one, 1);
    } finally {
      await db.close();
    }
    assert.equal(await exists(`${root}/data/pgdata.copying`), false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("when two processes save the template at once, the second keeps the first's and drops its own", async () => {
  const root = await Deno.makeTempDir({ prefix: "pglite-template-" });
  try {
    const templateDir = `${root}/template`;
    const path = await templatePath(templateDir);
    await Deno.mkdir(`${root}/data`);
    await (await open(`${root}/data`, templateDir)).close();
    const firstSaved = (await Deno.stat(`${path}/pglite-template.json`)).mtime;
    await saveTemplate(`${root}/data/pgdata`, path, silentLogger);
    assert.deepEqual((await Deno.stat(`${path}/pglite-template.json`)).mtime, firstSaved, "the first one is kept");
    const names = (await Array.fromAsync(Deno.readDir(templateDir))).map((entry) => entry.name);
    assert.deepEqual(names, [path.slice(path.lastIndexOf("/") + 1)], "ours was dropped, not left beside it");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
