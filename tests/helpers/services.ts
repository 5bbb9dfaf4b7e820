/**
 * Access to the real Kafka broker and PostgreSQL server that scripts/services.sh started.
 * Integration tests fail (never skip) when they are missing.
 */
import postgres from "postgres";
import { type Config, parseConfig } from "../../engine/config.ts";

/** The broker list and server URL exported by scripts/services.sh. */
export function services(): { kafkaBrokers: string; databaseUrl: string } {
  const kafkaBrokers = Deno.env.get("KAFKA_BROKERS");
  const databaseUrl = Deno.env.get("DATABASE_URL");
  if (!kafkaBrokers || !databaseUrl) {
    throw new Error(
      "integration tests need KAFKA_BROKERS and DATABASE_URL: run them with `deno task test` (scripts/services.sh)",
    );
  }
  return { kafkaBrokers, databaseUrl };
}

/**
 * KAFKA_SESSION_TIMEOUT_MS of the tests that wait for a killed or frozen instance's partitions (and of every join after
 * a kill): the least a broker accepts by default (group.min.session.timeout.ms), 4 s less per wait than the engine's
 * default. Lower would need the broker's minimum lowered, and risks dropping an instance whose thread the loaded test
 * machine stalls (a spurious rebalance).
 */
export const FAILOVER_SESSION = { KAFKA_SESSION_TIMEOUT_MS: "6000" } as const;

/** A short random suffix that keeps each test's topics, group and database apart. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`;
}

/** Creates an empty database on the test server; returns its URL and a function that drops it. */
export async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const { databaseUrl } = services();
  const name = uniqueName("test");
  const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(databaseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

/** A production-mode configuration on the test services, isolated by prefix, group and database. */
export function testConfig(databaseUrl: string, overrides: Record<string, string> = {}): Config {
  const { kafkaBrokers } = services();
  const id = uniqueName("t");
  return parseConfig({
    KAFKA_BROKERS: kafkaBrokers,
    DATABASE_URL: databaseUrl,
    TOPIC_PREFIX: `${id}.`,
    GROUP_ID: `${id}-group`,
    PORT: "0",
    HOST: "127.0.0.1",
    PARTITIONS: "3",
    CHECKPOINT_INTERVAL_MS: "200",
    LOG_LEVEL: "warn",
    ...overrides,
  });
}

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 20_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ""}`);
}

/** `promise`, or a failure naming `what` after `ms`: a client that hangs fails the test instead of stalling it. */
export function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
