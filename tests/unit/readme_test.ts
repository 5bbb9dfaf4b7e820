import assert from "node:assert/strict";
import { parseConfig, SETTING_NAMES } from "../../engine/config.ts";
import { ConfigError } from "../../engine/errors.ts";
import { Metrics } from "../../engine/metrics.ts";
import { BASE, FIXTURE_NOW, httpFixture, postEvents } from "./http_fixture.ts";

const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));

/** The configuration tables' rows: variable → its default and allowed cells, as written. */
function configRows(): Map<string, { shown: string; allowed: string }> {
  const rows = new Map<string, { shown: string; allowed: string }>();
  for (const row of readme.matchAll(/^\|\s*`([A-Z][A-Z0-9_]+)`\s*\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|/gm)) {
    assert.ok(!rows.has(row[1]), `${row[1]} has one row`);
    rows.set(row[1], { shown: row[2], allowed: row[3] });
  }
  return rows;
}

/** Whether the configuration takes `value` for `name` by that setting's own rule (rules between settings aside). */
function takes(name: string, value: string): boolean {
  try {
    parseConfig({ [name]: value });
    return true;
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    // A setting refused by its own rule is reported as NAME="value": why; conflicts between settings are not.
    return !error.message.includes(`${name}=${JSON.stringify(value)}:`);
  }
}

Deno.test("README documents every configuration setting in a table row", () => {
  const missing = SETTING_NAMES.filter((name) => !new RegExp(`^\\|\\s*\`${name}\`\\s*\\|`, "m").test(readme));
  assert.deepEqual(missing, []);
});

Deno.test("every row of README's configuration tables is a setting engine/config.ts reads", () => {
  const known = new Set<string>(SETTING_NAMES);
  assert.deepEqual([...configRows().keys()].filter((name) => !known.has(name)), []);
});

Deno.test("README's configuration tables give each setting the default engine/config.ts applies", () => {
  const config = parseConfig({}) as unknown as Record<string, unknown>;
  const wrong = [...configRows()].flatMap(([name, { shown }]) => {
    const documented = shown === "unset" ? undefined : shown === "empty" ? "" : shown.replace(/^`(.*)`$/, "$1");
    const actual = config[name] === undefined ? undefined : String(config[name]);
    return documented === actual ? [] : [`${name}: README ${shown}, engine/config.ts ${actual ?? "unset"}`];
  });
  assert.deepEqual(wrong, []);
});

Deno.test("README's `allowed` ranges and choices are exactly what engine/config.ts accepts", () => {
  const wrong: string[] = [];
  const expect = (name: string, value: string, accepted: boolean) => {
    if (takes(name, value) !== accepted) wrong.push(`${name}=${value} is ${accepted ? "refused" : "accepted"}`);
  };
  let checked = 0;
  for (const [name, { allowed }] of configRows()) {
    const choices = [...allowed.matchAll(/`([a-z]+)`(?:, |$)/g)].map((m) => m[1]);
    const range = allowed.match(
      /^(0 or )?(integer|number) (?:(-?[\d.]+)–([\d.]+)|([≥>]) ([\d.]+))(?:, at most ([\d.]+))?$/,
    );
    if (choices.length > 0 && choices.join("") === allowed.replace(/[`, ]/g, "")) {
      checked++;
      for (const choice of choices) expect(name, choice, true);
      expect(name, `${choices[0]}x`, false);
    } else if (range) {
      checked++;
      const [, zero, kind, from, to, sign, bound, atMost] = range;
      const low = Number(from ?? bound);
      const high = to ?? atMost;
      const step = kind === "integer" ? 1 : Math.max(Math.abs(low), 1) / 1000;
      if (zero) expect(name, "0", true);
      expect(name, String(low), sign !== ">");
      expect(name, String(low - step), false);
      if (sign === ">") expect(name, String(low + step), true);
      if (high !== undefined) {
        expect(name, high, true);
        expect(name, String(Number(high) + (kind === "integer" ? 1 : Math.max(Number(high), 1) / 1000)), false);
      }
      const between = high === undefined ? low + 1.5 : (low + Number(high)) / 2;
      if (Number.isInteger(between) || kind === "number") expect(name, String(between), true);
      if (kind === "integer") expect(name, `${Math.floor(between)}.5`, false);
      // "Digits only": a whole number written with a fraction (PORT=8080.0) is refused too, not read as the integer.
      if (kind === "integer") expect(name, `${low + 1}.0`, false);
      if (kind === "integer") expect(name, `${low + 1}.`, false);
    }
  }
  assert.deepEqual(wrong, []);
  assert.ok(checked >= 70, `${checked} rows checked`);
});

Deno.test("every metric README names is one GET /metrics serves", () => {
  const served = new Set(new Metrics().registry.getMetricsAsArray().map((metric) => metric.name));
  const named = new Set([...readme.matchAll(/`(engine_[a-z_]+[a-z])/g)].map((m) => m[1]));
  assert.ok(named.size >= 4, `README names ${named.size} metrics`);
  assert.deepEqual([...named].filter((name) => !served.has(name)), []);
});

Deno.test("README's two set-up commands are the tasks deno.json defines, and .ci/run calls the test one", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url))).tasks;
  assert.match(readme, /deno task start/);
  assert.match(readme, /deno task test/);
  assert.ok(tasks.start && tasks.test);
  const ci = await Deno.readTextFile(new URL("../../.ci/run", import.meta.url));
  assert.match(ci, /^deno task test$/m);
});

Deno.test("every `deno task NAME` README gives is a task deno.json defines", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url))).tasks;
  const named = new Set([...readme.matchAll(/deno task ([a-z][a-z:]*)/g)].map((m) => m[1]));
  assert.ok(named.size >= 8, `README names ${named.size} tasks`);
  assert.deepEqual([...named].filter((name) => !(name in tasks)), []);
});

Deno.test("README's HTTP API table lists exactly the routes /openapi.json describes", async () => {
  const { handle } = await httpFixture();
  const doc = await (await handle(new Request(`${BASE}/openapi.json`))).json();
  const served = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
    .flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`)).sort();
  const table = readme.slice(readme.indexOf("## HTTP API"), readme.indexOf("### User and product answers"));
  const listed = [...table.matchAll(/^\|\s*`(GET|POST|PUT|DELETE|PATCH) (\/[^`\s]*)`\s*\|/gm)]
    .map((m) => `${m[1]} ${m[2]}`).sort();
  assert.deepEqual(listed, served);
});

/** The example events a reader copies: README's curl bodies and `{"type":…}` spans, and the start-up banner's. */
async function exampleBodies(): Promise<string[]> {
  const banner = await Deno.readTextFile(new URL("../../main.ts", import.meta.url));
  const bodies = [readme, banner].flatMap((text) => [
    ...[...text.matchAll(/-d '(\[[\s\S]*?\]|\{[^']*\})'/g)].map((m) => m[1]),
    ...[...text.matchAll(/`(\{"type":[^`]*\})`/g)].map((m) => m[1]),
  ]);
  // A placeholder for a time ("<now − 31 min, RFC 3339>") stands for one that is valid.
  const past = new Date(FIXTURE_NOW - 31 * 60_000).toISOString();
  return bodies.map((body) => body.replace(/<[^>"]*RFC 3339[^>"]*>/g, past));
}

Deno.test("every example event README and the start-up banner show is one POST /v1/events accepts", async () => {
  const bodies = await exampleBodies();
  assert.ok(bodies.length >= 3, `${bodies.length} examples found`);
  const { handle } = await httpFixture();
  const refused: string[] = [];
  for (const body of bodies) {
    const response = await handle(postEvents(body));
    if (response.status !== 202) refused.push(`${response.status} ${await response.text()}: ${body}`);
    else await response.body?.cancel();
  }
  assert.deepEqual(refused, []);
});

Deno.test("as README says, a browser's CORS preflight is refused (405, no Access-Control headers)", async () => {
  assert.match(readme, /sends no CORS headers and answers a preflight\s+\(`OPTIONS`\) with 405/);
  const { handle } = await httpFixture();
  const response = await handle(
    new Request(`${BASE}/v1/events`, {
      method: "OPTIONS",
      headers: { origin: "https://shop.example", "access-control-request-method": "POST" },
    }),
  );
  await response.body?.cancel();
  assert.equal(response.status, 405);
  assert.deepEqual([...response.headers.keys()].filter((name) => name.startsWith("access-control-")), []);
});

Deno.test("README's test prerequisites name every file of ../shared/data/ that a test reads", async () => {
  const prerequisites = readme.slice(
    readme.indexOf("### Prerequisites for the tests"),
    readme.indexOf("## Architecture"),
  );
  const read = new Set<string>();
  for await (const entry of Deno.readDir(new URL("../", import.meta.url))) {
    if (!entry.isDirectory) continue;
    for await (const file of Deno.readDir(new URL(`../${entry.name}/`, import.meta.url))) {
      if (!file.name.endsWith(".ts")) continue;
      const source = await Deno.readTextFile(new URL(`../${entry.name}/${file.name}`, import.meta.url));
      for (const m of source.matchAll(/shared\/data\/([\w.-]+\.(?:csv|gz))/g)) read.add(m[1]);
      // A file name chosen in a loop: its candidates are the string literals naming such files.
      if (source.includes("shared/data/${")) {
        for (const m of source.matchAll(/"([\w.-]+\.(?:csv|gz))"/g)) read.add(m[1]);
      }
    }
  }
  assert.ok(read.size >= 3, [...read].join(", "));
  assert.match(prerequisites, /`\.\.\/shared\/data\/`/);
  assert.deepEqual([...read].filter((name) => !prerequisites.includes(`\`${name}\``)), []);
});

Deno.test("README's tools example imports into a fresh DATA_DIR, not the quick start's, as its import paragraph asks", async () => {
  // Imported after the quick start's live events, every historical cart is reported abandoned at once, even those
  // whose order follows (head5k: 50 cart_abandoned instead of 24).
  const block = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]).find((b) => b.includes("task import"));
  assert.ok(block, "README has a shell example running deno task import");
  const lines = block.split("\n");
  /** The port a command posts to (--url), or the one an engine listens on (PORT): 8080 by default. */
  const port = (line: string) => line.match(/--url \S+:(\d+)/)?.[1] ?? line.match(/\bPORT=(\d+)/)?.[1] ?? "8080";
  const importPort = port(lines.find((line) => /\bdeno task import\b/.test(line))!);
  const start = lines.find((line) => /\bdeno task start\b/.test(line) && port(line) === importPort);
  assert.ok(start, "the example starts the engine it imports into");
  // The live load goes elsewhere: into the imported history it was the mix the separate DATA_DIR avoids.
  for (const line of lines.filter((line) => /\bdeno task loadgen\b/.test(line))) {
    assert.notEqual(port(line), importPort, `loadgen posts to the import's engine: ${line}`);
  }
  const dataDir = start.match(/\bDATA_DIR=(\S+)/)?.[1];
  assert.ok(dataDir, `the example's engine runs on a DATA_DIR of its own: ${start}`);
  assert.ok(!["data", "./data", "data/", "./data/"].includes(dataDir), `${dataDir} is the quick start's DATA_DIR`);
  const ignored = await Deno.readTextFile(new URL("../../.gitignore", import.meta.url));
  assert.ok(ignored.split("\n").includes(`${dataDir.replace(/^\.\//, "")}/`), `.gitignore keeps ${dataDir} out of git`);
});

Deno.test("README's `deno task bench a|b|…` list names exactly the benchmarks bench/main.ts runs", async () => {
  const main = await Deno.readTextFile(new URL("../../bench/main.ts", import.meta.url));
  const table = main.slice(main.indexOf("const BENCHMARKS"), main.indexOf("};"));
  const runs = [...table.matchAll(/^\s*([a-z]+): "\.\/[a-z_]+\.ts",$/gm)].map((m) => m[1]).sort();
  assert.ok(runs.length >= 5, runs.join(", "));
  const lists = [...readme.matchAll(/deno task bench ([a-z]+(?:\|[a-z]+)+)/g)].map((m) => m[1].split("|").sort());
  assert.ok(lists.length > 0, "README lists no benchmarks");
  for (const listed of lists) assert.deepEqual(listed, runs);
  // Each is also described where the benchmarks are.
  const section = readme.slice(readme.indexOf("## Benchmarks"), readme.indexOf("## Configuration"));
  assert.deepEqual(runs.filter((name) => !section.includes(`deno task bench ${name}`)), []);
});
