/**
 * The Docker build context leaves out what .gitignore does: local data (an embedded engine's DATA_DIR, the import
 * example's `./data-import`, growing by gigabytes), caches and logs, which no COPY needs and a legacy builder
 * (docker-compose 1.x) sends to the daemon whole at every `docker compose up --build`.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;

/** The patterns of an ignore file, comments and blank lines dropped, a trailing `/` and a leading `./` or `/` too. */
async function patterns(file: string): Promise<string[]> {
  return (await Deno.readTextFile(`${ROOT}${file}`)).split("\n").map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => line.replace(/^\.?\//, "").replace(/\/$/, ""));
}

Deno.test(".dockerignore leaves out of the build context everything .gitignore leaves out of git", async () => {
  const docker = new Set(await patterns(".dockerignore"));
  const git = await patterns(".gitignore");
  assert.ok(git.length >= 4, `.gitignore has ${git.length} patterns`);
  // A wildcard such as `*.log` matches at any depth in .gitignore, and only at the top in .dockerignore (`**/*.log`).
  const missing = git.filter((pattern) => !docker.has(pattern.includes("*") ? `**/${pattern}` : pattern));
  assert.deepEqual(missing, []);
});
