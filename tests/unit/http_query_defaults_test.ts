/**
 * The defaults and bounds the README gives the query routes' parameters reach what is answered:
 * `limit`'s default and its whole documented range on every ranking and on alerts, the ranking
 * window's default (24 hours), a `type` filter sent to the database, and a user with no stored
 * recommendations answered 200 if known, 404 if not. On a database stand-in that answers no rows
 * and records the values each query is sent (what PostgreSQL itself returns is the integration tests').
 */
import assert from "node:assert/strict";
import type { Sql } from "../../engine/database.ts";
import { silentLogger } from "../../engine/logger.ts";
import type { StateReader } from "../../engine/state_reader.ts";
import { queryRoutes } from "../../http/query_routes.ts";
import { createHandler } from "../../http/server.ts";

const BASE = "http://engine.test";
const NOW = Date.parse("2026-11-22T12:00:00.000Z");
const HOUR = 3_600_000;

/** A database answering no rows that records the values of every query (identifiers and fragments left out). */
function recordingSql(): { sql: Sql; values: unknown[] } {
  const values: unknown[] = [];
  const sql = (strings: TemplateStringsArray | string, ...sent: unknown[]) => {
    if (!Array.isArray(strings)) return { identifier: strings };
    values.push(...sent.filter((v) => !(v instanceof Promise) && !(typeof v === "object" && v && "identifier" in v)));
    return Promise.resolve([]);
  };
  return { sql: sql as unknown as Sql, values };
}

/** Knows user "alice" and, with `lastEventAt`, a global state whose latest event is then. */
function reader(lastEventAt?: number): StateReader {
  return {
    read: (kind, key) =>
      Promise.resolve(
        kind === "user" && key === "alice"
          ? { state: { userId: "alice" }, source: "memory" }
          : kind === "global" && lastEventAt !== undefined
          ? { state: { lastEventAt }, source: "memory" }
          : null,
      ),
  };
}

async function get(path: string, lastEventAt?: number) {
  const db = recordingSql();
  const handle = createHandler(queryRoutes({ reader: reader(lastEventAt), sql: db.sql, now: () => NOW }), silentLogger);
  const response = await handle(new Request(`${BASE}${path}`));
  return { status: response.status, body: await response.json(), values: db.values };
}

/** The integers a query was sent: its limit among them. */
const integers = (values: unknown[]) => values.filter((v): v is number => Number.isInteger(v));

Deno.test("rankings and alerts send their documented default limit, and take every limit of their range", async () => {
  const routes: [string, number, number][] = [
    ["/v1/analytics/top-products", 10, 100],
    ["/v1/analytics/top-products?window=all", 10, 100],
    ["/v1/analytics/top-products?by=trending", 10, 100],
    ["/v1/analytics/top-categories", 10, 100],
    ["/v1/alerts", 50, 500],
  ];
  for (const [path, fallback, max] of routes) {
    const join = path.includes("?") ? "&" : "?";
    const byDefault = await get(path, NOW);
    assert.equal(byDefault.status, 200, `${path}: ${JSON.stringify(byDefault.body)}`);
    assert.ok(integers(byDefault.values).includes(fallback), `${path} sends limit ${fallback}: ${byDefault.values}`);
    for (const limit of [1, 7, max]) {
      const given = await get(`${path}${join}limit=${limit}`, NOW);
      assert.equal(given.status, 200, `${path} limit=${limit}: ${JSON.stringify(given.body)}`);
      assert.ok(integers(given.values).includes(limit), `${path} sends limit ${limit}: ${given.values}`);
      assert.ok(!integers(given.values).includes(fallback), `${path} limit=${limit} is not the default`);
    }
    assert.equal((await get(`${path}${join}limit=${max + 1}`, NOW)).status, 400, `${path} limit=${max + 1}`);
  }
});

Deno.test("top products and categories rank the last 24 hours by default, ending at the latest event's minute", async () => {
  const latest = Date.parse("2026-11-22T11:30:20.000Z");
  for (const path of ["/v1/analytics/top-products", "/v1/analytics/top-categories"]) {
    const { status, body } = await get(path, latest);
    assert.equal(status, 200);
    assert.equal(body.window, "24h", path);
    assert.equal(body.to, "2026-11-22T11:31:00.000Z", path);
    assert.equal(Date.parse(body.to) - Date.parse(body.from), 24 * HOUR, path);
  }
});

Deno.test("GET /v1/alerts sends its `type` filter to the database", async () => {
  const { status, values } = await get("/v1/alerts?type=cart_abandoned");
  assert.equal(status, 200);
  assert.ok(values.includes("cart_abandoned"), `sent ${values}`);
});

Deno.test("recommendations: a known user without any answers 200 with no items, an unknown one 404", async () => {
  const known = await get("/v1/users/alice/recommendations");
  assert.equal(known.status, 200);
  assert.deepEqual(known.body, { userId: "alice", items: [] });
  const unknown = await get("/v1/users/nobody/recommendations");
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.type, "urn:actor-engine:problem:not_found");
});

Deno.test("top-products over window=all ranks the product field `by` names: purchases are units sold", async () => {
  for (const [by, field] of [["views", "views"], ["purchases", "unitsSold"], ["revenue", "revenue"]]) {
    const { status, values } = await get(`/v1/analytics/top-products?window=all&by=${by}`);
    assert.equal(status, 200);
    assert.ok(values.includes(field), `by=${by} ranks ${field}: sent ${values}`);
  }
});

Deno.test("before any event, rankings end at the wall clock and say so (`reference: wallClock`)", async () => {
  for (const path of ["/v1/analytics/top-products", "/v1/analytics/top-categories?window=1h"]) {
    const { status, body } = await get(path);
    assert.equal(status, 200);
    assert.equal(body.reference, "wallClock", path);
    assert.equal(body.to, new Date(NOW).toISOString(), path);
  }
});

Deno.test("GET /v1/alerts sends a `since` with digits past the millisecond rounded up, so no earlier alert is listed", async () => {
  // Alerts are stored to the millisecond: one at 10:10:00.000 occurred before 10:10:00.0005 and must not be listed.
  for (
    const [since, sent] of [
      ["2026-11-22T10:10:00.0005Z", "2026-11-22T10:10:00.001Z"],
      ["2026-11-22T10:10:00.999001Z", "2026-11-22T10:10:01.000Z"],
      ["2026-11-22T11:10:00.0000001%2B01:00", "2026-11-22T10:10:00.001Z"],
      ["2026-11-22T10:10:00.123000Z", "2026-11-22T10:10:00.123Z"],
      ["2026-11-22T10:10:00Z", "2026-11-22T10:10:00.000Z"],
    ]
  ) {
    const { status, values } = await get(`/v1/alerts?since=${since}`);
    assert.equal(status, 200, since);
    const dates = values.filter((v): v is Date => v instanceof Date).map((d) => d.toISOString());
    assert.deepEqual(dates, [sent], since);
  }
  // Rounded up past the last storable instant: no alert can be that late, and PostgreSQL is not asked about year 10000.
  const last = await get("/v1/alerts?since=9999-12-31T23:59:59.9995Z");
  assert.deepEqual([last.status, last.body, last.values], [200, { items: [] }, []]);
});
