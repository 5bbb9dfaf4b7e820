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
    file = await Deno.open(path, { read: true, write: true, create: true });
  } catch (error) {
    throw new ConfigError(
      `Cannot create the lock file ${LOCK_FILE} in DATA_DIR: current value is ${JSON.stringify(dir)} ` +
        `(${(error as Error).message})`,
      { cause: error },
    );
  }
  let locked = false;
  try {
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
