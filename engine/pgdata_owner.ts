/**
 * PostgreSQL's rule for its data directory, which PGlite does not enforce: its files belong to the user that runs it.
 * An engine run as root on another user's DATA_DIR (`sudo deno task start`) used to open it and leave root-owned files
 * in it, after which the owner's engine could not open the database ("Aborted()"); one run as a user without the
 * rights failed with "PGlite failed to initialize properly". Both now stop with the owner and the remedy.
 */
import { ConfigError } from "./errors.ts";

/** Refuses (ConfigError) an existing `pgdata` under `dataDir` whose directory belongs to another user than `uid`. */
export async function checkPgdataOwner(dataDir: string, pgdata: string, uid = Deno.uid()): Promise<void> {
  const owner = (await Deno.stat(pgdata)).uid;
  if (uid === null || owner === null || owner === uid) return;
  throw new ConfigError(
    `Cannot start: the embedded database in DATA_DIR ${dataDir} belongs to user id ${owner} (${pgdata}), and the ` +
      `engine runs as user id ${uid}: PostgreSQL's files must belong to the user that runs it. Run the engine as user ` +
      `id ${owner}, or give DATA_DIR to this one (chown -R ${uid} ${dataDir})`,
  );
}

/**
 * After PGlite failed to open `pgdata`: a ConfigError naming the first file in it that belongs to another user than
 * `uid` (this process's; left by an engine run as that user), or null when every file is that user's.
 */
export async function foreignFileError(dataDir: string, pgdata: string, uid = Deno.uid()): Promise<ConfigError | null> {
  if (uid === null) return null;
  const found = await firstForeign(pgdata, uid);
  if (!found) return null;
  return new ConfigError(
    `Cannot start: ${found.path} in the embedded database of DATA_DIR ${dataDir} belongs to user id ${found.owner}, ` +
      `and the engine runs as user id ${uid} (an engine run as that user wrote it): PostgreSQL's files must belong to ` +
      `the user that runs it. Give DATA_DIR back to this one (chown -R ${uid} ${dataDir})`,
  );
}

async function firstForeign(dir: string, uid: number): Promise<{ path: string; owner: number } | null> {
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    const owner = (await Deno.lstat(path)).uid;
    if (owner !== null && owner !== uid) return { path, owner };
    if (entry.isDirectory) {
      const inner = await firstForeign(path, uid);
      if (inner) return inner;
    }
  }
  return null;
}
