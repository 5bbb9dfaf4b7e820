/**
 * A DATA_DIR whose files PGlite cannot use stops start-up with the file-system error spelled out,
 * never with PGlite's bare errno ("undefined").
 */
import assert from "node:assert/strict";
import { lockDataDir } from "../../engine/data_dir_lock.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { ConfigError, DatabaseUnavailableError } from "../../engine/errors.ts";
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

Deno.test("an initialised DATA_DIR whose pgdata is gone is refused, naming it and both remedies", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "embedded-database-" });
  try {
    // The marker says a database was made here, but its folder was deleted or not restored with it.
    await Deno.writeTextFile(`${dataDir}/pgdata.initialised`, "2026-12-05T00:00:00.000Z\n");
    const error = await openEmbeddedDatabase(dataDir, { logger: silentLogger, templateDir: null, vacuumIntervalMs: 0 })
      .then(() => undefined, (e) => e);
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(
      error.message,
      `Cannot start: DATA_DIR ${dataDir} holds pgdata.initialised but no pgdata: the embedded database that was ` +
        `initialised there was moved or deleted. Restore ${dataDir}/pgdata, or, to start with an empty database (and ` +
        `an empty log), delete ${dataDir}/pgdata.initialised too`,
    );
    assert.deepEqual([...Deno.readDirSync(dataDir)].map((e) => e.name), ["pgdata.initialised"], "nothing written");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("an initialised DATA_DIR whose pgdata holds no database is refused, not initialised afresh", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "embedded-database-" });
  try {
    // The folder is there but its files are not (emptied, or an empty volume mounted in its place): PGlite would run
    // initdb in it and the engine would start on an empty log, as if nothing had ever been accepted.
    await Deno.writeTextFile(`${dataDir}/pgdata.initialised`, "2026-12-05T00:00:00.000Z\n");
    await Deno.mkdir(`${dataDir}/pgdata`);
    const error = await openEmbeddedDatabase(dataDir, { logger: silentLogger, templateDir: null, vacuumIntervalMs: 0 })
      .then(async (db) => (await db.close(), undefined), (e) => e);
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(
      error.message,
      `Cannot start: DATA_DIR ${dataDir} holds pgdata.initialised but ${dataDir}/pgdata holds no database (no ` +
        `PG_VERSION): the files of the embedded database that was initialised there were moved or deleted. Restore ` +
        `them, or, to start with an empty database (and an empty log), delete ${dataDir}/pgdata.initialised too`,
    );
    assert.deepEqual([...Deno.readDirSync(`${dataDir}/pgdata`)], [], "nothing written");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("an interrupted first start is set aside, and only the latest of those set aside is kept", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "embedded-database-" });
  try {
    // Two earlier first starts were interrupted: one set aside by a later start, one left as pgdata.
    await Deno.mkdir(`${dataDir}/pgdata.incomplete-1`);
    await Deno.writeTextFile(`${dataDir}/pgdata.incomplete-1/PG_VERSION`, "17\n");
    await Deno.mkdir(`${dataDir}/pgdata`);
    await Deno.writeTextFile(`${dataDir}/pgdata/PG_VERSION`, "17\n");
    const db = await openEmbeddedDatabase(dataDir, { logger: silentLogger, templateDir: null, vacuumIntervalMs: 0 });
    try {
      assert.deepEqual([...await db.sql`select 1 as one`], [{ one: 1 }]);
      assert.equal(db.fromTemplate, false, "templateDir null: no template, even where the default one exists");
    } finally {
      await db.close();
    }
    const names = [];
    for await (const entry of Deno.readDir(dataDir)) names.push(entry.name);
    const asides = names.filter((name) => name.startsWith("pgdata.incomplete-"));
    assert.equal(asides.length, 1, names.join(", "));
    assert.notEqual(asides[0], "pgdata.incomplete-1");
    assert.equal(await Deno.readTextFile(`${dataDir}/${asides[0]}/PG_VERSION`), "17\n");
    assert.ok(names.includes("pgdata.initialised"));
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a DATA_DIR whose path has spaces and non-ASCII letters is locked, opened and reopened with its data", async () => {
  const base = await Deno.makeTempDir({ prefix: "embedded-database-" });
  const dataDir = `${base}/my data/dätä 日本`;
  try {
    const lock = await lockDataDir(dataDir);
    try {
      assert.equal(lock.dir, await Deno.realPath(dataDir));
      const options = { logger: silentLogger, vacuumIntervalMs: 0 };
      let db = await openEmbeddedDatabase(lock.dir, options);
      assert.equal(db.pgdata, `${lock.dir}/pgdata`);
      try {
        await db.sql`create table kept (v text)`;
        await db.sql`insert into kept values ('Grüße')`;
      } finally {
        await db.close();
      }
      db = await openEmbeddedDatabase(lock.dir, options);
      try {
        assert.deepEqual([...await db.sql`select v from kept`], [{ v: "Grüße" }], "reopened on its own files");
      } finally {
        await db.close();
      }
    } finally {
      lock.release();
    }
    assert.deepEqual(
      [...Deno.readDirSync(dataDir)].map((e) => e.name).sort(),
      ["engine.lock", "pgdata", "pgdata.initialised"],
      "everything under the path as written",
    );
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("the embedded database's client keeps its one connection for good, never replacing it on a lifetime", async () => {
  // PGlite serves every connection from its one backend: a connection postgres.js replaced (every 30–60 minutes by
  // default) left its prepared statements there (42 of them, 0.9 MB of cached plans, in an engine under a mixed load),
  // and each new one prepared them again, so that a long-running engine's PGlite memory grew by that much each time.
  const dataDir = await Deno.makeTempDir({ prefix: "embedded-database-" });
  try {
    const db = await openEmbeddedDatabase(dataDir, { logger: silentLogger, vacuumIntervalMs: 0 });
    try {
      const options = (db.sql as unknown as { options: { max: number; max_lifetime: unknown } }).options;
      assert.equal(options.max, 1);
      assert.equal(options.max_lifetime, null, "a connection is not replaced when it has lived long");
      await db.sql`select 1`;
    } finally {
      await db.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("the embedded database listens on a socket only the engine's user can reach, not on a loopback port", async () => {
  // PGlite's socket server takes no password: on 127.0.0.1 any local user could read or change the engine's state, or
  // take its one connection and lock the engine out.
  const dataDir = await Deno.makeTempDir({ prefix: "embedded-database-" });
  try {
    const db = await openEmbeddedDatabase(dataDir, { logger: silentLogger, vacuumIntervalMs: 0 });
    let socketDir: string;
    try {
      // libpq's form for a socket: no host before the database, its directory as `host` (WHATWG URL refuses it).
      const [address, query] = db.url.split("?");
      assert.equal(address, "postgres://postgres@/postgres", `a TCP address: ${db.url}`);
      socketDir = new URLSearchParams(query).get("host")!;
      assert.ok(socketDir?.startsWith("/"), db.url);
      assert.equal((await Deno.stat(socketDir)).mode! & 0o777, 0o700);
      assert.ok((await Deno.lstat(`${socketDir}/.s.PGSQL.5432`)).isSocket);
      assert.deepEqual([...await db.sql`select 1 as one`], [{ one: 1 }]);
    } finally {
      await db.close();
    }
    await assert.rejects(Deno.stat(socketDir), Deno.errors.NotFound, "the socket's directory is removed on close");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("the socket directory an engine killed before closing left is removed by the next start on its DATA_DIR", async () => {
  // A SIGKILLed engine cannot remove its socket directory: each such start used to leave one in the temp directory.
  const dataDir = await Deno.makeTempDir({ prefix: "embedded-database-" });
  const lockedDir = await Deno.makeTempDir({ prefix: "actor-engine-pg-" });
  try {
    const first = await openEmbeddedDatabase(dataDir, { logger: silentLogger, vacuumIntervalMs: 0 });
    const left = new URLSearchParams(first.url.split("?")[1]).get("host")!;
    // What SIGKILL leaves: the directory and its socket file (closing the database also removes them: copy them back).
    await first.close();
    await Deno.mkdir(left, { mode: 0o700 });
    await Deno.writeTextFile(`${left}/.s.PGSQL.5432`, "");
    await Deno.writeTextFile(`${dataDir}/socket-dir`, `${left}\n`);
    const second = await openEmbeddedDatabase(dataDir, { logger: silentLogger, vacuumIntervalMs: 0 });
    const own = new URLSearchParams(second.url.split("?")[1]).get("host")!;
    try {
      await assert.rejects(Deno.stat(left), Deno.errors.NotFound, "the killed engine's socket directory is removed");
      assert.ok((await Deno.lstat(`${own}/.s.PGSQL.5432`)).isSocket, "the new one serves");
    } finally {
      await second.close();
    }
    await assert.rejects(Deno.stat(own), Deno.errors.NotFound);

    // A recorded directory holding anything but a socket is not ours to remove, whatever its name.
    await Deno.writeTextFile(`${lockedDir}/keep.txt`, "someone's");
    await Deno.writeTextFile(`${dataDir}/socket-dir`, `${lockedDir}\n`);
    const third = await openEmbeddedDatabase(dataDir, { logger: silentLogger, vacuumIntervalMs: 0 });
    await third.close();
    assert.equal(await Deno.readTextFile(`${lockedDir}/keep.txt`), "someone's");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
    await Deno.remove(lockedDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("pgdata is reachable by the engine's user alone, new (from the template or initdb) or left open by a release before", async (t) => {
  for (const templateDir of [undefined, null]) {
    await t.step(templateDir === null ? "initdb" : "template", async () => {
      const dataDir = await Deno.makeTempDir({ prefix: "embedded-database-" });
      try {
        await Deno.chmod(dataDir, 0o755);
        const options = { logger: silentLogger, templateDir, vacuumIntervalMs: 0 };
        let db = await openEmbeddedDatabase(dataDir, options);
        await db.sql`create table kept (n int)`;
        await db.sql`insert into kept values (7)`;
        await db.close();
        assert.equal((await Deno.stat(`${dataDir}/pgdata`)).mode! & 0o777, 0o700);

        await Deno.chmod(`${dataDir}/pgdata`, 0o755);
        db = await openEmbeddedDatabase(dataDir, options);
        try {
          assert.equal((await Deno.stat(`${dataDir}/pgdata`)).mode! & 0o777, 0o700);
          assert.deepEqual([...await db.sql`select n from kept`], [{ n: 7 }]);
        } finally {
          await db.close();
        }
      } finally {
        await Deno.remove(dataDir, { recursive: true });
      }
    });
  }
});

Deno.test("a pgdata.initialised that is a symbolic link is refused, and nothing is written where it points", async () => {
  // Whoever can write DATA_DIR without being the engine's user (its owner, for an engine run as root) could otherwise
  // have the first start create a file wherever the link points, as the engine's user.
  const parent = await Deno.makeTempDir({ prefix: "embedded-database-marker-" });
  const dataDir = `${parent}/data`;
  try {
    await Deno.mkdir(dataDir);
    await Deno.symlink(`${parent}/elsewhere`, `${dataDir}/pgdata.initialised`);
    const error = await openEmbeddedDatabase(dataDir, { logger: silentLogger, vacuumIntervalMs: 0 })
      .then(async (db) => (await db.close(), undefined), (e) => e);
    assert.equal(await Deno.lstat(`${parent}/elsewhere`).catch(() => null), null, "nothing written through the link");
    assert.ok(error instanceof ConfigError, String(error));
    assert.match(error.message, /pgdata\.initialised in DATA_DIR .* is a symbolic link/);
    assert.equal(await Deno.lstat(`${dataDir}/pgdata`).catch(() => null), null, "refused before any database is made");
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});
