/**
 * What the image holds, checked without a Docker engine: every local module the image's commands load is copied
 * into it (a new top-level folder imported by main.ts would pass every test here and fail only in the container,
 * at start-up or at `deno cache`), its Deno is the version CI, deno.lock and README use, its dependencies are
 * installed from deno.lock in a layer of their own, and it runs as a non-root user, as README's Docker section says.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;

/** The final stage's instructions, continuation lines joined, comments dropped. */
async function instructions(): Promise<string[]> {
  const text = (await Deno.readTextFile(`${ROOT}Dockerfile`)).replaceAll("\\\n", " ");
  return text.split("\n").map((line) => line.trim()).filter((line) => line !== "" && !line.startsWith("#"));
}

/** The repository paths the COPY instructions take (flags dropped, the destination left out). */
async function copiedPaths(): Promise<string[]> {
  return (await instructions()).filter((line) => line.startsWith("COPY ")).flatMap((line) => {
    const words = line.slice("COPY ".length).trim().split(/\s+/).filter((word) => !word.startsWith("--"));
    return words.slice(0, -1).map((path) => path.replace(/^\.\//, "").replace(/\/$/, ""));
  });
}

/** Scripts the image runs: CMD's task and the RUN and HEALTHCHECK steps that name a file. */
const ENTRY_POINTS = ["main.ts", "scripts/healthcheck.ts", "scripts/pglite_template.ts"];

/** Repository paths of the local modules `entry` loads statically, as `deno info` lists them. */
async function localModules(entry: string): Promise<string[]> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const info = JSON.parse(new TextDecoder().decode(output.stdout)) as { modules: { specifier: string }[] };
  const prefix = new URL(ROOT, "file://").href;
  return info.modules.map((module) => module.specifier).filter((specifier) => specifier.startsWith(prefix))
    .map((specifier) => decodeURIComponent(specifier.slice(prefix.length)));
}

Deno.test("dockerfile: every script the image runs is one its steps name", async () => {
  const lines = (await instructions()).join("\n");
  for (const entry of ENTRY_POINTS) {
    if (entry === "main.ts") assert.match(lines, /^CMD \["deno", "task", "start"\]$/m);
    else assert.ok(lines.includes(entry), `the Dockerfile no longer runs ${entry}: update ENTRY_POINTS`);
  }
  const start = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks.start as string;
  assert.match(start, /\bmain\.ts$/, "deno task start no longer runs main.ts");
});

Deno.test("dockerfile: copies every local module main.ts, the healthcheck and the template script load", async () => {
  const copied = await copiedPaths();
  for (const entry of ENTRY_POINTS) {
    const modules = await localModules(entry);
    assert.ok(modules.includes(entry), `deno info listed no ${entry}`);
    for (const path of modules) {
      assert.ok(
        copied.some((source) => path === source || path.startsWith(`${source}/`)),
        `${entry} loads ${path}, which no COPY puts in the image (copied: ${copied.join(", ")})`,
      );
    }
  }
});

Deno.test("dockerfile: the image's Deno is the version CI installs and README's npx commands fetch", async () => {
  const dockerfile = await Deno.readTextFile(`${ROOT}Dockerfile`);
  const image = dockerfile.match(/^ARG DENO_VERSION=(\S+)$/m)?.[1];
  assert.ok(image, "the Dockerfile pins no DENO_VERSION");
  assert.match(dockerfile, /^FROM denoland\/deno:\$\{DENO_VERSION\}$/m);
  const ci = (await Deno.readTextFile(`${ROOT}.ci/run`)).match(/^DENO_VERSION=(\S+)/m)?.[1];
  assert.equal(image, ci, ".ci/run and the Dockerfile pin different Deno versions");
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const npx = [...readme.matchAll(/npx --yes deno@(\S+?)[` ]/g)].map((match) => match[1]);
  assert.ok(npx.length > 0, "README gives no npx command");
  for (const version of npx) assert.equal(version, image, "README's npx command fetches another Deno");
});

Deno.test("dockerfile: dependencies come from the lockfile in a layer before the source, and the engine runs as non-root", async () => {
  const lines = await instructions();
  const install = lines.findIndex((line) => /^RUN deno install --frozen\b/.test(line));
  assert.ok(install >= 0, "no `RUN deno install --frozen`: dependencies would resolve past deno.lock");
  const copiedBefore = lines.slice(0, install).filter((line) => line.startsWith("COPY ")).join(" ");
  for (const file of ["deno.json", "deno.lock"]) assert.match(copiedBefore, new RegExp(`\\s${file}\\s`), file);
  // The source comes after: a change to it does not download the dependencies again.
  const firstSource = lines.findIndex((line) => line.startsWith("COPY ") && /\smain\.ts\s/.test(line));
  assert.ok(firstSource > install, "main.ts is copied before the dependencies are installed");
  for (const line of lines.filter((line) => /^(RUN|HEALTHCHECK .*CMD).*\bdeno (cache|run)\b/.test(line))) {
    assert.match(line, /--frozen/, `${line} may update deno.lock`);
  }
  const users = lines.filter((line) => line.startsWith("USER ")).map((line) => line.slice("USER ".length).trim());
  const user = users.at(-1);
  assert.ok(user && !["root", "0"].includes(user.split(":")[0]), `the engine runs as ${user ?? "root"}`);
  assert.ok(
    lines.findLastIndex((line) => line.startsWith("USER ")) < lines.findIndex((line) => line.startsWith("CMD ")),
  );
});

Deno.test("dockerfile: every path it copies exists and is in the build context", async () => {
  const copied = await copiedPaths();
  assert.ok(copied.length >= 5, copied.join(", "));
  const ignored = (await Deno.readTextFile(`${ROOT}.dockerignore`)).split("\n").map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#")).map((line) =>
      line.replace(/^\.?\//, "").replace(/\/$/, "")
    );
  const wrong: string[] = [];
  for (const path of copied) {
    if (!await Deno.stat(`${ROOT}${path}`).then(() => true, () => false)) wrong.push(`${path} does not exist`);
    // A source .dockerignore leaves out fails the build ("not found"), as a missing one does.
    const excluding = ignored.find((pattern) => path === pattern || path.startsWith(`${pattern}/`));
    if (excluding) wrong.push(`${path} is left out by .dockerignore's ${excluding}`);
  }
  assert.deepEqual(wrong, []);
});
