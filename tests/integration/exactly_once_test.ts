/**
 * The exactly-once proof, with the engine as a real process killed with SIGKILL at random moments
 * while a load is written and restarted on the same deployment; on each log. Afterwards:
 * - every acknowledged event is in the log exactly once, and no event is in it twice;
 * - every actor's checkpointed state equals a sequential fold of the same logic over its
 *   partition's records (tests/helpers/replay.ts), and every checkpoint is at its partition's end;
 * - every output the fold publishes (alerts, recommendations, facts) is on its topic with the fold's payload;
 * - no output id was published with two different payloads;
 * - each product's views, cart adds, orders and units, and each minute's events by type, equal a recount from the
 *   events themselves by code of the test's own (the fold runs the engine's actor logic, dedupe of facts included).
 * Every other kill is aimed at a checkpoint that has appended its outputs and not yet committed (its debug log line),
 * until one lands there; that checkpoint's outputs must be on their topics twice, from before the kill and the replay.
 *
 * The load is written the way each log allows: on Kafka by a producer beside the engine (the kills
 * then only hit consumption); the embedded log can only be written through the engine, so it is
 * posted over HTTP and the kills also hit requests in flight (those count as not acknowledged).
 * The failover test (two instances sharing a consumer group, one killed), the stalled-owner test
 * (one stopped with SIGSTOP until the other took its partitions, then woken) and the outage test
 * (PostgreSQL crashed, then the broker killed, under one running instance) run on Kafka only.
 */
import assert from "node:assert/strict";
import { type EngineProcess, startEngineProcess } from "../helpers/engine_process.ts";
import { startPrivateBroker } from "../helpers/kafka_broker.ts";
import { deploy, deployOnServers, forEachLog, onlyOn } from "../helpers/modes.ts";
import { startPrivatePostgres } from "../helpers/postgres_server.ts";
import { prng } from "../helpers/prng.ts";
import { keepPurgedRecords, purgedCounts, purgedPastCheckpoint, withPurgedRecords } from "../helpers/purged_records.ts";
import { eventually } from "../helpers/services.ts";
import {
  checkpointedToEnd,
  CONSUMED_PARTITIONS,
  Current,
  eventsEpochs,
  Gate,
  MAX_AIMED_KILLS,
  packedActors,
  SCALE,
  SETTINGS,
  settled,
  sourcedIn,
  verify,
  workload,
  write,
} from "../helpers/exactly_once.ts";

forEachLog(
  "exactly-once: SIGKILL at random moments during a load leaves every state equal to the reference fold",
  { settings: SETTINGS },
  async (d) => {
    const seed = Number(Deno.env.get("EXACTLY_ONCE_SEED") ?? Date.now() % 1_000_000);
    const random = prng(seed);
    const scale = SCALE[d.log];
    const total = Number(Deno.env.get("EXACTLY_ONCE_EVENTS") ?? scale.events);
    const load = workload(total, scale.users, random);
    // At debug level, for the line each checkpoint logs between its appended outputs and its commit.
    const start = () => startEngineProcess({ dataDir: d.dataDir, env: { ...d.env, LOG_LEVEL: "debug" } });
    // Each start's retention pass deletes the internal topics' checkpointed records while the kills come: set them aside
    // for the fold, with the checkpoint each was deleted under.
    if (d.log === "embedded") await d.inspect((view) => keepPurgedRecords(view.sql));
    const current = new Current(await start());
    const aimedTopics = [d.topics.events, d.topics.productEvents];
    try {
      const writing = write(d, current, load, scale.seconds);
      for (let k = 0; k < scale.kills; k++) {
        // Every other kill comes soon after a restart, while the engine is catching up; the others are aimed between a
        // checkpoint's appended outputs and its commit.
        await new Promise((resolve) =>
          setTimeout(resolve, k % 2 === 1 ? 300 + random() * 700 : 1_500 + random() * 3_000)
        );
        if (k % 2 === 1) await current.restart(start);
        else await current.restartMidCheckpoint(start, aimedTopics);
      }
      // An aimed kill races the commit: aimed again (the next process replays, so it checkpoints outputs at once) until
      // one has come before it.
      for (let a = 0; (await current.midCheckpoint()).length === 0 && a < MAX_AIMED_KILLS; a++) {
        await current.restartMidCheckpoint(start, aimedTopics);
      }
      const acknowledged = await writing;
      let engine = await current.get();
      await settled(d, engine);
      if (d.log === "embedded") {
        // One more kill once everything is checkpointed: the next start's retention pass deletes the checkpointed
        // internal records whatever the kills' timing, and that process resumes over the purged partitions.
        await current.restart(start);
        engine = await current.get();
        await settled(d, engine);
      }
      // The last process may have had nothing left to handle: count what every process packed, waiting for the last
      // one's packing (its actors idle ACTOR_PACK_MS, and a second) only while none has packed yet.
      let packed = current.packedBefore + await packedActors(engine);
      const until = Date.now() + Number(SETTINGS.ACTOR_PACK_MS) + 1_000;
      while (packed === 0 && Date.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        packed = current.packedBefore + await packedActors(engine);
      }
      assert.ok(packed > 0, "idle actors were packed (ACTOR_PACK_MS) while the load ran");
      const landed = await current.midCheckpoint();
      const stopped = await engine.kill("SIGTERM");
      assert.equal(stopped.code, 0, "a graceful stop");
      let purged = new Map<string, number>();
      const { actors, outputs, events, published } = await d.inspect(async (view) => {
        if (d.log !== "embedded") return await verify(d, view, acknowledged);
        const consumed = [d.topics.events, d.topics.productEvents, d.topics.analytics];
        assert.deepEqual(await purgedPastCheckpoint(view.sql, consumed), [], "no record deleted before its checkpoint");
        purged = await purgedCounts(view.sql);
        return await verify(d, withPurgedRecords(view), acknowledged);
      });
      if (d.log === "embedded") {
        assert.ok((purged.get(d.topics.productEvents) ?? 0) > 0, "retention deleted checkpointed product-events");
        assert.ok((purged.get(d.topics.analytics) ?? 0) > 0, "retention deleted checkpointed analytics records");
      }
      const aimed = current.aimed.map((k) =>
        `${k.topic}:${k.partition} ${k.from}→${k.nextOffset} resumed at ${current.resumedAt(k)}`
      ).join("; ");
      assert.ok(landed.length > 0, `a kill landed between a checkpoint's appended outputs and its commit: ${aimed}`);
      for (const k of landed) {
        // Out before the kill, out again from the replay (with the fold's payload, as verify checks), counted once.
        const replayed = [...published].filter(([id]) => sourcedIn(id, k.topic, k.partition, k.from, k.nextOffset));
        assert.ok(replayed.length > 0, `outputs of ${k.topic}:${k.partition} ${k.from}→${k.nextOffset} are published`);
        for (const [id, times] of replayed) {
          assert.ok(times >= 2, `output ${id}, appended before the kill, is published again by the replay (${times})`);
        }
      }
      assert.ok(acknowledged.size >= total / 2, `most of the load was acknowledged (${acknowledged.size} of ${total})`);
      assert.ok(events >= acknowledged.size);
      const users = new Set(load.filter((p) => acknowledged.has(p.event.eventId)).map((p) => p.key)).size;
      assert.ok(actors > users, `users, products and the global actor are checked (${actors})`);
      assert.ok(outputs > 0);
    } catch (error) {
      const logs = (await current.get().catch(() => undefined))?.logs().split("\n").slice(-40).join("\n") ?? "";
      throw new Error(`failed with EXACTLY_ONCE_SEED=${seed}: ${(error as Error).message}\nengine logs:\n${logs}`, {
        cause: error,
      });
    } finally {
      await (await current.get().catch(() => undefined))?.kill("SIGKILL");
    }
  },
);

onlyOn("kafka", {
  name: "failover: when one of two instances is killed, the survivor takes its partitions and final states are exact",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("kafka", SETTINGS);
    const load = workload(30_000, 2_000, prng(7));
    const a = await startEngineProcess({ dataDir: await Deno.makeTempDir(), env: d.env });
    const b = await startEngineProcess({ dataDir: await Deno.makeTempDir(), env: d.env });
    try {
      const writing = write(d, new Current(a), load, 8);
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      await a.kill("SIGKILL");
      const acknowledged = await writing;
      await settled(d, b);
      await b.kill("SIGTERM");
      await d.inspect(async (view) => {
        const owners = await view
          .sql`select distinct owner from partition_checkpoints where group_id = ${d.config.GROUP_ID}`;
        assert.equal(owners.length, 1, "one instance owns every partition after the failover");
        const { events } = await verify(d, view, acknowledged);
        assert.equal(events, load.length);
      });
    } finally {
      await a.kill("SIGKILL");
      await b.kill("SIGKILL");
      await remove();
    }
  },
});

onlyOn("kafka", {
  name:
    "a stalled instance (SIGSTOP past the group's session timeout) woken after the other took its partitions: final states are exact, no output id has two payloads",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // Stopped inside a checkpoint transaction, a holds its partition's row locked: PostgreSQL ends
    // that session after TRANSACTION_IDLE_TIMEOUT_MS, so that b can claim the partition.
    const { deployment: d, remove } = await deploy("kafka", { ...SETTINGS, TRANSACTION_IDLE_TIMEOUT_MS: "3000" });
    const load = workload(40_000, 2_000, prng(11));
    const a = await startEngineProcess({ dataDir: await Deno.makeTempDir(), env: d.env });
    const b = await startEngineProcess({ dataDir: await Deno.makeTempDir(), env: d.env });
    const owned = async (engine: EngineProcess) =>
      Number(/^engine_partitions_owned (\d+)/m.exec(await (await fetch(`${engine.url}/metrics`)).text())?.[1] ?? 0);
    try {
      const writing = write(d, new Current(a), load, 25);
      // Stopped while the group is settled: stopped in the middle of a rebalance, it would hold the
      // group up for the rebalance timeout (kafkajs's default, 60 s) rather than the session's.
      await eventually("both instances to share every partition", async () => {
        const [x, y] = [await owned(a), await owned(b)];
        return x > 0 && y > 0 && x + y === CONSUMED_PARTITIONS ? true : undefined;
      });
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      // Stopped, not killed: a keeps its memory, its uncheckpointed work and its connections.
      Deno.kill(a.pid, "SIGSTOP");
      await eventually(
        "the other instance to take every partition",
        async () => ((await owned(b)) === CONSUMED_PARTITIONS ? true : undefined),
        60_000,
        250,
      );
      Deno.kill(a.pid, "SIGCONT");
      const acknowledged = await writing;
      await settled(d, [a, b]);
      assert.match(a.logs(), /another instance owns this partition now/, "the woken instance was fenced off");
      const settledEpochs = await eventsEpochs(d);
      assert.equal((await a.kill("SIGTERM")).code, 0);
      // b may take a's partitions before its own stop: each events partition it claims announces its clock to analytics.
      assert.equal((await b.kill("SIGTERM")).code, 0);
      const claimedAfterSettle = new Set(
        [...await eventsEpochs(d)].filter(([p, epoch]) => epoch !== settledEpochs.get(p)).map(([p]) => p),
      );
      await d.inspect(async (view) => {
        const { events } = await verify(d, view, acknowledged, claimedAfterSettle);
        assert.equal(events, load.length);
      });
    } catch (error) {
      const tail = (engine: EngineProcess) =>
        engine.logs().split("\n").filter((l) => !l.includes("kafkajs")).slice(-40).join("\n");
      // What the database's sessions were doing: a stopped instance may hold locks others wait on.
      const sessions = await d.inspect((view) =>
        view.sql`select pid, state, wait_event_type, wait_event, now() - xact_start as in_transaction,
                        left(query, 100) as query
                   from pg_stat_activity where datname = current_database() and state <> 'idle'`
      ).then((rows) => JSON.stringify(rows, null, 1), (e) => String(e));
      // The test stops both instances before it verifies: one that has exited is said so, not asked.
      const exited = (engine: EngineProcess) => Promise.race([engine.exited, Promise.resolve(undefined)]);
      const [aExited, bExited] = [await exited(a), await exited(b)];
      const taken = bExited
        ? `nothing: it exited (${JSON.stringify(bExited)})`
        : await owned(b).catch((e) => `unknown: ${e}${e?.cause ? ` (${e.cause})` : ""}`);
      throw new Error(
        `${(error as Error).message} (the other instance owns ${taken}${
          aExited ? `; the stalled one exited (${JSON.stringify(aExited)})` : ""
        })\nstalled instance:\n${tail(a)}\nother:\n${tail(b)}\nsessions: ${sessions}`,
        { cause: error },
      );
    } finally {
      try {
        Deno.kill(a.pid, "SIGCONT");
      } catch {
        // already exited
      }
      await a.kill("SIGKILL");
      await b.kill("SIGKILL");
      await remove();
    }
  },
});

onlyOn("kafka", {
  name:
    "outages: PostgreSQL crashed, then the broker killed, during a load: the engine waits each out by itself and final states are exact",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // Servers of this test's own, so that stopping them leaves the other tests' alone.
    const database = await startPrivatePostgres();
    const broker = await startPrivateBroker().catch(async (error) => {
      await database.destroy();
      throw error;
    });
    const servers = { kafkaBrokers: broker.brokers, databaseUrl: database.url };
    const { deployment: d, remove } = await deployOnServers(servers, SETTINGS);
    const load = workload(30_000, 2_000, prng(13));
    const engine = await startEngineProcess({ dataDir: await Deno.makeTempDir(), env: d.env });
    let exited: Deno.CommandStatus | undefined;
    engine.exited.then((status) => (exited = status));
    const stillRunning = (while_: string) =>
      assert.equal(exited, undefined, `the engine process ended while ${while_}: ${JSON.stringify(exited)}`);
    const readiness = async () => {
      // Longer than the engine's own deadline per check (READINESS_CHECK_TIMEOUT_MS, 2 s).
      const response = await fetch(`${engine.url}/readyz`, { signal: AbortSignal.timeout(10_000) });
      return { status: response.status, body: await response.json() };
    };
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const gate = new Gate();
    try {
      const writing = write(d, new Current(engine), load, 24, gate);
      await sleep(4_000);

      // PostgreSQL crashes (every backend ended at once, no shutdown checkpoint) while events keep coming.
      await database.stop("immediate");
      const down = await eventually("/readyz to answer 503", async () => {
        const r = await readiness();
        return r.status === 503 ? r : undefined;
      });
      assert.notEqual(down.body.checks.database, "ok", "/readyz names the database");
      await sleep(5_000);
      stillRunning("PostgreSQL was down");
      assert.match(
        engine.logs(),
        /"msg":"(handling failed; rewinding to the last checkpoint|checkpoint failed; retrying)"/,
      );
      await database.start();
      await eventually(
        "/readyz to answer 200 again",
        async () => ((await readiness()).status === 200 ? true : undefined),
        30_000,
      );
      await sleep(3_000);

      // The broker is killed; the writer waits meanwhile (its acknowledged sends are the load's record).
      await gate.close();
      await broker.stop("SIGKILL");
      await sleep(5_000);
      stillRunning("the broker was down");
      await broker.start();
      gate.open();

      const acknowledged = await writing;
      await checkpointedToEnd(d, 90_000);
      stillRunning("it caught up");
      assert.equal((await engine.kill("SIGTERM")).code, 0, "a graceful stop");
      await d.inspect(async (view) => {
        const { events } = await verify(d, view, acknowledged);
        assert.equal(events, load.length);
      });
    } catch (error) {
      const logs = engine.logs().split("\n").filter((l) => !l.includes("kafkajs")).slice(-60).join("\n");
      throw new Error(`${(error as Error).message}\nengine logs:\n${logs}`, { cause: error });
    } finally {
      gate.open();
      await engine.kill("SIGKILL");
      await remove();
      await broker.destroy();
      await database.destroy();
    }
  },
});
