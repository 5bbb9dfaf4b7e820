// deno-lint-ignore-file no-console
/**
 * `deno task bench query [--users N] [--rate R] [--duration S]`: p50/p99 of GET /v1/users/{id} and
 * GET /v1/products/{id} at a fixed rate, for keys in the instance's memory.
 */
import { parseConfig } from "../engine/config.ts";
import { startEngine } from "../engine/engine.ts";
import { createLogger } from "../engine/logger.ts";
import { printResult, runFixedRate } from "./fixed_rate.ts";

const GOAL_MEMORY_P99_MS = 5;
const EVENTS_PER_USER = 5;
const PRODUCTS = 500;
const POST_BATCH = 500;

function flag(args: string[], name: string, fallback: number): number {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
}

/** Runs the benchmark and prints its figures. */
export async function run(args: string[]): Promise<void> {
  const users = flag(args, "users", 5_000);
  const rate = flag(args, "rate", 1_000);
  const durationS = flag(args, "duration", 10);
  const id = `q${Date.now().toString(36)}`;
  const config = parseConfig({
    KAFKA_BROKERS: Deno.env.get("KAFKA_BROKERS"),
    DATABASE_URL: Deno.env.get("DATABASE_URL"),
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
    console.log(`\nmachine: ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`);
    console.log(`command: deno task bench query --users ${users} --rate ${rate} --duration ${durationS}`);
    console.log(`goal: in-memory p99 <= ${GOAL_MEMORY_P99_MS} ms\n`);
    printResult(`GET /v1/users/{id} (in memory) at ${rate}/s`, await runFixedRate({ ...job, requests: userRequests }));
    printResult(
      `GET /v1/products/{id} (in memory) at ${rate}/s`,
      await runFixedRate({ ...job, requests: productRequests }),
    );
  } finally {
    await engine.stop();
  }
}
