/**
 * The query routes validate their parameters before touching the database: a bad `window`,
 * `limit`, `by` or `since` is a 400 problem naming the parameter; unknown ids are 404s.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../../engine/logger.ts";
import type { StateReader } from "../../engine/state_reader.ts";
import { API_INFO } from "../../http/routes.ts";
import { openApiDocument } from "../../http/openapi.ts";
import { queryRoutes } from "../../http/query_routes.ts";
import { createHandler } from "../../http/server.ts";
import { httpFixture, noSql } from "./http_fixture.ts";

const BASE = "http://engine.test";
const NOW = Date.parse("2026-11-22T12:00:00.000Z");

/** Knows product "p1" (with three related products) and no global state. */
const reader: StateReader = {
  read: (kind, key) =>
    Promise.resolve(
      kind === "product" && key === "p1"
        ? {
          state: {
            productId: "p1",
            related: [{ productId: "p2", score: 3 }, { productId: "p3", score: 2 }, { productId: "p4", score: 1 }],
          },
          source: "memory",
        }
        : null,
    ),
};

const handle = createHandler(queryRoutes({ reader, sql: noSql, now: () => NOW }), silentLogger);

async function get(
  path: string,
): Promise<{ status: number; contentType: string | null; body: Record<string, unknown> }> {
  const response = await handle(new Request(`${BASE}${path}`));
  return { status: response.status, contentType: response.headers.get("content-type"), body: await response.json() };
}

async function assertBadParameter(path: string, parameter: string): Promise<void> {
  const { status, contentType, body } = await get(path);
  assert.equal(status, 400, `${path}: ${JSON.stringify(body)}`);
  assert.equal(contentType, "application/problem+json");
  const errors = body.errors as { path: string; message: string }[];
  assert.ok(Array.isArray(errors) && errors.length > 0, `${path}: lists the problems`);
  assert.deepEqual([...new Set(errors.map((e) => e.path))], [parameter], `${path}: names ${parameter}`);
  assert.ok(errors.every((e) => e.message.length > 0));
}

Deno.test("GET /v1/analytics/funnel rejects a window that is not 1m, 5m, 15m, 1h, 24h, 7d or 30d", async () => {
  for (const window of ["2m", "", "15", "1d", "15M"]) {
    await assertBadParameter(`/v1/analytics/funnel?window=${window}`, "window");
  }
});

Deno.test("GET /v1/analytics/funnel answers zeros for every valid window before any event", async () => {
  const windows = [["1m", 1], ["5m", 5], ["15m", 15], ["1h", 60], ["24h", 1440], ["7d", 10_080], ["30d", 43_200]];
  for (const [window, minutes] of windows) {
    const { status, body } = await get(`/v1/analytics/funnel?window=${window}`);
    assert.equal(status, 200);
    assert.equal(body.window, window);
    assert.equal(body.minutes, minutes);
    assert.equal(body.to, new Date(NOW).toISOString());
    assert.deepEqual(body.steps, { productViewed: 0, addedToCart: 0, checkoutStarted: 0, orderCompleted: 0 });
    assert.equal(body.fromStorage, false, "no global state: nothing read from storage");
  }
  const { body } = await get("/v1/analytics/funnel");
  assert.equal(body.window, "15m", "15m by default");
});

Deno.test("GET /v1/analytics/top-products rejects an unknown `by` and a `limit` out of 1..100", async () => {
  await assertBadParameter("/v1/analytics/top-products?by=clicks", "by");
  await assertBadParameter("/v1/analytics/top-products?by=", "by");
  for (const limit of ["0", "101", "-1", "abc", "2.5", ""]) {
    await assertBadParameter(`/v1/analytics/top-products?limit=${limit}`, "limit");
  }
  const { body } = await get("/v1/analytics/top-products?by=clicks&limit=0");
  assert.deepEqual(
    [...new Set((body.errors as { path: string }[]).map((e) => e.path))].sort(),
    ["by", "limit"],
    "every offending parameter is listed",
  );
});

Deno.test("GET /v1/alerts rejects an invalid `since`, `type` or `limit`", async () => {
  for (const since of ["yesterday", "2026-11-22", "2026-11-22T12:00:00", "2026-13-01T00:00:00Z"]) {
    await assertBadParameter(`/v1/alerts?since=${encodeURIComponent(since)}`, "since");
  }
  await assertBadParameter("/v1/alerts?type=", "type");
  await assertBadParameter(`/v1/alerts?type=${"x".repeat(65)}`, "type");
  await assertBadParameter("/v1/alerts?type=cart%00", "type");
  await assertBadParameter("/v1/alerts?limit=501", "limit");
  await assertBadParameter("/v1/alerts?limit=0", "limit");
});

Deno.test("GET /v1/alerts takes a `since` written with a lower-case t and z, as RFC 3339 allows", async () => {
  // Accepted: the query goes on to the database, which this fixture does not have (503).
  assert.equal((await get("/v1/alerts?since=2026-11-22t12:00:00z")).status, 503);
  assert.equal((await get("/v1/alerts?since=2026-11-22t12:00:00%2B01:00")).status, 503);
  await assertBadParameter("/v1/alerts?since=2026-11-22x12:00:00z", "since");
});

Deno.test("GET /v1/products/{id}/related validates `limit`, answers 404 for unknown products and truncates", async () => {
  await assertBadParameter("/v1/products/p1/related?limit=0", "limit");
  await assertBadParameter("/v1/products/p1/related?limit=101", "limit");
  const missing = await get("/v1/products/nope/related");
  assert.equal(missing.status, 404);
  assert.equal(missing.contentType, "application/problem+json");
  const { status, body } = await get("/v1/products/p1/related?limit=2");
  assert.equal(status, 200);
  assert.deepEqual(body.items, [{ productId: "p2", score: 3 }, { productId: "p3", score: 2 }]);
  assert.equal(body.source, "memory");
  assert.equal(((await get("/v1/products/p1/related")).body.items as unknown[]).length, 3);
});

Deno.test("GET /v1/analytics/top-products and top-categories reject a window outside the funnel's (or `all`)", async () => {
  for (const window of ["2m", "", "1d", "15M"]) {
    await assertBadParameter(`/v1/analytics/top-products?window=${window}`, "window");
    await assertBadParameter(`/v1/analytics/top-categories?window=${window}`, "window");
  }
  await assertBadParameter("/v1/analytics/top-categories?window=all", "window");
  await assertBadParameter("/v1/analytics/top-categories?by=popularity", "by");
});

Deno.test("the query routes document themselves in the OpenAPI document", () => {
  const document = openApiDocument(queryRoutes({ reader, sql: noSql, now: () => NOW }), API_INFO) as {
    paths: Record<string, Record<string, unknown>>;
  };
  for (
    const path of [
      "/v1/users/{id}/recommendations",
      "/v1/products/{id}/related",
      "/v1/analytics/realtime",
      "/v1/analytics/funnel",
      "/v1/analytics/top-products",
      "/v1/analytics/top-categories",
      "/v1/alerts",
    ]
  ) assert.ok(document.paths[path]?.get, `documents GET ${path}`);
});

Deno.test("an id longer than any user or product id can be is a 404 on every route, without a read or a query", async () => {
  const reads: string[] = [];
  const { handle } = await httpFixture({
    read: (kind, key) => (reads.push(`${kind} ${key.length}`), Promise.resolve(null)),
  });
  const paths = [
    `/v1/users/${"u".repeat(129)}`,
    `/v1/users/${"u".repeat(129)}/recommendations`,
    `/v1/products/${"p".repeat(257)}`,
    `/v1/products/${"p".repeat(257)}/related`,
    `/v1/users/${"%3A".repeat(20_000)}`,
  ];
  for (const path of paths) {
    const response = await handle(new Request(`${BASE}${path}`));
    assert.equal(response.status, 404, path.slice(0, 40));
    assert.equal((await response.json()).type, "urn:actor-engine:problem:not_found");
  }
  // The database (which the fixture's SQL refuses) is not queried, nor the state read.
  assert.deepEqual(reads, []);
  // At the longest an id can be, the state is read.
  for (const path of [`/v1/users/${"u".repeat(128)}`, `/v1/products/${"p".repeat(256)}/related`]) {
    assert.equal((await handle(new Request(`${BASE}${path}`))).status, 404);
  }
  assert.deepEqual(reads, ["user 128", "product 256"]);
});
