/**
 * An exclusive lock on an embedded-mode DATA_DIR, so that two engines never open the same
 * embedded database. The lock is an advisory `flock` on `DATA_DIR/engine.lock`, taken without
 * blocking: a second engine fails at once. The kernel releases it when the holder exits, even
 * on `kill -9`, so a crashed engine never leaves a stale lock behind.
 */
import { ConfigError, DataDirInUseError } from "./errors.ts";

/** The lock file's name inside DATA_DIR. */
export const LOCK_FILE = "engine.lock";

/** A held lock; `release` is idempotent. */
export interface DataDirLock {
  /** Absolute path of the locked directory. */
  readonly dir: string;
  release(): void;
}

/**
 * Creates `dir` if needed and locks it; throws ConfigError naming DATA_DIR if it cannot be created,
 * the lock file cannot be created in it (`/proc/sys`, a read-only mount), or DataDirInUseError if another process
 * holds it.
 */
export async function lockDataDir(dir: string): Promise<DataDirLock> {
  const absolute = await Deno.realPath(await ensureDir(dir));
  const path = `${absolute}/${LOCK_FILE}`;
  let file: Deno.FsFile;
  try {
    refuseLink(path, await Deno.lstat(path).catch(() => null), absolute);
    file = await Deno.open(path, { read: true, write: true, create: true });
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(
      `Cannot create the lock file ${LOCK_FILE} in DATA_DIR: current value is ${JSON.stringify(dir)} ` +
        `(${(error as Error).message})`,
      { cause: error },
    );
  }
  let locked = false;
  try {
    // Checked again on what was opened: a link put in its place since the first check is refused before any write.
    const opened = await file.stat();
    const named = await Deno.lstat(path);
    if (named.ino !== opened.ino || named.dev !== opened.dev) throw linkError(path, absolute);
    refuseLink(path, named, absolute);
    locked = await file.tryLock(true);
  } finally {
    if (!locked) file.close();
  }
  if (!locked) {
    const holder = (await Deno.readTextFile(path).catch(() => "")).trim();
    throw new DataDirInUseError(absolute, holder || undefined);
  }
  await file.truncate(0);
  await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
  let released = false;
  return {
    dir: absolute,
    release() {
      if (released) return;
      released = true;
      file.close();
    },
  };
}

/**
 * Refuses (ConfigError) a lock file that is not a regular file of its own: one who can write DATA_DIR without being the
 * engine's user (its owner, when the engine runs as root) could link it to any file the engine can write, which the
 * lock used to truncate and write its pid in. `found` is its lstat (null: there is none yet).
 */
function refuseLink(path: string, found: Deno.FileInfo | null, dataDir: string): void {
  if (found === null || (found.isFile && (found.nlink ?? 1) === 1)) return;
  throw linkError(path, dataDir);
}

function linkError(path: string, dataDir: string): ConfigError {
  return new ConfigError(
    `Cannot lock DATA_DIR: ${LOCK_FILE} in DATA_DIR ${dataDir} is not a regular file of its own (a symbolic link, a ` +
      `hard link or a special file: someone who can write DATA_DIR made it so); delete ${path} and start again`,
  );
}

async function ensureDir(dir: string): Promise<string> {
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (error) {
    throw new ConfigError(
      `Cannot create DATA_DIR: current value is ${JSON.stringify(dir)} (${(error as Error).message})`,
      {
        cause: error,
      },
    );
  }
  return dir;
}
