/**
 * The code's style rules that a search of the source can keep true: configuration only through
 * engine/config.ts, logs only through the logger, actor logic free of clocks, randomness and I/O,
 * and SQL text only as tagged templates (bar the migration files).
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);

/** The folders of the running engine, whose rules the tests below check. */
const ENGINE_FOLDERS = ["engine", "actors", "http", "sql"];

/** Every `.ts` file under `folder` (relative to the repository), with its text stripped of comments. */
async function sources(folder: string): Promise<{ path: string; code: string }[]> {
  const found: { path: string; code: string }[] = [];
  for await (const entry of Deno.readDir(new URL(`${folder}/`, ROOT))) {
    const path = `${folder}/${entry.name}`;
    if (entry.isDirectory) found.push(...await sources(path));
    else if (entry.name.endsWith(".ts")) {
      found.push({ path, code: withoutComments(await Deno.readTextFile(new URL(path, ROOT))) });
    }
  }
  return found;
}

/** The text without block and line comments: a doc comment may name what the code must not call. */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
}

/** The engine's files: its folders and main.ts. */
async function engineSources(): Promise<{ path: string; code: string }[]> {
  const main = { path: "main.ts", code: withoutComments(await Deno.readTextFile(new URL("main.ts", ROOT))) };
  return [...(await Promise.all(ENGINE_FOLDERS.map(sources))).flat(), main];
}

/** The paths of `files` whose code matches `pattern`, but for `allowed`. */
function offenders(files: { path: string; code: string }[], pattern: RegExp, allowed: string[] = []): string[] {
  return files.filter((f) => pattern.test(f.code) && !allowed.includes(f.path)).map((f) => f.path).sort();
}

Deno.test("only engine/config.ts reads Deno.env in the engine, its actors, HTTP layer and SQL", async () => {
  assert.deepEqual(offenders(await engineSources(), /\bDeno\.env\b/, ["engine/config.ts"]), []);
});

Deno.test("the engine, its actors, HTTP layer and SQL log through the structured logger, never console", async () => {
  assert.deepEqual(offenders(await engineSources(), /\bconsole\s*\./), []);
});

Deno.test("actor logic reads no clock, draws no random numbers and does no I/O: every effect goes through ctx", async () => {
  const effects =
    /\bDate\.now\b|\bnew Date\(\s*\)|\bperformance\.now\b|\bMath\.random\b|\bcrypto\.|\bDeno\.|\bfetch\(|\bset(Timeout|Interval)\(/;
  assert.deepEqual(offenders(await sources("actors"), effects), []);
});

Deno.test("SQL text is built only by tagged templates: `unsafe` runs the migration files and nothing else", async () => {
  assert.deepEqual(offenders(await engineSources(), /\.unsafe\(/, ["sql/migrations.ts"]), []);
});

Deno.test("actor logic imports no Node built-in: node:crypto, node:fs or node:timers would pass the search above", async () => {
  assert.deepEqual(
    offenders(await sources("actors"), /\bfrom\s*["']node:|\bimport\s*\(\s*["']node:|\brequire\s*\(/),
    [],
  );
});
