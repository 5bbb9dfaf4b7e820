// deno-lint-ignore-file no-console
/**
 * `deno task bench ingest [--clients=N] [--batch=N] [--duration=S] [--rate=N] [--latency-duration=S] [--warmup=S] [--edge]`:
 * HTTP ingestion against an in-process engine on the local Kafka and PostgreSQL (scripts/services.sh).
 *
 *  (b) latency, run first, in steady state: single-event requests on an open-loop schedule at a
 *      fixed rate (bench/fixed_rate.ts: requests go out on schedule whatever the server does, so
 *      a stall delays every request behind it) → p50/p99;
 *  (a) throughput: N closed-loop clients post batches of events for a fixed duration → events/s.
 *
 * The engine runs whole (HTTP, Kafka producer, consumer group, actors, checkpoints) on this
 * process's one JavaScript thread, so the actors' work on what was ingested competes with
 * ingestion. `--edge` runs the engine with ROLE=ingest (HTTP and Kafka producer, no actors: the
 * way ingestion is scaled apart from processing), which is what ingestion itself can do here.
 * The load generator runs in a Web Worker (this same module), on its own thread, like a client.
 */
import { parseConfig } from "../engine/config.ts";
import { startEngine } from "../engine/engine.ts";
import { createLogger } from "../engine/logger.ts";
import { benchDatabase } from "./database.ts";
import { printResult, runFixedRate } from "./fixed_rate.ts";
import { machine } from "./workload.ts";

/** Options of a run, with their defaults. */
const DEFAULTS = {
  clients: 16,
  batch: 100,
  duration: 10,
  /** Seconds of unmeasured load before each phase: the task starts a cold broker JVM every time. */
  warmup: 10,
  rate: 1_000,
  "latency-duration": 10,
} as const;

type Options = { -readonly [K in keyof typeof DEFAULTS]: number } & { edge: boolean };

/** Goals from the issue, printed next to the figures. */
const GOAL_EVENTS_PER_S = 50_000;
const GOAL_P99_MS = 10;

const USERS = 10_000;
const PRODUCTS = 2_000;
const DISTINCT_BODIES = 64;
const MS_PER_S = 1_000;

/** A throughput run, as sent to the load worker. */
interface Job {
  readonly url: string;
  readonly bodies: string[];
  readonly clients: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

/** A finished phase, as reported by the worker. */
interface PhaseResult {
  readonly requests: number;
  readonly events: number;
  readonly errors: Record<string, number>;
  readonly seconds: number;
  readonly latenciesMs: number[];
}

function event(i: number): Record<string, unknown> {
  const userId = `user-${i % USERS}`;
  const productId = `sku-${(i * 7) % PRODUCTS}`;
  switch (i % 5) {
    case 0:
      return { type: "page_viewed", userId, properties: { url: `/p/${productId}`, loadTime: 0.8 } };
    case 1:
      return { type: "product_viewed", userId, properties: { productId, price: 19.99, category: "shoes" } };
    case 2:
      return { type: "product_added_to_cart", userId, properties: { productId, price: 19.99, quantity: 2 } };
    case 3:
      return { type: "search_performed", userId, properties: { query: "running shoes", resultsCount: 42 } };
    default:
      return { type: "checkout_started", userId, properties: { cartValue: 39.98 } };
  }
}

function batchBodies(batch: number): string[] {
  return Array.from(
    { length: DISTINCT_BODIES },
    (_, b) => JSON.stringify(Array.from({ length: batch }, (_, i) => event(b * batch + i))),
  );
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function parseOptions(args: string[]): Options {
  const options: Options = { ...DEFAULTS, edge: false };
  for (const arg of args) {
    if (arg === "--edge") {
      options.edge = true;
      continue;
    }
    const [name, value] = arg.replace(/^--/, "").split("=");
    if (!(name in options) || !Number.isFinite(Number(value)) || Number(value) <= 0) {
      throw new Error(`Cannot run the ingest benchmark: unknown or invalid option '${arg}'`);
    }
    options[name as keyof typeof DEFAULTS] = Number(value);
  }
  return options;
}

function runInWorker(job: Job): Promise<PhaseResult> {
  const worker = new Worker(import.meta.url, { type: "module" });
  const { promise, resolve, reject } = Promise.withResolvers<PhaseResult>();
  worker.onmessage = (message: MessageEvent<PhaseResult>) => resolve(message.data);
  worker.onerror = (error) => {
    error.preventDefault();
    reject(new Error(error.message));
  };
  worker.postMessage(job);
  return promise.finally(() => worker.terminate());
}

function report(title: string, result: PhaseResult): void {
  const sorted = [...result.latenciesMs].sort((a, b) => a - b);
  const ms = (p: number) => percentile(sorted, p).toFixed(2);
  console.log(`\n${title}`);
  console.log(
    `  ${result.requests} requests (${(result.requests / result.seconds).toFixed(0)}/s), ` +
      `${result.events} events accepted (${(result.events / result.seconds).toFixed(0)} events/s) in ${
        result.seconds.toFixed(1)
      } s`,
  );
  console.log(`  latency ms: p50 ${ms(50)}  p90 ${ms(90)}  p99 ${ms(99)}  p99.9 ${ms(99.9)}  max ${ms(100)}`);
  const errors = Object.entries(result.errors);
  console.log(`  errors: ${errors.length === 0 ? "none" : errors.map(([k, v]) => `${k} ×${v}`).join(", ")}`);
}

/** Entry point called by bench/main.ts. */
export async function run(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const id = crypto.randomUUID().slice(0, 8);
  const database = await benchDatabase(Deno.env.get("DATABASE_URL"));
  const config = parseConfig({
    KAFKA_BROKERS: Deno.env.get("KAFKA_BROKERS"),
    DATABASE_URL: database.url,
    TOPIC_PREFIX: `bench-${id}.`,
    GROUP_ID: `bench-${id}`,
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
    ROLE: options.edge ? "ingest" : "all",
  });
  if (config.mode !== "production") {
    throw new Error("Cannot run the ingest benchmark: run it with `deno task bench ingest`");
  }
  // V8 flags from the environment change the figures (README: ingest-only instances), so the command shows them.
  const v8Flags = Deno.env.get("DENO_V8_FLAGS");
  console.log(
    `command: ${v8Flags ? `DENO_V8_FLAGS=${v8Flags} ` : ""}deno task bench ingest ${args.join(" ")}`.trimEnd(),
  );
  console.log(`machine: ${await machine()}`);
  console.log(
    `target: ${options.edge ? "engine with ROLE=ingest (--edge)" : "whole engine (ROLE=all)"} in-process; ` +
      `Kafka at ${config.KAFKA_BROKERS} (acks=all, idempotent), ${config.PARTITIONS} partitions; ` +
      "load generator in a worker thread",
  );
  console.log(`options: ${JSON.stringify(options)}`);
  const target = await startEngine(config, createLogger(config.LOG_LEVEL));
  try {
    const url = `${target.url}/v1/events`;
    const singles = batchBodies(1).map((b) => JSON.stringify(JSON.parse(b)[0]));
    const latency = await runFixedRate({
      requests: singles.map((body) => ({ url, method: "POST", body })),
      rate: options.rate,
      warmupMs: options.warmup * MS_PER_S,
      durationMs: options["latency-duration"] * MS_PER_S,
    });
    console.log();
    printResult(
      `(b) latency: single-event requests, open loop at ${options.rate} requests/s (goal p99 ≤ ${GOAL_P99_MS} ms)`,
      latency,
    );
    const throughput = await runInWorker({
      url,
      bodies: batchBodies(options.batch),
      clients: options.clients,
      warmupMs: options.warmup * MS_PER_S,
      durationMs: options.duration * MS_PER_S,
    });
    report(
      `(a) throughput: ${options.clients} clients posting batches of ${options.batch} events ` +
        `(goal ≥ ${GOAL_EVENTS_PER_S} events/s)`,
      throughput,
    );
  } finally {
    await target.stop();
    await database.drop();
  }
}

// ---- load generator (runs inside the worker) ----

async function post(url: string, body: string, result: Mutable<PhaseResult>): Promise<void> {
  try {
    const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
    const text = await response.text();
    if (response.status === 202) result.events += JSON.parse(text).accepted;
    else result.errors[response.status] = (result.errors[response.status] ?? 0) + 1;
  } catch (error) {
    const name = (error as Error).name;
    result.errors[name] = (result.errors[name] ?? 0) + 1;
  }
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function emptyResult(): Mutable<PhaseResult> {
  return { requests: 0, events: 0, errors: {}, seconds: 0, latenciesMs: [] };
}

async function throughputPhase(job: Job): Promise<PhaseResult> {
  const warm = emptyResult();
  const measured = emptyResult();
  const start = performance.now();
  const measureFrom = start + job.warmupMs;
  const end = measureFrom + job.durationMs;
  const client = async (n: number) => {
    for (let i = n; performance.now() < end; i += job.clients) {
      const sent = performance.now();
      const result = sent < measureFrom ? warm : measured;
      await post(job.url, job.bodies[i % job.bodies.length], result);
      result.requests++;
      result.latenciesMs.push(performance.now() - sent);
    }
  };
  await Promise.all(Array.from({ length: job.clients }, (_, n) => client(n)));
  measured.seconds = (performance.now() - measureFrom) / MS_PER_S;
  return measured;
}

/** The worker's view of its global scope. */
interface WorkerScope {
  onmessage: ((message: MessageEvent<Job>) => void) | null;
  postMessage(message: PhaseResult): void;
}

if ("WorkerGlobalScope" in globalThis) {
  const scope = globalThis as unknown as WorkerScope;
  scope.onmessage = async (message) => {
    scope.postMessage(await throughputPhase(message.data));
  };
}
