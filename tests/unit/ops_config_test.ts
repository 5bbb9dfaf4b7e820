/**
 * Checks the monitoring configuration of the compose stack (ops/, docker-compose.yml) against the
 * engine: every dashboard query names metrics that engine/metrics.ts defines, every panel uses the
 * provisioned Prometheus datasource, panels tile the 24-column grid without overlapping, and
 * Prometheus scrapes both engine replicas, README's Docker table names compose's images and host ports, and the
 * engines' KAFKA_BROKERS and DATABASE_URL match the Kafka and PostgreSQL services. No YAML parser: the YAML files are
 * checked line by line.
 */
import assert from "node:assert/strict";
import { parseConfig, SETTING_NAMES } from "../../engine/config.ts";

const read = (path: string) => Deno.readTextFile(new URL(`../../${path}`, import.meta.url));

const DATASOURCE_UID = "prometheus";
const GRID_COLUMNS = 24;

interface GridPos {
  x: number;
  y: number;
  w: number;
  h: number;
}

interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: GridPos;
  targets?: { refId?: string; expr?: string; datasource?: { uid?: string } }[];
  panels?: Panel[];
}

/** Metric names engine/metrics.ts registers: every `${PREFIX}xxx` template, with PREFIX read from the file. */
async function engineMetricNames(): Promise<Set<string>> {
  const source = await read("engine/metrics.ts");
  const prefix = source.match(/const PREFIX = "([^"]+)";/)?.[1];
  assert.equal(prefix, "engine_", 'engine/metrics.ts no longer declares PREFIX = "engine_"');
  const names = new Set<string>();
  for (const match of source.matchAll(/`\$\{PREFIX\}([a-z_]+)`/g)) names.add(prefix + match[1]);
  assert.ok(names.size >= 10, `found only ${names.size} metric names in engine/metrics.ts`);
  return names;
}

/** The dashboard's panels, including panels nested in collapsed rows. */
async function dashboardPanels(): Promise<{ dashboard: Record<string, unknown>; panels: Panel[] }> {
  const text = await read("ops/grafana/dashboards/engine.json");
  let dashboard: Record<string, unknown>;
  try {
    dashboard = JSON.parse(text);
  } catch (error) {
    throw new Error(`ops/grafana/dashboards/engine.json is not valid JSON: ${error}`);
  }
  const panels: Panel[] = [];
  const walk = (list: unknown) => {
    assert.ok(Array.isArray(list), "panels must be an array");
    for (const panel of list as Panel[]) {
      panels.push(panel);
      if (panel.panels) walk(panel.panels);
    }
  };
  walk(dashboard.panels);
  return { dashboard, panels };
}

const isRow = (panel: Panel) => panel.type === "row";
const label = (panel: Panel) => `panel ${panel.id} "${panel.title}"`;

/** Strips the series suffixes Prometheus adds to histograms and summaries. */
const baseName = (name: string) => name.replace(/_(bucket|count|sum)$/, "");

Deno.test("dashboard: valid JSON with the expected uid, title and queries in every panel", async () => {
  const { dashboard, panels } = await dashboardPanels();
  assert.equal(dashboard.uid, "actor-engine");
  assert.equal(dashboard.title, "Actor engine");
  assert.equal(typeof dashboard.schemaVersion, "number");
  const queryPanels = panels.filter((panel) => !isRow(panel));
  assert.ok(queryPanels.length >= 11, `expected at least 11 panels, found ${queryPanels.length}`);
  const ids = panels.map((panel) => panel.id);
  assert.equal(new Set(ids).size, ids.length, "panel ids must be unique");
  for (const panel of queryPanels) {
    assert.ok(panel.targets && panel.targets.length > 0, `${label(panel)} has no queries`);
    const refIds = panel.targets.map((target) => target.refId);
    assert.equal(new Set(refIds).size, refIds.length, `${label(panel)} repeats a refId`);
    for (const target of panel.targets) {
      assert.ok(target.expr && target.expr.trim() !== "", `${label(panel)} has an empty query`);
    }
  }
});

Deno.test("dashboard: every query names only metrics the engine defines", async () => {
  const defined = await engineMetricNames();
  const { panels } = await dashboardPanels();
  const unknown: string[] = [];
  let used = 0;
  for (const panel of panels) {
    for (const target of panel.targets ?? []) {
      for (const [token] of (target.expr ?? "").matchAll(/engine_[a-z_]+/g)) {
        used++;
        if (!defined.has(baseName(token))) unknown.push(`${label(panel)}: ${token}`);
      }
    }
  }
  assert.ok(used > 0, "no engine_ metric found in any query");
  assert.deepEqual(unknown, []);
});

Deno.test("dashboard: every panel and query uses the provisioned Prometheus datasource", async () => {
  const { panels } = await dashboardPanels();
  const wrong: string[] = [];
  for (const panel of panels.filter((panel) => !isRow(panel))) {
    if (panel.datasource?.uid !== DATASOURCE_UID) wrong.push(label(panel));
    for (const target of panel.targets ?? []) {
      if (target.datasource && target.datasource.uid !== DATASOURCE_UID) wrong.push(`${label(panel)} ${target.refId}`);
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("dashboard: panels fit the 24-column grid without overlapping", async () => {
  const { panels } = await dashboardPanels();
  const placed = panels.map((panel) => {
    const pos = panel.gridPos;
    assert.ok(pos, `${label(panel)} has no gridPos`);
    for (const key of ["x", "y", "w", "h"] as const) {
      assert.ok(Number.isInteger(pos[key]) && pos[key] >= 0, `${label(panel)}: gridPos.${key} = ${pos[key]}`);
    }
    assert.ok(pos.w > 0 && pos.h > 0, `${label(panel)} has an empty gridPos`);
    assert.ok(pos.x + pos.w <= GRID_COLUMNS, `${label(panel)} extends past column ${GRID_COLUMNS}`);
    return { panel, pos };
  });
  const overlaps: string[] = [];
  for (let i = 0; i < placed.length; i++) {
    for (let j = i + 1; j < placed.length; j++) {
      const a = placed[i].pos, b = placed[j].pos;
      if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) {
        overlaps.push(`${label(placed[i].panel)} overlaps ${label(placed[j].panel)}`);
      }
    }
  }
  assert.deepEqual(overlaps, []);
});

Deno.test("Prometheus scrapes both engine replicas and the ingest instance at /metrics every 5 s", async () => {
  const lines = (await read("ops/prometheus/prometheus.yml")).split("\n").map((line) => line.replace(/#.*$/, ""));
  const start = lines.findIndex((line) => /^\s*-\s*job_name:\s*["']?engine["']?\s*$/.test(line));
  assert.ok(start >= 0, "no scrape job named engine");
  const end = lines.findIndex((line, i) => i > start && /^\s*-\s*job_name:/.test(line));
  const job = lines.slice(start, end < 0 ? undefined : end).join("\n");
  for (const target of ["engine-1:8080", "engine-2:8080", "engine-ingest:8080"]) {
    assert.match(job, new RegExp(`^\\s*-\\s*["']?${target}["']?\\s*$|["']${target}["']`, "m"), `${target} missing`);
  }
  assert.match(job, /^\s*metrics_path:\s*["']?\/metrics["']?\s*$/m);
  assert.match(job, /^\s*scrape_interval:\s*["']?5s["']?\s*$/m);
});

Deno.test("compose: two engine replicas, an ingest instance, Prometheus and Grafana wired to the ops/ files", async () => {
  const compose = await read("docker-compose.yml");
  for (const service of ["kafka", "postgres", "engine-1", "engine-2", "engine-ingest", "prometheus", "grafana"]) {
    assert.match(compose, new RegExp(`^  ${service}:\\s*$`, "m"), `service ${service} missing`);
  }
  assert.match(compose, /^x-engine: &engine\s*$/m);
  assert.match(compose, /"8080:8080"/);
  assert.match(compose, /"8081:8080"/);
  assert.match(compose, /"8082:8080"/);
  assert.match(compose, /^\s*ROLE:\s*"ingest"\s*$/m);
  assert.match(compose, /\.\/ops\/prometheus\/prometheus\.yml:\/etc\/prometheus\/prometheus\.yml/);
  assert.match(compose, /\.\/ops\/grafana\/provisioning:\/etc\/grafana\/provisioning/);
  const dashboardsMount = compose.match(/\.\/ops\/grafana\/dashboards:(\S+?)(:ro)?\s*$/m)?.[1];
  assert.ok(dashboardsMount, "ops/grafana/dashboards is not mounted into Grafana");
  const provider = await read("ops/grafana/provisioning/dashboards/dashboards.yml");
  assert.match(provider, new RegExp(`^\\s*path:\\s*${dashboardsMount}\\s*$`, "m"), "provider path != mount point");
  const datasource = await read("ops/grafana/provisioning/datasources/datasource.yml");
  assert.match(datasource, new RegExp(`^\\s*uid:\\s*${DATASOURCE_UID}\\s*$`, "m"));
  assert.match(datasource, /^\s*url:\s*http:\/\/prometheus:9090\s*$/m);
});

/** `KEY: "value"` lines of the block that starts at `header` (a line of its own), at the block's indentation. */
function yamlBlock(text: string, header: RegExp): Record<string, string> {
  const lines = text.split("\n");
  const start = lines.findIndex((line) => header.test(line));
  assert.ok(start >= 0, `no ${header}`);
  const indent = lines[start + 1].match(/^ */)![0].length;
  const entries: Record<string, string> = {};
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === "" || line.trim().startsWith("#")) continue;
    if (line.match(/^ */)![0].length < indent) break;
    const entry = /^\s*([A-Z][A-Z0-9_]*):\s*"(.*)"\s*$/.exec(line);
    if (entry) entries[entry[1]] = entry[2];
  }
  return entries;
}

Deno.test("compose: each engine service's environment is settings the engine knows, with values it accepts", async () => {
  const compose = await read("docker-compose.yml");
  const shared = yamlBlock(compose, /^ {2}environment: &engine-environment\s*$/);
  const known = new Set<string>([...SETTING_NAMES, "DENO_V8_FLAGS"]);
  for (const service of ["engine-1", "engine-2", "engine-ingest"]) {
    const section = compose.slice(compose.search(new RegExp(`^  ${service}:\\s*$`, "m")));
    const env = { ...shared, ...yamlBlock(section, /^ {4}environment:\s*$/) };
    for (const name of Object.keys(env)) assert.ok(known.has(name), `${service}: ${name} is not a setting`);
    // A typo in a value would stop the service at start-up, which no one here can see (no Docker engine).
    const config = parseConfig(env);
    assert.equal(config.mode, "production", service);
    const [, published, target] = /^\s*- "(\d+):(\d+)"\s*$/m.exec(section.slice(0, section.indexOf("\n\n"))) ?? [];
    assert.equal(Number(target), config.PORT, `${service} publishes a port the engine does not listen on`);
    assert.ok(published, service);
    assert.equal(config.ADVERTISED_URL, `http://${service}:${config.PORT}`, service);
  }
});

/** A compose service's block: from its `  name:` line to the next service's or the file's next top-level key. */
function serviceSection(compose: string, service: string): string {
  const start = compose.search(new RegExp(`^  ${service}:\\s*$`, "m"));
  assert.ok(start >= 0, `service ${service} missing`);
  const rest = compose.slice(start + 1);
  const end = rest.search(/^ {2}[a-z][\w-]*:\s*$|^\S/m);
  return end < 0 ? rest : rest.slice(0, end);
}

Deno.test("README's Docker table gives each service the image and host port docker-compose.yml does", async () => {
  const compose = await read("docker-compose.yml");
  const readme = await read("README.md");
  const table = readme.slice(readme.indexOf("## Docker and observability"));
  const rows = [...table.matchAll(/^\| `([\w-]+)`\s*\|([^|]*)\|([^|]*)\|/gm)];
  assert.ok(rows.length >= 7, "README's Docker table lists fewer than 7 services");
  for (const [, service, imageCell, portCell] of rows) {
    const section = serviceSection(compose, service);
    const image = section.match(/^ {4}image:\s*"?([^"\s]+)"?\s*$/m)?.[1];
    if (image) assert.match(imageCell, new RegExp(`\`${image.replaceAll(".", "\\.")}\``), `${service}: ${image}`);
    else assert.match(imageCell, /built from `Dockerfile`/, `${service} has no image and README names one`);
    const published = [...section.matchAll(/^\s*- "(\d+):\d+"\s*$/gm)].map((match) => match[1]);
    assert.equal(portCell.trim(), published.length > 0 ? published.join(", ") : "—", `${service}'s host port`);
  }
});

/** `KEY: value` lines (quoted or not) of a compose service's `environment:` block. */
function serviceEnvironment(section: string): Record<string, string> {
  const lines = section.split("\n");
  const start = lines.findIndex((line) => /^ {4}environment:/.test(line));
  assert.ok(start >= 0, "no environment block");
  const entries: Record<string, string> = {};
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === "" || line.trim().startsWith("#")) continue;
    const entry = /^ {6}([A-Z][A-Z0-9_]*):\s*"?([^"]*?)"?\s*$/.exec(line);
    if (!entry) break;
    entries[entry[1]] = entry[2];
  }
  return entries;
}

Deno.test("compose: the engines reach Kafka and PostgreSQL as those services are configured", async () => {
  const compose = await read("docker-compose.yml");
  const engine = parseConfig(yamlBlock(compose, /^ {2}environment: &engine-environment\s*$/));
  // Kafka: every broker the engines dial is an advertised PLAINTEXT address whose port a listener binds, and the
  // broker's healthcheck probes that port.
  const kafkaSection = serviceSection(compose, "kafka");
  const kafka = serviceEnvironment(kafkaSection);
  const advertised = kafka.KAFKA_ADVERTISED_LISTENERS.split(",").map((listener) => listener.split("://"));
  const listeners = new Map(
    kafka.KAFKA_LISTENERS.split(",").map((listener) => {
      const [name, address] = listener.split("://");
      return [name, address.slice(address.lastIndexOf(":") + 1)];
    }),
  );
  for (const broker of engine.KAFKA_BROKERS!.split(",")) {
    const listener = advertised.find(([, address]) => address === broker);
    assert.ok(listener, `KAFKA_BROKERS names ${broker}, which Kafka does not advertise`);
    assert.equal(listeners.get(listener[0]), broker.split(":")[1], `no listener binds ${broker}'s port`);
    assert.match(kafka.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP, new RegExp(`(^|,)${listener[0]}:PLAINTEXT(,|$)`));
    assert.match(kafkaSection, new RegExp(`--bootstrap-server localhost:${broker.split(":")[1]}\\b`));
  }
  // A single node: topics the engine creates cannot have more replicas, nor the broker's internal ones.
  const nodes = kafka.KAFKA_CONTROLLER_QUORUM_VOTERS.split(",").length;
  assert.ok(engine.REPLICATION_FACTOR <= nodes, `REPLICATION_FACTOR ${engine.REPLICATION_FACTOR} > ${nodes} node(s)`);
  for (const name of ["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]) {
    assert.ok(Number(kafka[name]) <= nodes, `${name} ${kafka[name]} > ${nodes} node(s)`);
  }
  // README: the engines create their topics themselves, broker-side auto-creation is off.
  assert.equal(kafka.KAFKA_AUTO_CREATE_TOPICS_ENABLE, "false");
  // PostgreSQL: DATABASE_URL names the service, the user, password and database its image creates, and the
  // healthcheck asks for that user and database.
  const postgresSection = serviceSection(compose, "postgres");
  const postgres = serviceEnvironment(postgresSection);
  const url = new URL(engine.DATABASE_URL!);
  assert.equal(url.hostname, "postgres");
  assert.equal(url.port || "5432", "5432");
  assert.equal(decodeURIComponent(url.username), postgres.POSTGRES_USER);
  assert.equal(decodeURIComponent(url.password), postgres.POSTGRES_PASSWORD);
  assert.equal(url.pathname.slice(1), postgres.POSTGRES_DB);
  const probe = postgresSection.match(/"(pg_isready [^"]*)"/)?.[1];
  assert.ok(probe, "the postgres service has no pg_isready healthcheck");
  assert.match(probe, new RegExp(`(^| )-U ${postgres.POSTGRES_USER}( |$)`));
  assert.match(probe, new RegExp(`(^| )-d ${postgres.POSTGRES_DB}( |$)`));
  // Over TCP, as the engines connect: on a fresh volume the image's entrypoint first runs a temporary server that
  // listens on the Unix socket alone (to create POSTGRES_DB), which a socket probe took for the real one; the engines
  // it released were refused (ECONNREFUSED, exit code 2) and restarted.
  assert.match(probe, /(^| )-h (127\.0\.0\.1|localhost)( |$)/, `${probe} probes the Unix socket`);
  // The engines start once both answer their healthchecks.
  const shared = compose.slice(compose.indexOf("x-engine: &engine"), compose.indexOf("\nservices:"));
  for (const service of ["kafka", "postgres"]) {
    assert.match(shared, new RegExp(`^ {4}${service}:\\n {6}condition: service_healthy$`, "m"), service);
  }
});
