/**
 * The patched postgres.js (vendor/postgres) is loaded in place, not copied into node_modules: with deno.json's
 * `links`, every deno process of the project removed and re-linked the package as it started, so processes
 * started together could find it half-written ("Unable to load .../postgres/src/connection.js": an engine of
 * the three started at once in routing_test failed this way in CI).
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;
const LOAD_POSTGRES = `const { default: postgres } = await import("postgres");
console.log(JSON.stringify({ url: import.meta.resolve("postgres"), type: typeof postgres }));`;

/** Runs a script that loads postgres.js the way the engine does (the project's import map); its answer. */
async function loadPostgresInProcess(): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", LOAD_POSTGRES],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const decoder = new TextDecoder();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

/** Modification times of the package folders under node_modules/.deno (a package re-linked changes its folder's). */
async function packageFolderTimes(): Promise<Map<string, number | null>> {
  const times = new Map<string, number | null>();
  async function walk(path: string, depth: number): Promise<void> {
    if (depth > 3) return;
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(path)];
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    for (const entry of entries) {
      if (!entry.isDirectory) continue;
      const child = `${path}/${entry.name}`;
      times.set(child, (await Deno.stat(child)).mtime?.getTime() ?? null);
      await walk(child, depth + 1);
    }
  }
  await walk(`${ROOT}node_modules/.deno`, 1);
  return times;
}

Deno.test("postgres.js: the patched copy in vendor/ is what the project loads", async () => {
  const { code, stdout, stderr } = await loadPostgresInProcess();
  assert.equal(code, 0, stderr);
  const answer = JSON.parse(stdout);
  assert.equal(answer.url, new URL("vendor/postgres/src/index.js", `file://${ROOT}`).href);
  assert.equal(answer.type, "function");
});

Deno.test("postgres.js: starting a process of the project re-writes nothing under node_modules", async () => {
  const first = await loadPostgresInProcess(); // sets node_modules up if this checkout has not yet
  assert.equal(first.code, 0, first.stderr);
  const before = await packageFolderTimes();
  const again = await loadPostgresInProcess();
  assert.equal(again.code, 0, again.stderr);
  const after = await packageFolderTimes();
  const changed = [...after].filter(([path, time]) => before.get(path) !== time).map(([path]) => path);
  assert.deepEqual(changed, []);
});

Deno.test("postgres.js: six processes of the project started at once all load it", async () => {
  const results = await Promise.all(Array.from({ length: 6 }, () => loadPostgresInProcess()));
  for (const { code, stderr } of results) assert.equal(code, 0, stderr);
});
