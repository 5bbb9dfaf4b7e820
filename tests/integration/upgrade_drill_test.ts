/**
 * The upgrade drill: an engine of an earlier release (a checkout of it at OLD_ENGINE_ROOT, its `deno` on PATH or the
 * same one) runs under a load, is stopped (SIGTERM) or killed (SIGKILL) in the middle of it, and this version starts on
 * the same log, database and DATA_DIR (its migrations applied at start-up) while the load goes on. Afterwards the
 * exactly-once proof's checks hold (tests/helpers/exactly_once.ts: every state equals the reference fold of its
 * partition, every output the fold publishes is on its topic with the fold's payload, product minutes and events by
 * minute recounted), timers left pending by the old engine fired once, and the alerts table, GET /v1/alerts?order=stored
 * (read to its end, each alert once) and the alerts topic name the same alerts.
 *
 * The earlier release is OLD_ENGINE_REV (the last at migration 015; actor logic as this one's, so the fold applies to
 * what either engine handled), unpacked from this repository's history with `git archive` into .cache/old-release/ once
 * and reused; or
 * a checkout named by OLD_ENGINE_ROOT, e.g. where the history is not at hand (a shallow clone, a tarball):
 *   git worktree add /tmp/old b0567d5 && (cd /tmp/old && deno cache main.ts)
 *   OLD_ENGINE_ROOT=/tmp/old bash scripts/services.sh run deno test -A tests/integration/upgrade_drill_test.ts
 * An older release's actor logic differs in bookkeeping (the fold of today's logic is no reference for its states).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { topicSpecs } from "../../engine/config.ts";
import { KafkaAdmin } from "../../engine/kafka_admin.ts";
import { createKafka } from "../../engine/kafka_client.ts";
import { silentLogger } from "../../engine/logger.ts";
import { type EngineProcess, startEngineProcess } from "../helpers/engine_process.ts";
import { Current, SETTINGS, settled, verify, workload, write } from "../helpers/exactly_once.ts";
import { type Deployment, forEachLog } from "../helpers/modes.ts";
import { prng } from "../helpers/prng.ts";
import { keepPurgedRecords, purgedPastCheckpoint, withPurgedRecords } from "../helpers/purged_records.ts";

/** The release the drill upgrades from: the last before migration 016. */
const OLD_ENGINE_REV = "b0567d527b1edbb839c4b598244969ee7c69c70b";
const REPO = new URL("../../", import.meta.url).pathname;

/** Runs `command` (git, deno) in `cwd`; its stdout, or an error naming the command and its stderr. */
async function run(command: string, args: string[], cwd: string): Promise<Uint8Array> {
  const output = await new Deno.Command(command, { args, cwd, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  if (!output.success) {
    throw new Error(`${command} ${args.join(" ")}: ${new TextDecoder().decode(output.stderr).trim()}`);
  }
  return output.stdout;
}

/**
 * The earlier release's checkout: OLD_ENGINE_ROOT, or OLD_ENGINE_REV unpacked from this repository's history into
 * .cache/old-release/<rev> once and reused, its dependencies cached. A temporary folder removed at exit was left behind
 * (49 MB each time) by a run stopped with Ctrl-C or SIGTERM, which skip the exit's handlers.
 */
async function oldEngineRoot(): Promise<string> {
  const given = Deno.env.get("OLD_ENGINE_ROOT");
  if (given) return given;
  const releases = join(REPO, ".cache", "old-release");
  const root = join(releases, OLD_ENGINE_REV);
  if (!await isFile(join(root, "main.ts"))) await unpackRelease(releases, root);
  await run(Deno.execPath(), ["cache", "--quiet", "main.ts"], root);
  return root;
}

/** Unpacks OLD_ENGINE_REV into a folder beside `root`, renamed to `root` once whole: no half release under its name. */
async function unpackRelease(releases: string, root: string): Promise<void> {
  try {
    await run("git", ["cat-file", "-e", `${OLD_ENGINE_REV}^{commit}`], REPO);
  } catch (error) {
    throw new Error(
      `the upgrade drill needs the release ${OLD_ENGINE_REV} from this repository's history (a full clone), or ` +
        `OLD_ENGINE_ROOT naming a checkout of it: ${(error as Error).message}`,
    );
  }
  await Deno.mkdir(releases, { recursive: true });
  const unpacking = await Deno.makeTempDir({ dir: releases, prefix: `${OLD_ENGINE_REV}.unpacking-` });
  try {
    const archive = join(unpacking, "release.tar");
    await run("git", ["archive", "--format=tar", `--output=${archive}`, OLD_ENGINE_REV], REPO);
    await run("tar", ["-xf", archive], unpacking);
    await Deno.remove(archive);
    await Deno.rename(unpacking, root);
  } catch (error) {
    await Deno.remove(unpacking, { recursive: true }).catch(() => {});
    // Another run of the drill unpacked it first.
    if (!await isFile(join(root, "main.ts"))) throw error;
  }
}

/** Whether `path` is a file. */
async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

let oldRoot: Promise<string> | undefined;

/**
 * Creates the deployment's topics as this version does: the old release's own creation gives up on the
 * UNKNOWN_TOPIC_OR_PARTITION a busy broker answers at first (fixed since, engine/kafka_admin.ts).
 */
async function createTopics(d: Deployment): Promise<void> {
  const admin = new KafkaAdmin(
    createKafka({
      brokers: [d.kafkaBrokers!],
      clientId: "upgrade-drill",
      logger: silentLogger,
      publishTimeoutMs: 5_000,
    }),
  );
  try {
    await admin.ensureTopics(topicSpecs(d.config, d.topics), d.config.REPLICATION_FACTOR);
  } finally {
    await admin.close();
  }
}

/** The load on each log: the embedded one is posted over HTTP, through whichever engine runs. */
const SCALE = {
  kafka: { events: 30_000, users: 2_000, seconds: 12 },
  embedded: { events: 12_000, users: 1_500, seconds: 10 },
};

/** Every alert id `GET /v1/alerts?order=stored` lists, page after page, in order. */
async function storedAlertIds(engine: EngineProcess): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  do {
    const query = `order=stored&limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const response = await fetch(`${engine.url}/v1/alerts?${query}`);
    assert.equal(response.status, 200);
    const page = await response.json() as { items: { alertId: string }[]; next?: string };
    ids.push(...page.items.map((a) => a.alertId));
    cursor = page.items.length > 0 ? page.next : undefined;
  } while (cursor);
  return ids;
}

/** How long the feed may lag the alerts table: another client's transaction on the server, ended by its idle timeout. */
const FEED_CATCH_UP_MS = 60_000;

/**
 * The feed's alert ids once it lists every alert the table holds, or as it stands after FEED_CATCH_UP_MS. It lists an
 * alert only once every transaction running when it was stored has ended, any client's, any database's (README): on
 * the shared PostgreSQL server another test's transaction, open for seconds, holds the last ones back. PGlite has no
 * other client: read once.
 */
async function caughtUpAlertIds(d: Deployment, engine: EngineProcess): Promise<string[]> {
  if (d.log === "embedded") return await storedAlertIds(engine);
  const stored = await d.inspect(async (view) =>
    (await view.sql<{ alert_id: string }[]>`select alert_id from alerts`).map((r) => r.alert_id)
  );
  const deadline = Date.now() + FEED_CATCH_UP_MS;
  for (;;) {
    const listed = await storedAlertIds(engine);
    const seen = new Set(listed);
    if (stored.every((id) => seen.has(id)) || Date.now() > deadline) return listed;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** The old engine under the load, replaced by this version after `signal` about 40% into it; then every check. */
async function drill(d: Deployment, signal: "SIGTERM" | "SIGKILL"): Promise<void> {
  const scale = SCALE[d.log];
  const load = workload(scale.events, scale.users, prng(5));
  oldRoot ??= oldEngineRoot();
  if (d.kafkaBrokers) await createTopics(d);
  // Its first start in its folder transpiles its modules and initialises PGlite without a saved template: slower than
  // this version's, within startEngineProcess's bound.
  const old = await startEngineProcess({ root: await oldRoot, dataDir: d.dataDir, env: d.env });
  const current = new Current(old);
  let next: EngineProcess | undefined;
  try {
    const writing = write(d, current, load, scale.seconds);
    await new Promise((resolve) => setTimeout(resolve, scale.seconds * 400));
    /** The alerts the timers left pending by the old engine raise when they fire. */
    let pendingAlerts: string[] = [];
    await current.replaceWith(async () => {
      await old.kill(signal);
      const rows = await d.inspect((view) =>
        view.sql<{ key: string; timers: Record<string, number> }[]>`
          select key, timers from actor_states where kind = 'user' and next_timer_at is not null`
      );
      pendingAlerts = rows.flatMap((r) =>
        Object.entries(r.timers).map(([name, at]) => `timer-user-${r.key}-${name}-${at}-${name}_abandoned`)
      );
      // This version's start-up deletes the internal topics' checkpointed records (its retention pass): set them aside
      // for the fold, with the checkpoint each was deleted under.
      if (d.log === "embedded") await d.inspect((view) => keepPurgedRecords(view.sql));
      next = await startEngineProcess({ dataDir: d.dataDir, env: d.env });
      return next;
    });
    const acknowledged = await writing;
    await settled(d, next!);
    const listed = await caughtUpAlertIds(d, next!);
    const stopped = await next!.kill("SIGTERM");
    assert.equal(stopped.code, 0, "a graceful stop");
    await d.inspect(async (view) => {
      if (d.log === "embedded") {
        const consumed = [d.topics.events, d.topics.productEvents, d.topics.analytics];
        assert.deepEqual(await purgedPastCheckpoint(view.sql, consumed), [], "no record deleted before its checkpoint");
      }
      const log = d.log === "embedded" ? withPurgedRecords(view) : view;
      const { events } = await verify(d, log, acknowledged, undefined, { earlierReleaseForms: true });
      assert.ok(events >= acknowledged.size && acknowledged.size >= scale.events / 2, `${events} events`);
      const stored = (await view.sql<{ alert_id: string }[]>`select alert_id from alerts`).map((r) => r.alert_id);
      const fired = pendingAlerts.filter((id) => stored.includes(id));
      assert.ok(
        fired.length > 0,
        `timers the old engine left pending fired (${fired.length} of ${pendingAlerts.length})`,
      );
      assert.deepEqual(new Set(listed), new Set(stored), "GET /v1/alerts?order=stored lists every stored alert");
      assert.equal(listed.length, new Set(listed).size, "each once");
      const published = new Set<string>();
      for (const records of (await view.records(d.topics.alerts)).values()) {
        for (const r of records) published.add(JSON.parse(new TextDecoder().decode(r.value!)).alertId);
      }
      assert.deepEqual(published, new Set(stored), "the alerts topic holds the stored alerts");
    });
  } catch (error) {
    const logs = (next ?? old).logs().split("\n").slice(-40).join("\n");
    throw new Error(`${(error as Error).message}\nengine logs:\n${logs}`, { cause: error });
  } finally {
    await old.kill("SIGKILL");
    await next?.kill("SIGKILL");
  }
}

for (const signal of ["SIGTERM", "SIGKILL"] as const) {
  const name = `upgrade drill: an earlier release's engine ${
    signal === "SIGTERM" ? "stopped" : "killed"
  } (${signal}) under a load, this version started on its log, database and DATA_DIR: states, timers, outputs exact`;
  forEachLog(name, { settings: { ...SETTINGS, ACTOR_PACK_MS: "60000" } }, (d) => drill(d, signal));
}
