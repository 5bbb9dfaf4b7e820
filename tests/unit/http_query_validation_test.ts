/**
 * The query string as a whole is validated, the same way on every query route (http/query_params.ts):
 * a timestamp PostgreSQL cannot hold, a number not in plain decimal digits, a repeated parameter and
 * an undeclared one are each a 400 problem naming it, never a retryable 503 nor a silent default;
 * the query strings the project itself sends are still answered.
 */
import assert from "node:assert/strict";
import { ALERT_TYPES } from "../../actors/alerts.ts";
import { isStorableTime, LATEST_TIME_MS } from "../../actors/events.ts";
import type { Sql } from "../../engine/database.ts";
import { MAX_LISTED_PROBLEMS } from "../../engine/errors.ts";
import { silentLogger } from "../../engine/logger.ts";
import type { StateReader } from "../../engine/state_reader.ts";
import { queryRoutes } from "../../http/query_routes.ts";
import { createHandler } from "../../http/server.ts";

const BASE = "http://engine.test";
const NOW = Date.parse("2026-11-22T12:00:00.000Z");

/** A database that answers every query with no rows and records the values it was sent. */
function recordingSql(): { sql: Sql; values: unknown[] } {
  const values: unknown[] = [];
  const sql = (_strings: TemplateStringsArray, ...sent: unknown[]) => {
    values.push(...sent);
    return Promise.resolve([]);
  };
  return { sql: sql as unknown as Sql, values };
}

/** Knows user "alice", product "p1" (three related products) and, given `lastEventAt`, a global state. */
function readerWith(lastEventAt?: number): StateReader {
  return {
    read: (kind, key) =>
      Promise.resolve(
        kind === "product" && key === "p1"
          ? {
            state: { productId: "p1", related: [{ productId: "p2" }, { productId: "p3" }, { productId: "p4" }] },
            source: "memory",
          }
          : kind === "user" && key === "alice"
          ? { state: { userId: "alice" }, source: "memory" }
          : kind === "global" && lastEventAt !== undefined
          ? { state: { lastEventAt }, source: "memory" }
          : null,
      ),
  };
}

function handlerWith(lastEventAt?: number) {
  const db = recordingSql();
  const handle = createHandler(
    queryRoutes({ reader: readerWith(lastEventAt), sql: db.sql, now: () => NOW }),
    silentLogger,
  );
  return { handle, values: db.values };
}

interface Answer {
  status: number;
  contentType: string | null;
  body: { errors?: { path: string; message: string }[]; detail?: string; [key: string]: unknown };
}

async function get(path: string, lastEventAt?: number): Promise<Answer & { values: unknown[] }> {
  const { handle, values } = handlerWith(lastEventAt);
  const response = await handle(new Request(`${BASE}${path}`));
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    body: await response.json(),
    values,
  };
}

/** A 400 problem whose `errors` name exactly `paths`; returns it. */
async function assertRefused(path: string, paths: string[]): Promise<Answer> {
  const answer = await get(path);
  assert.equal(answer.status, 400, `${path}: ${JSON.stringify(answer.body)}`);
  assert.equal(answer.contentType, "application/problem+json");
  const errors = answer.body.errors ?? [];
  assert.deepEqual([...new Set(errors.map((e) => e.path))].sort(), [...paths].sort(), `${path}: names ${paths}`);
  assert.ok(errors.every((e) => e.message.length > 0), `${path}: every problem says what is wrong`);
  return answer;
}

Deno.test("GET /v1/alerts refuses a `since` outside 1970..9999 (UTC) with a 400, not a retryable 503", async () => {
  const outOfRange = [
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+01:00",
    "1969-12-31T23:59:59.999Z",
    "1970-01-01T00:30:00+01:00",
  ];
  for (const since of outOfRange) {
    const { body } = await assertRefused(`/v1/alerts?since=${encodeURIComponent(since)}`, ["since"]);
    assert.match(body.errors![0].message, /1970-01-01T00:00:00Z and 9999-12-31T23:59:59\.999Z/);
  }
  // As the review sent it: `+` percent-encoded.
  await assertRefused("/v1/alerts?since=0001-01-01T00:00:00%2B01:00", ["since"]);
  for (const since of ["1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "2026-11-22T13:00:00+01:00"]) {
    const { status, values } = await get(`/v1/alerts?since=${encodeURIComponent(since)}`);
    assert.equal(status, 200, since);
    const sent = values.filter((v): v is Date => v instanceof Date);
    assert.deepEqual(sent.map((d) => d.getTime()), [Date.parse(since)], `${since} reaches the database`);
  }
});

Deno.test("a ranking window never ends past 9999-12-31T23:59:59.999Z, the last instant PostgreSQL is asked about", async () => {
  const lastEventAt = Date.parse("9999-12-31T23:59:30.000Z");
  for (
    const path of [
      "/v1/analytics/top-products?window=15m",
      "/v1/analytics/top-products?by=trending&window=1h",
      "/v1/analytics/top-categories?window=5m",
    ]
  ) {
    const { status, body, values } = await get(path, lastEventAt);
    assert.equal(status, 200, `${path}: ${JSON.stringify(body)}`);
    const dates = values.filter((v): v is Date => v instanceof Date);
    assert.ok(dates.length > 0, `${path} sends its window`);
    assert.ok(dates.every((d) => isStorableTime(d.getTime())), `${path}: ${dates.map((d) => d.toISOString())}`);
    assert.equal(body.to, new Date(LATEST_TIME_MS).toISOString());
    assert.equal(body.reference, "latestEvent");
  }
});

Deno.test("integer parameters must be plain decimal digits: 0x10, 1e1, +5, 5.0, ' 5' are refused naming `limit`", async () => {
  const notDecimal = ["0x10", "1e1", "0b1", "0o7", "+5", "5.0", "1_0", " 5", "5 ", "Infinity", "１０"];
  for (const limit of notDecimal) {
    const value = encodeURIComponent(limit);
    await assertRefused(`/v1/analytics/top-products?limit=${value}`, ["limit"]);
    await assertRefused(`/v1/analytics/top-categories?limit=${value}`, ["limit"]);
    await assertRefused(`/v1/alerts?limit=${value}`, ["limit"]);
    await assertRefused(`/v1/products/p1/related?limit=${value}`, ["limit"]);
  }
  const { body } = await assertRefused("/v1/alerts?limit=0x10", ["limit"]);
  assert.match(body.errors![0].message, /decimal digits/);
  const leadingZero = await get("/v1/products/p1/related?limit=02");
  assert.equal(leadingZero.status, 200);
  assert.equal((leadingZero.body.items as unknown[]).length, 2, "02 is 2");
});

Deno.test("a `limit` past every integer's exact range is refused once, with the route's own range", async () => {
  for (
    const [path, max] of [
      ["/v1/analytics/top-products", 100],
      ["/v1/analytics/top-categories", 100],
      ["/v1/alerts", 500],
      ["/v1/products/p1/related", 100],
    ] as const
  ) {
    for (const limit of ["9007199254740993", "99999999999999999999999"]) {
      const { body } = await assertRefused(`${path}?limit=${limit}`, ["limit"]);
      // Not also "expected int to be <=9007199254740991": the route takes 1..max.
      assert.deepEqual(body.errors!.map((e) => e.message), [`Too big: expected number to be <=${max}`], path);
    }
  }
});

Deno.test("a parameter given more than once is refused naming it, whatever the values", async () => {
  for (
    const [path, name] of [
      ["/v1/alerts?limit=5&limit=abc", "limit"],
      ["/v1/alerts?limit=5&limit=5", "limit"],
      ["/v1/alerts?type=a&since=2026-01-01T00:00:00Z&type=b", "type"],
      ["/v1/analytics/funnel?window=1h&window=1h", "window"],
      ["/v1/analytics/top-products?by=views&by=revenue", "by"],
      ["/v1/products/p1/related?limit=1&limit=2&limit=3", "limit"],
    ]
  ) {
    const { body } = await assertRefused(path, [name]);
    assert.match(body.errors![0].message, /given \d times/);
    assert.match(body.detail ?? "", new RegExp(name));
  }
  // Every offending parameter is listed, not just the first.
  await assertRefused("/v1/analytics/top-products?by=clicks&limit=1&limit=2&window=1h", ["by", "limit"]);
});

Deno.test("a query string of thousands of unknown parameters is refused listing at most MAX_LISTED_PROBLEMS", async () => {
  // A 60 KB query string of 6,000 names: each used to be a problem, and named again in `detail` (a 0.7 MB answer).
  const names = Array.from({ length: 6_000 }, (_, i) => `p${i}`);
  const path = `/v1/analytics/top-products?window=1h&${names.map((n) => `${n}=1`).join("&")}&limit=x`;
  const { handle } = handlerWith();
  const response = await handle(new Request(`${BASE}${path}`));
  const text = await response.text();
  assert.equal(response.status, 400);
  const body = JSON.parse(text) as Answer["body"];
  assert.equal(body.errors!.length, MAX_LISTED_PROBLEMS);
  // The parameter the route takes comes first; then the unknown ones, in the order given.
  assert.equal(body.errors![0].path, "limit");
  assert.match(body.errors![1].message, /'p0'/);
  assert.match(body.detail ?? "", /invalid parameter\(s\) limit; unknown parameter\(s\) 'p0', 'p1'/);
  assert.match(body.detail ?? "", /6000 unknown parameters; only the first 1000 problems are listed/);
  assert.doesNotMatch(body.detail ?? "", new RegExp(`'p${MAX_LISTED_PROBLEMS}'`));
  assert.ok(text.length < 150_000, `${text.length} bytes`);
});

Deno.test("unknown or misspelled parameters are refused, each named, with the accepted ones listed", async () => {
  const { body } = await assertRefused("/v1/analytics/top-products?Window=1y&foo=bar", ["query"]);
  const messages = body.errors!.map((e) => e.message);
  assert.equal(messages.length, 2, "one problem per unknown parameter");
  assert.match(messages[0], /'Window'/);
  assert.match(messages[1], /'foo'/);
  assert.ok(messages.every((m) => m.includes("accepted: by, window, limit")), messages.join(" | "));
  assert.match(body.detail ?? "", /'Window', 'foo'/);
  // Alongside invalid ones; repeated unknown ones are named once.
  const mixed = await assertRefused("/v1/alerts?limt=5&limt=6&since=yesterday", ["since", "query"]);
  assert.equal(mixed.body.errors!.filter((e) => e.path === "query").length, 1);
  assert.match(mixed.body.detail ?? "", /invalid parameter\(s\) since; unknown parameter\(s\) 'limt'/);
  // Routes without parameters take none.
  for (const path of ["/v1/analytics/realtime?window=1h", "/v1/users/alice/recommendations?limit=5"]) {
    const refused = await assertRefused(path, ["query"]);
    assert.match(refused.body.errors![0].message, /takes no parameters/);
  }
  await assertRefused("/v1/analytics/funnel?=1h", ["query"]);
});

Deno.test("an alert type no actor raises is refused, naming the parameter and the accepted types, not answered as no alerts", async () => {
  const { body } = await assertRefused("/v1/alerts?type=cart_abandon", ["type"]);
  assert.match(body.errors![0].message, /cart_abandoned/);
  assert.match(body.errors![0].message, /slow_pages/);
  for (const type of ALERT_TYPES) assert.equal((await get(`/v1/alerts?type=${type}`)).status, 200, type);
});

Deno.test("the query strings the project itself sends are still answered", async () => {
  const since = encodeURIComponent("2026-11-22T11:00:00.000Z");
  for (
    const path of [
      "/v1/alerts?limit=500", // scripts/tail.ts
      "/v1/alerts?type=cart_abandoned", // README quick start
      "/v1/alerts?type=out_of_stock",
      "/v1/alerts?limit=1",
      `/v1/alerts?since=${since}`,
      `/v1/alerts?since=${since}&type=low_inventory`,
      "/v1/analytics/top-products?by=views",
      "/v1/analytics/top-products?by=purchases&limit=2",
      "/v1/analytics/top-products?by=trending&limit=100",
      "/v1/analytics/top-products?window=all",
      "/v1/analytics/top-products?by=trending&window=15m",
      "/v1/analytics/top-categories?window=24h",
      "/v1/analytics/funnel?window=1h",
      "/v1/analytics/funnel",
      "/v1/analytics/realtime",
      "/v1/products/p1/related?limit=1",
      "/v1/products/p1/related?",
      "/v1/users/alice/recommendations",
      "/v1/alerts?&limit=5&",
    ]
  ) {
    const { status, body } = await get(path);
    assert.equal(status, 200, `${path}: ${JSON.stringify(body)}`);
  }
});

Deno.test("GET /v1/alerts names a `since` that is not RFC 3339 once, and an unencoded `+` offset as such, not as out of range", async () => {
  // A `+` written as is in a query string reaches the server as a space.
  const { body } = await assertRefused("/v1/alerts?since=2026-01-01T00:00:00+01:00", ["since"]);
  assert.equal(body.errors!.length, 1, JSON.stringify(body.errors));
  assert.match(body.errors![0].message, /RFC 3339/);
  assert.match(body.errors![0].message, /%2B/);
  assert.doesNotMatch(body.errors![0].message, /1970/);
  const malformed = await assertRefused("/v1/alerts?since=yesterday", ["since"]);
  assert.equal(malformed.body.errors!.length, 1, JSON.stringify(malformed.body.errors));
  assert.match(malformed.body.errors![0].message, /RFC 3339/);
  assert.doesNotMatch(malformed.body.errors![0].message, /%2B/);
});
