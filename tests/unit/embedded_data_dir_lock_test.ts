import assert from "node:assert/strict";
import { lockDataDir } from "../../engine/data_dir_lock.ts";
import { ConfigError } from "../../engine/errors.ts";

Deno.test("lockDataDir() creates DATA_DIR and refuses a second lock while the first is held", async () => {
  const parent = await Deno.makeTempDir({ prefix: "data-dir-lock-" });
  const dir = `${parent}/nested/data`;
  try {
    // Left by an engine with a longer pid: the holder's pid replaces it, it is not written over its start.
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(`${dir}/engine.lock`, "123456789012\n");
    const lock = await lockDataDir(dir);
    assert.equal(await Deno.readTextFile(`${dir}/engine.lock`), `${Deno.pid}\n`);
    assert.equal(lock.dir, await Deno.realPath(dir));
    // Descriptors open on the lock file only: other test files running beside this one (`--parallel`) open theirs.
    const lockFile = `${lock.dir}/engine.lock`;
    const openFiles = () =>
      Deno.build.os === "linux"
        ? [...Deno.readDirSync("/proc/self/fd")].filter((entry) => {
          try {
            return Deno.readLinkSync(`/proc/self/fd/${entry.name}`) === lockFile;
          } catch {
            return false; // closed meanwhile
          }
        }).length
        : 0;
    const before = openFiles();
    assert.equal(before, Deno.build.os === "linux" ? 1 : 0, "the held lock's file is open once");
    await assert.rejects(() => lockDataDir(dir), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, new RegExp(`DATA_DIR ${lock.dir} is in use by another engine \\(pid ${Deno.pid}\\)`));
      return true;
    });
    assert.equal(openFiles(), before, "a refused lock closes its file");
    lock.release();
    lock.release();
    (await lockDataDir(dir)).release();
    // Through a symbolic link: the same directory, named by its real path.
    await Deno.symlink(dir, `${parent}/link`);
    const linked = await lockDataDir(`${parent}/link`);
    assert.equal(linked.dir, lock.dir);
    await assert.rejects(() => lockDataDir(dir), ConfigError);
    linked.release();
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("lockDataDir() fails at once when another process holds the lock, and succeeds once it exits", async () => {
  const dir = await Deno.makeTempDir({ prefix: "data-dir-lock-" });
  const holder = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `
      const f = await Deno.open(${JSON.stringify(`${dir}/engine.lock`)}, { read: true, write: true, create: true });
      if (!(await f.tryLock(true))) Deno.exit(3);
      console.log("locked");
      await new Promise((resolve) => setTimeout(resolve, 30_000));`,
    ],
    stdout: "piped",
  }).spawn();
  try {
    const reader = holder.stdout.getReader();
    const { value } = await reader.read();
    assert.equal(new TextDecoder().decode(value).trim(), "locked");
    reader.releaseLock();
    const started = performance.now();
    await assert.rejects(() => lockDataDir(dir), ConfigError);
    assert.ok(performance.now() - started < 500, "fails fast instead of waiting for the lock");
    holder.kill("SIGKILL");
    await holder.status;
    (await lockDataDir(dir)).release();
  } finally {
    try {
      holder.kill("SIGKILL");
    } catch { /* already gone */ }
    await holder.stdout.cancel().catch(() => {});
    await holder.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "lockDataDir() refuses a DATA_DIR it cannot create its lock file in, naming DATA_DIR (was a raw ENOENT)",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    // procfs: the directory exists, and no file can be created in it, not even by root.
    await assert.rejects(() => lockDataDir("/proc/sys"), (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.match(
        error.message,
        /^Cannot create the lock file engine\.lock in DATA_DIR: current value is "\/proc\/sys" \(/,
      );
      return true;
    });
  },
});

Deno.test("lockDataDir() refuses an engine.lock that is a symbolic link or a hard link, and leaves its target alone", async () => {
  // Whoever can write DATA_DIR but is not the engine's user (the owner of a DATA_DIR an engine run as root opens) could
  // otherwise make the engine truncate any file it can write, and write its pid in it.
  const parent = await Deno.makeTempDir({ prefix: "data-dir-lock-link-" });
  const dir = `${parent}/data`;
  const victim = `${parent}/victim`;
  try {
    await Deno.mkdir(dir);
    await Deno.writeTextFile(victim, "not the engine's\n");
    await Deno.symlink(victim, `${dir}/engine.lock`);
    const refused = (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.match(error.message, /engine\.lock in DATA_DIR .* is not a regular file of its own/);
      return true;
    };
    await assert.rejects(() => lockDataDir(dir), refused);
    assert.equal(await Deno.readTextFile(victim), "not the engine's\n");
    // A dangling link: nothing is created where it points.
    await Deno.remove(`${dir}/engine.lock`);
    await Deno.symlink(`${parent}/created`, `${dir}/engine.lock`);
    await assert.rejects(() => lockDataDir(dir), refused);
    assert.equal(await Deno.lstat(`${parent}/created`).catch(() => null), null);
    // A hard link to another file.
    await Deno.remove(`${dir}/engine.lock`);
    await Deno.link(victim, `${dir}/engine.lock`);
    await assert.rejects(() => lockDataDir(dir), refused);
    assert.equal(await Deno.readTextFile(victim), "not the engine's\n");
    // A regular file of its own is taken as before.
    await Deno.remove(`${dir}/engine.lock`);
    (await lockDataDir(dir)).release();
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});
