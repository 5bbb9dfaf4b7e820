/**
 * The real HTTP handler (every route: ingestion, state, queries, operations) over an in-memory log
 * and a stub state reader, for HTTP unit tests. Query routes get a database that fails if reached.
 */
import { topicNames } from "../../engine/config.ts";
import type { Sql } from "../../engine/database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import type { StateReader } from "../../engine/state_reader.ts";
import { operationsRoutes } from "../../http/operations_routes.ts";
import { type QueryDeps, queryRoutes } from "../../http/query_routes.ts";
import type { Route } from "../../http/router.ts";
import { buildRoutes, type RouteDeps } from "../../http/routes.ts";
import { createHandler } from "../../http/server.ts";

/** Fixed "now" of the fixture, so that future-dated checks are deterministic. */
export const FIXTURE_NOW = Date.parse("2026-11-22T12:00:00.000Z");
/** Small limits, so that 413s are cheap to provoke. */
export const FIXTURE_LIMITS = { maxEvents: 50, maxBodyBytes: 64 * 1024 } as const;
/** MAX_INGEST_PENDING_BYTES of the fixture: the in-memory log answers at once, so it is never reached. */
export const FIXTURE_MAX_PENDING_BYTES = 32 * 1024 * 1024;
/** Partitions per topic of the in-memory log. */
export const FIXTURE_PARTITIONS = 3;
/** The group's forward secret of the fixture's handler: a request is forwarded when its header carries it. */
export const FIXTURE_FORWARD_SECRET = "fixture-forward-secret";
/** Base URL of requests; the handler never listens on it. */
export const BASE = "http://engine.test";

/** A `sql` that fails the test if any query runs. */
export const noSql = new Proxy(() => {}, {
  apply: () => {
    throw new Error("SQL must not be reached");
  },
  get: () => {
    throw new Error("SQL must not be reached");
  },
}) as unknown as Sql;

/** A handler plus the log and the route table behind it. */
export interface HttpFixture {
  readonly log: MemoryLog;
  readonly topics: RouteDeps["topics"];
  readonly routes: readonly Route[];
  readonly handle: (request: Request) => Promise<Response>;
}

/** Builds the handler; `reader` defaults to one that knows user "alice" only, `sql` to one that must not be reached. */
export async function httpFixture(
  reader: StateReader = aliceOnly,
  limits: { maxEvents: number; maxBodyBytes: number; bodyIdleTimeoutMs?: number } = FIXTURE_LIMITS,
  sql: Sql = noSql,
  /** Query settings of the engine's own (engine.ts passes them from the configuration). */
  query: Partial<Pick<QueryDeps, "coBoughtWeight" | "trending" | "alertRetentionDays">> = {},
): Promise<HttpFixture> {
  const log = new MemoryLog(() => FIXTURE_NOW);
  const topics = topicNames({ TOPIC_PREFIX: "" });
  await log.ensureTopics(Object.values(topics).map((topic) => ({ topic, partitions: FIXTURE_PARTITIONS })));
  const routes = buildRoutes({
    producer: log.producer(),
    topics,
    reader,
    ingest: { rules: { maxFutureMs: 5 * 60_000 }, maxPendingBytes: FIXTURE_MAX_PENDING_BYTES, ...limits },
    now: () => FIXTURE_NOW,
    extra: [
      ...queryRoutes({ reader, sql, now: () => FIXTURE_NOW, ...query }),
      ...operationsRoutes({
        checks: { database: () => Promise.resolve({ ok: true }) },
        metrics: () => Promise.resolve({ body: "", contentType: "text/plain; version=0.0.4" }),
      }),
    ],
  });
  return { log, topics, routes, handle: createHandler(routes, silentLogger, undefined, FIXTURE_FORWARD_SECRET) };
}

const aliceOnly: StateReader = {
  read: (kind, key) =>
    Promise.resolve(kind === "user" && key === "alice" ? { state: { userId: "alice" }, source: "memory" } : null),
};

/** A POST of `body` to /v1/events with `contentType` (none when null). */
export function postEvents(body: BodyInit | null, contentType: string | null = "application/json"): Request {
  const headers = new Headers();
  if (contentType !== null) headers.set("content-type", contentType);
  // A Uint8Array body gets no implicit content type, unlike a string body.
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  return new Request(`${BASE}/v1/events`, { method: "POST", headers, body: bytes });
}

/** A valid page view of `userId`. */
export function pageView(userId: string, url = "https://shop.example/"): Record<string, unknown> {
  return { type: "page_viewed", userId, properties: { url } };
}
