import assert from "node:assert/strict";
import { ConfigError } from "../../engine/errors.ts";
import { checkPgdataOwner, foreignFileError } from "../../engine/pgdata_owner.ts";

/** The files are this process's; the engine is said to run as the next user id, as `sudo` or another account would. */
const OWNER = Deno.uid()!;
const ENGINE_UID = OWNER + 1;

Deno.test("a database whose directory is this user's passes; one run as another user is refused, naming both", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "pgdata-owner-" });
  const pgdata = `${dataDir}/pgdata`;
  try {
    await Deno.mkdir(pgdata);
    await checkPgdataOwner(dataDir, pgdata, OWNER);
    await assert.rejects(checkPgdataOwner(dataDir, pgdata, ENGINE_UID), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(
        error.message,
        `Cannot start: the embedded database in DATA_DIR ${dataDir} belongs to user id ${OWNER} (${pgdata}), and ` +
          `the engine runs as user id ${ENGINE_UID}: PostgreSQL's files must belong to the user that runs it. Run ` +
          `the engine as user id ${OWNER}, or give DATA_DIR to this one (chown -R ${ENGINE_UID} ${dataDir})`,
      );
      return true;
    });
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("after PGlite failed, the first file or folder of the database that belongs to another user is named with the remedy", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "pgdata-owner-" });
  const pgdata = `${dataDir}/pgdata`;
  try {
    await Deno.mkdir(`${pgdata}/base/5`, { recursive: true });
    await Deno.writeTextFile(`${pgdata}/base/5/1259`, "");
    assert.equal(await foreignFileError(dataDir, pgdata, OWNER), null, "every file is this user's");
    const error = await foreignFileError(dataDir, pgdata, ENGINE_UID);
    assert.ok(error instanceof ConfigError);
    assert.match(
      error.message,
      new RegExp(
        `^Cannot start: ${pgdata}/base(/5(/1259)?)? in the embedded database of DATA_DIR ${dataDir} belongs to user ` +
          `id ${OWNER}, and the engine runs as user id ${ENGINE_UID} \\(an engine run as that user wrote it\\)`,
      ),
    );
    assert.match(error.message, new RegExp(`Give DATA_DIR back to this one \\(chown -R ${ENGINE_UID} ${dataDir}\\)$`));
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
