// deno-lint-ignore-file no-console
/**
 * `deno task bench engine [--events N] [--users N] [--products N] [--checkpoint-ms N] [--instances N] [--spacing-ms N]`:
 * events/s processed by the engine from a pre-filled `events` topic (checkpoints on), against a bare kafkajs consumer
 * reading the same topic as the ceiling; heap bytes per in-memory actor; checkpoint duration p99. With `--instances N`,
 * N − 1 more engine processes join the group at the start and share the partitions (how the engine scales out);
 * `--spacing-ms` sets the event time between consecutive events (bench/workload.ts); `--cpu-profile FILE` writes a V8
 * CPU profile of this process while the engine runs (bench/cpu_profile.ts) and prints where its time went.
 */
import { Kafka, logLevel } from "kafkajs";
import process from "node:process";
import postgres from "postgres";
import { parseConfig, topicNames } from "../engine/config.ts";
import { type RunningEngine, startEngine } from "../engine/engine.ts";
import { patchKafkajs } from "../engine/kafka_client.ts";
import type { EngineEvent } from "../engine/instrumentation.ts";
import { createLogger } from "../engine/logger.ts";
import { fold } from "../tests/helpers/fold.ts";
import { report, startProfiler } from "./cpu_profile.ts";
import { benchDatabase } from "./database.ts";
import { spawnInstance } from "./instance.ts";
import { listenerPid, portOf, treeCpuSeconds } from "./process_cpu.ts";
import { benchEvent, DEFAULT_PRODUCTS, DEFAULT_SPACING_MS, flag, machine } from "./workload.ts";

const PRODUCE_BATCH = 5_000;
const PRODUCE_CONCURRENCY = 4;
const POLL_MS = 100;
/** Events folded through the domain logic alone, for its cost per event. */
const FOLD_EVENTS = 200_000;

function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

/** Runs the benchmark and prints its figures. */
export async function run(args: string[]): Promise<void> {
  const total = flag(args, "events", 1_000_000);
  const users = flag(args, "users", 100_000);
  const products = flag(args, "products", DEFAULT_PRODUCTS);
  const checkpointMs = flag(args, "checkpoint-ms", 1_000);
  const instances = flag(args, "instances", 1);
  const spacingMs = flag(args, "spacing-ms", DEFAULT_SPACING_MS);
  const profileAt = args.indexOf("--cpu-profile");
  const profileFile = profileAt >= 0 ? args[profileAt + 1] : undefined;
  if (profileAt >= 0 && !profileFile) throw new Error("--cpu-profile needs a file name");
  if (!(spacingMs > 0)) throw new Error(`--spacing-ms must be a positive number, not ${spacingMs}`);
  if (!Number.isInteger(instances) || instances < 1) {
    throw new Error(`--instances must be an integer ≥ 1, not ${instances}`);
  }
  const brokers = Deno.env.get("KAFKA_BROKERS")!;
  const database = await benchDatabase(Deno.env.get("DATABASE_URL"));
  const databaseUrl = database.url!;
  const id = `bench${Date.now().toString(36)}`;
  const config = parseConfig({
    KAFKA_BROKERS: brokers,
    DATABASE_URL: databaseUrl,
    TOPIC_PREFIX: `${id}.`,
    GROUP_ID: `${id}-engine`,
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
    MAX_ACTORS: String(users * 2),
    CLOCK_IDLE_MS: String(3_600_000),
    CHECKPOINT_INTERVAL_MS: String(checkpointMs),
  });
  const topics = topicNames(config);
  // The bare consumer runs on the same patched kafkajs as the engine (engine/kafka_client.ts).
  patchKafkajs();
  const kafka = new Kafka({ clientId: id, brokers: [brokers], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: [topics.events, topics.productEvents, topics.alerts, topics.recommendations, topics.dlq].map((topic) => ({
      topic,
      numPartitions: config.PARTITIONS,
    })),
  });

  // 1. Pre-fill the events topic.
  console.log(`pre-filling ${total} events over ${users} users into ${config.PARTITIONS} partitions...`);
  // Not idempotent: kafkajs's idempotent producer breaks ("out of order sequence") under concurrent sends.
  const producer = kafka.producer({ idempotent: false });
  await producer.connect();
  let sent = 0;
  const produceStarted = performance.now();
  const nextBatch = () => {
    const messages = [];
    for (let i = 0; i < PRODUCE_BATCH && sent < total; i++, sent++) {
      const event = benchEvent(sent, users, products, spacingMs);
      messages.push({ key: event.userId, value: JSON.stringify(event) });
    }
    return messages;
  };
  await Promise.all(Array.from({ length: PRODUCE_CONCURRENCY }, async () => {
    while (sent < total) await producer.send({ topic: topics.events, acks: -1, messages: nextBatch() });
  }));
  await producer.disconnect();
  // The producer is not idempotent: a retried send may have written a batch twice. Count what is there.
  const records = (await admin.fetchTopicOffsets(topics.events)).reduce((n, p) => n + Number(p.high), 0);
  console.log(`  produced in ${((performance.now() - produceStarted) / 1000).toFixed(1)} s: ${records} records`);

  // 2. Ceiling: a bare kafkajs consumer that does nothing with the records.
  const bare = kafka.consumer({ groupId: `${id}-bare`, maxWaitTimeInMs: 100 });
  await bare.connect();
  await bare.subscribe({ topic: topics.events, fromBeginning: true });
  let seen = 0;
  let bareFirst = 0;
  const bareDone = Promise.withResolvers<number>();
  await bare.run({
    partitionsConsumedConcurrently: config.PARTITIONS,
    eachBatch: ({ batch }) => {
      if (seen === 0) bareFirst = performance.now();
      seen += batch.messages.length;
      if (seen >= records) bareDone.resolve(performance.now());
      return Promise.resolve();
    },
  });
  const bareEnd = await bareDone.promise;
  await bare.disconnect();
  const bareRate = records / ((bareEnd - bareFirst) / 1000);

  // 3. The engine, checkpoints on.
  gc();
  const heapBefore = Deno.memoryUsage().heapUsed;
  const checkpoints: number[] = [];
  /** Checkpoint durations by topic: user, product and global partitions checkpoint very different amounts. */
  const checkpointsByTopic = new Map<string, number[]>();
  /** Checkpoint steps (publish, persist, commit) by topic: "<topic> <phase>" → seconds. */
  const phasesByTopic = new Map<string, number[]>();
  /** Published outputs by topic: the work an event causes beyond its own handling. */
  const outputs = new Map<string, number>();
  // The services' CPU over the same span, when they run on this machine: what an event costs beside the engine.
  const services = [
    { name: "PostgreSQL", pid: listenerPid(portOf(databaseUrl) ?? -1) },
    { name: "Kafka broker", pid: listenerPid(portOf(brokers.split(",")[0]) ?? -1) },
  ].filter((service): service is { name: string; pid: number } => service.pid !== null)
    .map((service) => ({ ...service, before: treeCpuSeconds(service.pid) }));
  const profiler = profileFile ? await startProfiler() : undefined;
  const cpuBefore = process.cpuUsage();
  let firstProcessed = 0;
  const engineStarted = performance.now();
  const others = Array.from({ length: instances - 1 }, () =>
    spawnInstance(config, {
      MAX_ACTORS: String(config.MAX_ACTORS),
      CLOCK_IDLE_MS: String(config.CLOCK_IDLE_MS),
      CHECKPOINT_INTERVAL_MS: String(config.CHECKPOINT_INTERVAL_MS),
    }));
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  let engine: RunningEngine;
  let engineEnd = 0;
  // The other instances must not outlive a failed run: they would retry against stopped services for ever.
  try {
    engine = await startEngine(config, createLogger("warn"), {
      instrumentation: {
        emit: (e: EngineEvent) => {
          if (e.type === "checkpoint" && e.ok) {
            checkpoints.push(e.seconds);
            const list = checkpointsByTopic.get(e.topic) ?? [];
            list.push(e.seconds);
            checkpointsByTopic.set(e.topic, list);
            for (const [phase, seconds] of Object.entries(e.phases ?? {})) {
              const key = `${e.topic} ${phase}`;
              phasesByTopic.set(key, [...phasesByTopic.get(key) ?? [], seconds]);
            }
          }
          if (e.type === "message_processed" && firstProcessed === 0) firstProcessed = performance.now();
          if (e.type === "output") outputs.set(e.topic, (outputs.get(e.topic) ?? 0) + e.count);
        },
      },
    });
    while (engineEnd === 0) {
      const [row] = await sql`
        select coalesce(sum(next_offset), 0) as done from partition_checkpoints
         where group_id = ${config.GROUP_ID} and topic = ${topics.events}`;
      if (Number(row.done) >= records) engineEnd = performance.now();
      else await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } catch (error) {
    await Promise.all(others.map((other) => other.stop()));
    throw error;
  }
  const cpu = process.cpuUsage(cpuBefore);
  const servicesCpu = services.map((service) => ({
    ...service,
    seconds: treeCpuSeconds(service.pid) - service.before,
  }));
  const profile = await profiler?.stop();
  const ownCpuSeconds = (cpu.user + cpu.system) / 1e6;
  const othersCpuSeconds = others.map((other) => other.cpuSeconds());
  const cpuSeconds = othersCpuSeconds.reduce((sum, seconds) => sum + seconds, ownCpuSeconds);
  await Promise.all(others.map((other) => other.stop()));
  const engineSeconds = (engineEnd - engineStarted) / 1000;
  const steadyRate = records / ((engineEnd - firstProcessed) / 1000);
  const withStartRate = records / ((engineEnd - engineStarted) / 1000);

  // 4. Heap per actor: with every actor in memory, live, then once the idle ones are packed
  // (ACTOR_PACK_MS after their last message, by the engine's own housekeeping), then with all of
  // them passivated.
  gc();
  const heapWithActors = Deno.memoryUsage().heapUsed;
  const inMemory = engine.runtime.actorCount;
  const liveAtEnd = inMemory - engine.runtime.packedCount;
  const packDeadline = performance.now() + config.ACTOR_PACK_MS + 120_000;
  while (engine.runtime.packedCount < engine.runtime.actorCount && performance.now() < packDeadline) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  gc();
  const heapPacked = Deno.memoryUsage().heapUsed;
  const packed = engine.runtime.packedCount;
  await engine.runtime.passivateAll();
  gc();
  const heapWithout = Deno.memoryUsage().heapUsed;
  await engine.stop();
  // After the engine's sessions closed, which flushes their table statistics (a live session reports them now and then).
  const rowWrites = await sql<{ relname: string; ins: string; upd: string; hot: string }[]>`
    select relname, n_tup_ins as ins, n_tup_upd as upd, n_tup_hot_upd as hot from pg_stat_user_tables
     where relname in ('actor_states', 'product_minutes') order by relname`;
  await sql.end();
  await database.drop();
  await admin.deleteTopics({ topics: Object.values(topics) }).catch(() => {});
  await admin.disconnect();

  // 5. The domain logic alone: the reference fold (no log, database or engine) over the same kind
  // of input, with as many events per user; after the engine, so that it does not warm up its code.
  const foldEvents = Math.min(total, FOLD_EVENTS);
  const foldUsers = Math.ceil(users * foldEvents / total);
  const foldInput = Array.from({ length: foldEvents }, (_, n) => benchEvent(n, foldUsers, products, spacingMs));
  const foldStarted = performance.now();
  await fold(foldInput);
  const foldMicros = 1000 * (performance.now() - foldStarted) / foldEvents;

  if (profile) await report(profile, profileFile!);
  console.log(`\nmachine: ${await machine()}`);
  console.log(
    `command: deno task bench engine --events ${total} --users ${users} --products ${products} --checkpoint-ms ${checkpointMs} --instances ${instances} --spacing-ms ${spacingMs}`,
  );
  console.log(`bare kafkajs consumer (ceiling): ${Math.round(bareRate).toLocaleString("en")} events/s`);
  console.log(
    `engine (${
      instances > 1 ? `${instances} instances, ` : ""
    }checkpoints every ${config.CHECKPOINT_INTERVAL_MS} ms): ${
      Math.round(steadyRate).toLocaleString("en")
    } events/s from first message to last checkpoint; ${
      Math.round(withStartRate).toLocaleString("en")
    } events/s including start-up`,
  );
  console.log(`engine / ceiling: ${(100 * steadyRate / bareRate).toFixed(0)}%`);
  console.log(
    `outputs per event: ${
      [...outputs].sort().map(([topic, n]) => `${topic} ${(n / records).toFixed(2)}`).join(", ") || "none"
    }`,
  );
  console.log(
    `domain logic alone (reference fold of ${foldEvents} events, tests/helpers/fold.ts): ${
      foldMicros.toFixed(0)
    } µs per event`,
  );
  console.log(
    `engine process CPU${instances > 1 ? `, ${instances} processes together` : ""}: ${cpuSeconds.toFixed(1)} s in ${
      engineSeconds.toFixed(1)
    } s of wall time (${(100 * cpuSeconds / engineSeconds).toFixed(0)}% of one core), ${
      (1e6 * cpuSeconds / records).toFixed(0)
    } µs per event${
      instances > 1
        ? ` (this process ${ownCpuSeconds.toFixed(1)} s, the others ${
          othersCpuSeconds.map((seconds) => `${seconds.toFixed(1)} s`).join(", ")
        })`
        : ""
    }`,
  );
  if (servicesCpu.length > 0) {
    const perEvent = (seconds: number) => 1e6 * seconds / records;
    const machineSeconds = servicesCpu.reduce((sum, service) => sum + service.seconds, cpuSeconds);
    console.log(
      `CPU per event, machine-wide: engine ${perEvent(cpuSeconds).toFixed(0)} µs, ${
        servicesCpu.map((service) => `${service.name} ${perEvent(service.seconds).toFixed(0)} µs`).join(", ")
      }; ${perEvent(machineSeconds).toFixed(0)} µs in all (${
        (100 * machineSeconds / engineSeconds).toFixed(0)
      }% of one core over the run; 100,000 events/s would take ${(perEvent(machineSeconds) / 10).toFixed(1)} cores)`,
    );
  }
  console.log(
    `PostgreSQL row writes: ${
      rowWrites.map((r) =>
        `${r.relname} ${Number(r.ins).toLocaleString("en")} inserted, ${Number(r.upd).toLocaleString("en")} updated (${
          (100 * Number(r.hot) / Math.max(1, Number(r.upd))).toFixed(0)
        }% of them heap-only)`
      ).join("; ")
    }`,
  );
  if (instances > 1) {
    console.log("heap and checkpoint figures below are this process's alone (its share of partitions)");
  }
  console.log(
    `heap per in-memory actor: ${
      Math.round((heapWithActors - heapWithout) / Math.max(1, inMemory))
    } bytes right after the run (${inMemory} actors, ${liveAtEnd} of them live); ${
      Math.round((heapPacked - heapWithout) / Math.max(1, inMemory))
    } bytes per idle actor (${packed} packed after ACTOR_PACK_MS=${config.ACTOR_PACK_MS}); heap ${
      (heapBefore / 2 ** 20).toFixed(0)
    } MiB before start, ${(heapWithActors / 2 ** 20).toFixed(0)} MiB with actors, ${
      (heapPacked / 2 ** 20).toFixed(0)
    } MiB packed, ${(heapWithout / 2 ** 20).toFixed(0)} MiB after passivation`,
  );
  const durations = (list: number[]) =>
    `${list.length}, p50 ${(quantile(list, 0.5) * 1000).toFixed(1)} ms, p99 ${
      (quantile(list, 0.99) * 1000).toFixed(1)
    } ms, max ${(Math.max(...list) * 1000).toFixed(1)} ms`;
  console.log(`checkpoints: ${durations(checkpoints)}`);
  for (const [topic, list] of checkpointsByTopic) {
    console.log(`  ${topic.slice(id.length + 1)}: ${durations(list)}`);
    const steps = ["publish", "persist", "commit"].map((phase) => {
      const times = phasesByTopic.get(`${topic} ${phase}`) ?? [];
      return `${phase} p50 ${(quantile(times, 0.5) * 1000).toFixed(1)} ms, p99 ${
        (quantile(times, 0.99) * 1000).toFixed(1)
      } ms`;
    });
    console.log(`    ${steps.join("; ")}`);
  }
}
