/**
 * State queries while PostgreSQL is frozen (connections open, no answers): a key owned by another instance, or not in
 * memory, is answered 503 naming the database within QUERY_DATABASE_TIMEOUT_MS, not held until the database answers;
 * and the queries abandoned meanwhile share one owner lookup per partition and one checkpoint read per key.
 */
import assert from "node:assert/strict";
import type { CheckpointStore } from "../../engine/checkpoint.ts";
import { DatabaseUnavailableError } from "../../engine/errors.ts";
import type { PartitionOwner } from "../../engine/instance_registry.ts";
import type { ActorRuntime } from "../../engine/runtime.ts";
import { createStateReader, QUERY_DATABASE_TIMEOUT_MS, type StateRouting } from "../../engine/state_reader.ts";
import { BASE, httpFixture } from "./http_fixture.ts";

/** A database that never answers: every query on it stays in flight. */
const frozen = <T>(): Promise<T> => new Promise<T>(() => {});

/** How long past the bound a test gives an answer before it calls the query hung. */
const MARGIN_MS = 3_000;

/** Nothing in memory, no partition held: every key's owner is looked up, its checkpoint read. */
const emptyRuntime = { lookup: () => undefined, owned: () => [] } as unknown as ActorRuntime;

/** `promise`'s outcome; fails the test if it has none within the bound and the margin (the query hung). */
async function settled<T>(promise: Promise<T>, what: string): Promise<{ value: T } | { error: unknown }> {
  const ms = QUERY_DATABASE_TIMEOUT_MS + MARGIN_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<"hung">((resolve) => timer = setTimeout(() => resolve("hung"), ms));
  try {
    const outcome = await Promise.race([promise.then((value) => ({ value }), (error) => ({ error })), hung]);
    if (outcome === "hung") assert.fail(`${what}: no answer within ${ms} ms`);
    return outcome;
  } finally {
    clearTimeout(timer);
  }
}

/** A store whose checkpoint reads are counted and never answered. */
function frozenStore(reads: string[]): CheckpointStore {
  return {
    read: (kind: string, key: string) => (reads.push(`${kind}/${key}`), frozen()),
  } as unknown as CheckpointStore;
}

/** Routing whose owner lookups are counted and never answered. */
function frozenRouting(lookups: number[]): StateRouting {
  return {
    registry: { instanceId: "self", owner: (_topic, partition) => (lookups.push(partition), frozen<PartitionOwner>()) },
    forwardSecret: "secret",
    kinds: {
      global: { topic: "analytics", partitions: 1 },
      user: { topic: "events", partitions: 6, path: (key) => `/v1/users/${key}` },
      product: { topic: "product-events", partitions: 6, path: (key) => `/v1/products/${key}` },
    },
    fetch: () => Promise.reject(new Error("no owner is asked: none was found")),
  };
}

async function assertDatabaseProblem(response: Response, what: string): Promise<void> {
  const text = await response.text();
  assert.equal(response.status, 503, `${what}: ${text}`);
  assert.match(response.headers.get("retry-after") ?? "", /^[1-9]\d*$/, `${what}: Retry-After`);
  assert.equal(JSON.parse(text).type, "urn:actor-engine:problem:database_unavailable", what);
}

Deno.test("a user or product owned elsewhere is a 503 naming the database, in bounded time, while its owner lookup is unanswered", async () => {
  const lookups: number[] = [];
  const { handle } = await httpFixture(createStateReader(emptyRuntime, frozenStore([]), frozenRouting(lookups)));
  for (const path of ["/v1/users/alice", "/v1/products/p1"]) {
    const started = performance.now();
    const outcome = await settled(handle(new Request(`${BASE}${path}`)), path);
    assert.ok("value" in outcome, path);
    await assertDatabaseProblem(outcome.value, path);
    assert.ok(performance.now() - started < QUERY_DATABASE_TIMEOUT_MS + MARGIN_MS, path);
  }
  assert.equal(lookups.length, 2, "one owner lookup per query's partition");
});

Deno.test("a key not in memory is a 503 naming the database, in bounded time, while its checkpoint read is unanswered", async () => {
  const reads: string[] = [];
  // Without routing (one instance): the checkpoint is the only place to ask.
  const { handle } = await httpFixture(createStateReader(emptyRuntime, frozenStore(reads)));
  const outcome = await settled(handle(new Request(`${BASE}/v1/users/alice`)), "/v1/users/alice");
  assert.ok("value" in outcome);
  await assertDatabaseProblem(outcome.value, "/v1/users/alice");
  assert.deepEqual(reads, ["user/alice"]);
});

Deno.test("an analytics query whose owner lookup is unanswered fails as the database unavailable, in bounded time", async () => {
  const reader = createStateReader(emptyRuntime, frozenStore([]), frozenRouting([]));
  const request = new Request(`${BASE}/v1/analytics/funnel`);
  const outcome = await settled(reader.route("global", "global", request), "the analytics query");
  assert.ok("error" in outcome, "the query does not go on as if no instance owned the partition");
  assert.ok(outcome.error instanceof DatabaseUnavailableError, String(outcome.error));
});

Deno.test("checkpoint reads abandoned while PostgreSQL is frozen are shared per key, not asked again per query", async () => {
  const reads: string[] = [];
  const answers = new Map<string, (value: { state: unknown; updatedAt: Date } | null) => void>();
  let frozenNow = true;
  const store = {
    read: (kind: string, key: string) => {
      reads.push(`${kind}/${key}`);
      return frozenNow ? new Promise((resolve) => answers.set(key, resolve)) : Promise.resolve(null);
    },
  } as unknown as CheckpointStore;
  const reader = createStateReader(emptyRuntime, store);
  // Each abandoned read is a query left on the pool: one per client query piled up, all run once it answered.
  for (let n = 1; n <= 3; n++) {
    const outcome = await settled(reader.read("user", "alice"), `query ${n}`);
    assert.ok("error" in outcome, `query ${n} answers the database unavailable`);
    assert.ok(outcome.error instanceof DatabaseUnavailableError, `query ${n}: ${outcome.error}`);
  }
  assert.deepEqual(reads, ["user/alice"], "one checkpoint read in flight for three queries of the key");
  const bob = reader.read("user", "bob");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(reads, ["user/alice", "user/bob"], "another key's read is its own");
  answers.get("bob")!(null);
  assert.equal(await bob, null);
  // Answered, the next query reads again.
  frozenNow = false;
  answers.get("alice")!({ state: { userId: "alice" }, updatedAt: new Date(0) });
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(await reader.read("user", "alice"), null);
  assert.equal(reads.length, 3);
});
