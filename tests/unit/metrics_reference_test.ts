/**
 * README's metrics reference, the metric names its text gives and the Grafana dashboard's queries, checked against the
 * exposition of a running (embedded) engine: every metric with the type and labels documented, none undocumented, and
 * no panel that asks for a metric, a series or a label the engine does not expose.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../engine/config.ts";
import { startEngine } from "../../engine/engine.ts";
import { silentLogger } from "../../engine/logger.ts";

const read = (path: string) => Deno.readTextFile(new URL(`../../${path}`, import.meta.url));

/** The runtime's default metrics (prom-client's collectDefaultMetrics), which README does not list one by one. */
const RUNTIME_DEFAULT = /^engine_(process|nodejs)_/;
/** Labels Prometheus adds to every series it scrapes (its target and the scrape job's own), not the engine's. */
const TARGET_LABELS = new Set(["instance", "job", "service"]);
/** Metrics whose series only appear after an outage, a retention pass or a fired timer: their labels go unseen here. */
const NO_SERIES_HERE = new Set([
  "engine_checkpoint_failures_total",
  "engine_log_records_purged_total",
  "engine_log_records_skipped_total",
  "engine_timers_fired_total",
]);

interface Exposed {
  readonly type: string;
  /** Label names of its series (a histogram's `le` aside); undefined if it has none yet. */
  labels?: Set<string>;
}

/** Metric family → type and label names, from the text exposition format. */
function parseExposition(text: string): Map<string, Exposed> {
  const families = new Map<string, Exposed>();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.set(name, { type });
  for (const [, series, labels] of text.matchAll(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? \S+$/gm)) {
    const family = families.get(series) ?? families.get(series.replace(/_(bucket|sum|count)$/, ""));
    assert.ok(family, `series ${series} has no # TYPE line`);
    const names = new Set([...(labels ?? "").matchAll(/(\w+)="/g)].map((m) => m[1]));
    names.delete("le");
    if (family.labels) assert.deepEqual(names, family.labels, `${series}: every series has the same labels`);
    family.labels = names;
  }
  return families;
}

/** README's "Metrics reference" table: metric → type and labels. */
async function documented(): Promise<Map<string, { type: string; labels: Set<string> }>> {
  const readme = await read("README.md");
  const start = readme.indexOf("### Metrics reference");
  assert.ok(start >= 0, "README has no Metrics reference section");
  const section = readme.slice(start, readme.indexOf("\n## ", start));
  const rows = new Map<string, { type: string; labels: Set<string> }>();
  for (const [, name, type, labels] of section.matchAll(/^\| `(engine_\w+)`\s*\|\s*(\w+)\s*\|([^|]*)\|/gm)) {
    rows.set(name, { type, labels: new Set([...labels.matchAll(/`(\w+)`/g)].map((m) => m[1])) });
  }
  assert.ok(rows.size >= 20, `only ${rows.size} rows in README's metrics reference`);
  return rows;
}

/** The dashboard's query expressions, with the title of their panel. */
async function dashboardQueries(): Promise<{ panel: string; expr: string }[]> {
  const queries: { panel: string; expr: string }[] = [];
  const walk = (panels: { title?: string; targets?: { expr?: string }[]; panels?: unknown[] }[]) => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) queries.push({ panel: panel.title ?? "?", expr: target.expr ?? "" });
      walk((panel.panels ?? []) as typeof panels);
    }
  };
  walk(JSON.parse(await read("ops/grafana/dashboards/engine.json")).panels);
  return queries;
}

/** A running embedded engine's /metrics after a small workload: events handled, outputs published, a dead letter. */
async function liveExposition(): Promise<string> {
  const dataDir = await Deno.makeTempDir({ prefix: "metrics-reference-" });
  const config = parseConfig({ DATA_DIR: dataDir, HOST: "127.0.0.1", PORT: "0", CHECKPOINT_INTERVAL_MS: "100" });
  const engine = await startEngine(config, silentLogger);
  try {
    const response = await fetch(`${engine.url}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify([
        { type: "product_viewed", userId: "u1", properties: { productId: "p1", price: 5 } },
        { type: "product_added_to_cart", userId: "u1", properties: { productId: "p1", price: 5 } },
      ]),
    });
    assert.equal(response.status, 202, await response.text());
    await engine.clients.producer.append([{ topic: "events", key: "u1", value: "not json" }]);
    for (let waited = 0;; waited += 50) {
      const text = await (await fetch(`${engine.url}/metrics`)).text();
      // The product's facts handled and checkpointed, the dead letter acknowledged.
      if (
        /^engine_dlq_records_total\{/m.test(text) &&
        /^engine_checkpoint_states_count\{topic="product-events"/m.test(text)
      ) {
        return text;
      }
      assert.ok(waited < 20_000, `the workload never showed in /metrics:\n${text}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await engine.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
}

Deno.test("README's metrics reference, its text and the dashboard match a running engine's /metrics", async () => {
  const exposed = parseExposition(await liveExposition());
  const rows = await documented();
  const engineOwn = [...exposed.keys()].filter((name) => !RUNTIME_DEFAULT.test(name));
  assert.deepEqual(engineOwn.toSorted(), [...rows.keys()].toSorted(), "README lists exactly the metrics exposed");
  for (const [name, row] of rows) {
    const family = exposed.get(name)!;
    assert.equal(family.type, row.type, `${name}'s type`);
    if (family.labels) assert.deepEqual(family.labels, row.labels, `${name}'s labels`);
    else assert.ok(NO_SERIES_HERE.has(name), `${name} has no series after the workload: its labels went unchecked`);
  }

  // Names the text gives, some with labels: `engine_outputs_total{topic,subtype}`.
  const readme = await read("README.md");
  for (const [, name, labels] of readme.matchAll(/`(engine_[a-z_]+?)(?:\{([\w,]+)\})?`/g)) {
    if (name === "engine_") continue;
    assert.ok(rows.has(name), `README names ${name}, which the engine does not expose`);
    for (const label of labels?.split(",") ?? []) assert.ok(rows.get(name)!.labels.has(label), `${name}{${label}}`);
  }

  // The dashboard: each metric (or histogram series) exposed, each label a query groups or selects by one it has.
  for (const { panel, expr } of await dashboardQueries()) {
    const used = [...expr.matchAll(/\bengine_\w+/g)].map((m) => m[0]);
    assert.ok(used.length > 0, `panel "${panel}": ${expr}`);
    const available = new Set(TARGET_LABELS);
    for (const series of used) {
      const suffix = series.match(/_(bucket|sum|count)$/)?.[1];
      const family = exposed.get(series) ?? (suffix ? exposed.get(series.slice(0, -suffix.length - 1)) : undefined);
      assert.ok(family, `panel "${panel}" queries ${series}, which the engine does not expose`);
      if (!exposed.has(series)) assert.equal(family.type, "histogram", `panel "${panel}": ${series}`);
      const name = exposed.has(series) ? series : series.slice(0, -suffix!.length - 1);
      for (const label of rows.get(name)?.labels ?? []) available.add(label);
      if (suffix === "bucket") available.add("le");
    }
    const grouped = [...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) => m[1].split(","));
    const selected = [...expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) => [...m[1].matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)])
      .map((m) => m[1]);
    for (const label of [...grouped, ...selected].map((l) => l.trim()).filter((l) => l !== "")) {
      assert.ok(available.has(label), `panel "${panel}" uses label ${label}, which its metrics do not have: ${expr}`);
    }
  }
});
