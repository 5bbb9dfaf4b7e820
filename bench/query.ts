// deno-lint-ignore-file no-console
/**
 * `deno task bench query [--users N] [--rate R] [--duration S]`: p50/p99 of GET /v1/users/{id} and
 * GET /v1/products/{id} at a fixed rate, for keys in the instance's memory.
 */
import { type Config, parseConfig, topicNames } from "../engine/config.ts";
import { partitionForKey } from "../engine/partitioner.ts";
import { type RunningEngine, startEngine } from "../engine/engine.ts";
import { createLogger } from "../engine/logger.ts";
import { benchDatabase } from "./database.ts";
import { printResult, runFixedRate } from "./fixed_rate.ts";
import { spawnInstance } from "./instance.ts";
import { flag, machine } from "./workload.ts";

const GOAL_MEMORY_P99_MS = 5;
const GOAL_ROUTED_P99_MS = 20;
const EVENTS_PER_USER = 5;
const PRODUCTS = 500;
const POST_BATCH = 500;

/** Runs the benchmark and prints its figures. */
export async function run(args: string[]): Promise<void> {
  const users = flag(args, "users", 5_000);
  const rate = flag(args, "rate", 1_000);
  const durationS = flag(args, "duration", 10);
  const id = `q${Date.now().toString(36)}`;
  const database = await benchDatabase(Deno.env.get("DATABASE_URL"));
  const config = parseConfig({
    KAFKA_BROKERS: Deno.env.get("KAFKA_BROKERS"),
    DATABASE_URL: database.url,
    TOPIC_PREFIX: `${id}.`,
    GROUP_ID: `${id}-group`,
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
  });
  const engine = await startEngine(config, createLogger("warn"));
  try {
    console.log(`loading ${users} users (${users * EVENTS_PER_USER} events) through HTTP...`);
    const at = new Date(Date.now() - 3_600_000).toISOString();
    const events = [];
    for (let u = 0; u < users; u++) {
      for (let k = 0; k < EVENTS_PER_USER; k++) {
        events.push({
          type: "product_viewed",
          userId: `user-${u}`,
          occurredAt: at,
          properties: { productId: `sku-${(u * 7 + k) % PRODUCTS}`, price: 10 },
        });
      }
    }
    for (let i = 0; i < events.length; i += POST_BATCH) {
      const response = await fetch(`${engine.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(events.slice(i, i + POST_BATCH)),
      });
      if (response.status !== 202) throw new Error(`load failed: ${response.status} ${await response.text()}`);
      await response.body?.cancel();
    }
    while (engine.runtime.lookup("user", `user-${users - 1}`) === undefined) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const userRequests = Array.from(
      { length: users },
      (_, u) => ({ url: `${engine.url}/v1/users/user-${(u * 7919) % users}` }),
    );
    const productRequests = Array.from({ length: PRODUCTS }, (_, p) => ({ url: `${engine.url}/v1/products/sku-${p}` }));
    const job = { rate, warmupMs: 2_000, durationMs: durationS * 1_000 };
    console.log(`\nmachine: ${await machine()}`);
    console.log(`command: deno task bench query --users ${users} --rate ${rate} --duration ${durationS}`);
    console.log(`goal: in-memory p99 <= ${GOAL_MEMORY_P99_MS} ms\n`);
    printResult(`GET /v1/users/{id} (in memory) at ${rate}/s`, await runFixedRate({ ...job, requests: userRequests }));
    printResult(
      `GET /v1/products/{id} (in memory) at ${rate}/s`,
      await runFixedRate({ ...job, requests: productRequests }),
    );
    await measureRouted(engine, config, users, job);
  } finally {
    await engine.stop();
    await database.drop();
  }
}

/**
 * Routed keys: a second instance (a real process) joins the group and takes about half of the
 * partitions; queries sent to this instance for keys it no longer owns are forwarded to the owner.
 */
async function measureRouted(
  engine: RunningEngine,
  config: Config,
  users: number,
  job: { rate: number; warmupMs: number; durationMs: number },
): Promise<void> {
  const second = spawnInstance(config);
  try {
    const events = topicNames(config).events;
    const remote = () =>
      Array.from({ length: users }, (_, u) => `user-${u}`)
        .filter((key) => !engine.runtime.owned().includes(`${events}:${partitionForKey(key, config.PARTITIONS)}`));
    const deadline = Date.now() + 60_000;
    while (remote().length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 500));
    const keys = remote();
    if (keys.length === 0) throw new Error("the second instance took no partitions within 60 s");
    // The new owner resumed from the checkpoints, so these users are not in its memory yet: one
    // more event each brings them in, and the figures are those of live state on the owner.
    const at = new Date(Date.now() - 3_600_000).toISOString();
    for (let i = 0; i < keys.length; i += POST_BATCH) {
      const response = await fetch(`${engine.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(
          keys.slice(i, i + POST_BATCH).map((userId) => ({
            type: "page_viewed",
            userId,
            occurredAt: at,
            properties: { url: "/" },
          })),
        ),
      });
      if (response.status !== 202) throw new Error(`load failed: ${response.status} ${await response.text()}`);
      await response.body?.cancel();
    }
    for (const key of [keys[0], keys[keys.length - 1]]) {
      while (true) {
        if (Date.now() > deadline) throw new Error(`${key} is not live on its owner within 60 s`);
        const body = await (await fetch(`${engine.url}/v1/users/${key}`)).json();
        if (body.instance && body.instance !== engine.instanceId && body.source === "memory") break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    const routed = await runFixedRate({
      ...job,
      requests: keys.map((key) => ({ url: `${engine.url}/v1/users/${key}` })),
    });
    console.log(`\ngoal: routed p99 <= ${GOAL_ROUTED_P99_MS} ms (${keys.length} keys owned by the other instance)`);
    printResult(`GET /v1/users/{id} (routed to the owner, live in its memory) at ${job.rate}/s`, routed);
  } finally {
    await second.stop();
  }
}
