/**
 * The query routes' own SQL while PostgreSQL is frozen (connections open, no answers): realtime analytics, rankings,
 * the analytics history, alerts and recommendations are each a 503 naming the database within
 * QUERY_DATABASE_TIMEOUT_MS, not held until the database answers; and identical requests abandoned meanwhile share
 * one query instead of piling one each on the pool.
 */
import assert from "node:assert/strict";
import type { AnalyticsFact } from "../../actors/facts.ts";
import { createGlobalLogic } from "../../actors/global.ts";
import { domainSettings } from "../../actors/settings.ts";
import type { Sql } from "../../engine/database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { QUERY_DATABASE_TIMEOUT_MS, type StateReader } from "../../engine/state_reader.ts";
import { queryRoutes } from "../../http/query_routes.ts";
import { createHandler } from "../../http/server.ts";
import { runGlobal } from "../helpers/global_actor.ts";
import { BASE } from "./http_fixture.ts";

const MIN = 60_000;
const END = Date.UTC(2026, 2, 10, 12, 0, 0);
/** How long past the bound a test gives an answer before it calls the request hung. */
const MARGIN_MS = 2_000;

/** A `sql` that never answers: each query awaited (not a fragment) is counted and stays in flight. */
function frozenSql(queries: { count: number }): Sql {
  const never = { then: () => void queries.count++ };
  return ((..._args: unknown[]) => never) as unknown as Sql;
}

/** The global actor's state in memory, one page view and one product view a minute ago (a 60-minute memory). */
function globalInMemory(): StateReader {
  const settings = domainSettings({ ANALYTICS_RETENTION_MINUTES: 60 });
  const facts = [
    { fact: "activity", factId: "f-page", at: END - MIN, userId: "u1", session: "s1", type: "page_viewed" },
    { fact: "activity", factId: "f-product", at: END - MIN + 1, userId: "u1", session: "s1", type: "product_viewed" },
  ] as AnalyticsFact[];
  const { state } = runGlobal(settings, facts);
  const persisted = createGlobalLogic(settings).persist(state);
  return {
    read: (kind) => Promise.resolve(kind === "global" ? { state: persisted, source: "memory" } : null),
  };
}

/** The query routes' handler over a frozen database, the global actor in memory. */
function frozenHandler(queries: { count: number }): (request: Request) => Promise<Response> {
  return createHandler(
    queryRoutes({ reader: globalInMemory(), sql: frozenSql(queries), now: () => END }),
    silentLogger,
  );
}

/** `path`'s answer; fails the test if there is none within the bound and the margin (the request hung). */
async function answer(handle: (request: Request) => Promise<Response>, path: string): Promise<Response> {
  const ms = QUERY_DATABASE_TIMEOUT_MS + MARGIN_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<"hung">((resolve) => timer = setTimeout(() => resolve("hung"), ms));
  try {
    const outcome = await Promise.race([handle(new Request(`${BASE}${path}`)), hung]);
    if (outcome === "hung") assert.fail(`${path}: no answer within ${ms} ms`);
    return outcome;
  } finally {
    clearTimeout(timer);
  }
}

async function assertDatabaseProblem(response: Response, what: string): Promise<void> {
  const text = await response.text();
  assert.equal(response.status, 503, `${what}: ${text}`);
  assert.match(response.headers.get("retry-after") ?? "", /^[1-9]\d*$/, `${what}: Retry-After`);
  assert.equal(JSON.parse(text).type, "urn:actor-engine:problem:database_unavailable", what);
}

/** Asks each of `paths` over a frozen database; each must be a 503 naming the database in bounded time. */
async function assertEachUnavailable(paths: readonly string[]): Promise<void> {
  const queries = { count: 0 };
  const handle = frozenHandler(queries);
  for (const path of paths) await assertDatabaseProblem(await answer(handle, path), path);
  assert.ok(queries.count >= paths.length, `each request reached the database (${queries.count} queries)`);
}

Deno.test("realtime analytics, its top products unanswered, is a 503 naming the database in bounded time", async () => {
  await assertEachUnavailable(["/v1/analytics/realtime"]);
});

Deno.test("top products (windowed and window=all) and top categories, unanswered, are 503s naming the database in bounded time", async () => {
  await assertEachUnavailable([
    "/v1/analytics/top-products?window=1h",
    "/v1/analytics/top-products?window=all",
    "/v1/analytics/top-categories?window=1h",
  ]);
});

Deno.test("a funnel reaching before the global actor's memory, its history unanswered, is a 503 naming the database in bounded time", async () => {
  await assertEachUnavailable(["/v1/analytics/funnel?window=24h"]);
});

Deno.test("alerts, in either order, unanswered, are 503s naming the database in bounded time", async () => {
  await assertEachUnavailable(["/v1/alerts", "/v1/alerts?order=stored"]);
});

Deno.test("a user's recommendations, unanswered, are a 503 naming the database in bounded time", async () => {
  await assertEachUnavailable(["/v1/users/alice/recommendations"]);
});

Deno.test("identical requests abandoned while PostgreSQL is frozen share one query; others ask their own", async () => {
  const queries = { count: 0 };
  const handle = frozenHandler(queries);
  for (let n = 1; n <= 3; n++) {
    await assertDatabaseProblem(await answer(handle, "/v1/alerts?limit=5"), `request ${n}`);
  }
  assert.equal(queries.count, 1, "one query in flight for three identical requests");
  await assertDatabaseProblem(await answer(handle, "/v1/alerts?limit=6"), "another limit");
  assert.equal(queries.count, 2, "a request of other parameters asks its own");
});
