/**
 * Query routes while PostgreSQL is down: every one answers 503 with Retry-After and the
 * `database_unavailable` problem type, and nothing of the driver's error (hosts, users, messages)
 * reaches the response. The state reader is the engine's own, over a checkpoint store that fails.
 */
import assert from "node:assert/strict";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import type { Sql } from "../../engine/database.ts";
import type { ActorRuntime } from "../../engine/runtime.ts";
import { createStateReader, type StateReader } from "../../engine/state_reader.ts";
import { BASE, httpFixture } from "./http_fixture.ts";

/** What a driver might say: none of it may reach a client. */
const INTERNALS = 'password authentication failed for user "engine" at 10.1.2.3:5432';
const LEAKS = /10\.1\.2\.3|password|engine"|5432|cannot read|checkpoint|stack|\.ts:\d+/i;

/** A `sql` whose every query fails, when awaited, as a lost database does (fragments are only awaited as parts). */
const downSql = new Proxy(() => {}, {
  apply: () => ({ then: (_: unknown, reject: (error: Error) => void) => reject(new Error(INTERNALS)) }),
  get: () => {
    throw new Error(INTERNALS);
  },
}) as unknown as Sql;

/** The engine's state reader with nothing in memory and its checkpoint store down. */
function downReader(): StateReader {
  const store = new MemoryCheckpointStore();
  store.failWith = new Error(INTERNALS);
  const runtime = { lookup: () => undefined, owned: () => [] } as unknown as ActorRuntime;
  return createStateReader(runtime, store);
}

/** A reader that knows no actor: the routes go on to their SQL. */
const emptyReader: StateReader = { read: () => Promise.resolve(null) };

async function assertDatabaseUnavailable(response: Response, path: string): Promise<void> {
  const text = await response.text();
  assert.equal(response.status, 503, `${path}: ${text}`);
  assert.match(response.headers.get("retry-after") ?? "", /^[1-9]\d*$/, `${path}: Retry-After in seconds`);
  assert.equal(response.headers.get("content-type"), "application/problem+json", path);
  const body = JSON.parse(text);
  assert.equal(body.type, "urn:actor-engine:problem:database_unavailable", path);
  assert.equal(body.status, 503, path);
  assert.equal(typeof body.title, "string", path);
  assert.deepEqual(Object.keys(body).filter((k) => !["type", "title", "status", "detail"].includes(k)), [], path);
  assert.doesNotMatch(text, LEAKS, `${path}: no internal details`);
}

Deno.test("state and analytics routes answer 503 with Retry-After, and no internals, when the checkpoint store is down", async () => {
  const { handle } = await httpFixture(downReader());
  for (
    const path of [
      "/v1/users/alice",
      "/v1/products/p1",
      "/v1/products/p1/related",
      "/v1/analytics/realtime",
      "/v1/analytics/funnel",
      "/v1/analytics/top-products",
      "/v1/analytics/top-categories",
    ]
  ) {
    await assertDatabaseUnavailable(await handle(new Request(`${BASE}${path}`)), path);
  }
});

Deno.test("routes that query PostgreSQL answer 503 with Retry-After, and no internals, when it is down", async () => {
  const { handle } = await httpFixture(emptyReader, undefined, downSql);
  for (
    const path of [
      "/v1/alerts",
      "/v1/alerts?type=low_traffic&limit=5",
      "/v1/users/alice/recommendations",
      "/v1/analytics/realtime",
      "/v1/analytics/top-products?window=all",
      "/v1/analytics/top-products?window=1h&by=revenue",
      "/v1/analytics/top-categories",
    ]
  ) {
    await assertDatabaseUnavailable(await handle(new Request(`${BASE}${path}`)), path);
  }
});
