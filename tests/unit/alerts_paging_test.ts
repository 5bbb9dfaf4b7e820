/**
 * GET /v1/alerts read page after page on PGlite (the embedded database), through the real route: following `next`
 * (`cursor`) lists every alert exactly once, in the order of one long page (newest first, one instant by alertId in
 * code-point order), with the instants split across pages, with `type` and `since`, while alerts are stored and pruned
 * between pages; the answers conform to /openapi.json, and a cursor that is not one of ours is a 400 naming `cursor`.
 * The same on PostgreSQL with another collation: tests/integration/alerts_paging_test.ts.
 */
import assert from "node:assert/strict";
import { ALERT_PRUNE_BATCH, pruneAlerts } from "../../sql/checkpoints.ts";
import { listAlerts } from "../../sql/queries.ts";
import { type AlertsGet, withAlertsRoute } from "./alerts_route_fixture.ts";
import type { Sql } from "../../engine/database.ts";

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

const T = Date.parse("2026-11-22T10:00:00.000Z");
const MIN = 60_000;

/** Ids of one instant that sort differently by code point, by UTF-16 unit and by an en-US collation. */
const ODD = ["B-2", "a-1", "_x", "Z", "é", "\u{1F600}", "\uFF5E", "a-10", "a-9"];

async function insert(sql: Sql, id: string, type: string, at: number): Promise<void> {
  await sql`insert into alerts (alert_id, type, severity, subject_kind, subject_id, occurred_at, details)
            values (${id}, ${type}, 'warning', 'product', 'p1', ${new Date(at)}, '{"n":1}')`;
}

function withAlerts(fn: (sql: Sql, get: AlertsGet) => Promise<void>): Promise<void> {
  const arrange = async (sql: Sql) => {
    for (const [i, id] of ODD.entries()) await insert(sql, id, i % 2 ? "low_inventory" : "out_of_stock", T);
    for (let k = 1; k <= 6; k++) await insert(sql, `m${k}`, "cart_abandoned", T - k * MIN);
    for (const id of ["y", "x"]) await insert(sql, id, "low_inventory", T + MIN);
  };
  return withAlertsRoute({ arrange }, fn);
}

/** The ids of every page of `query`, following `next`; `between` runs after each page but the last. */
async function readAll(
  get: (path: string) => Promise<Json>,
  query: string,
  between: (page: number) => Promise<void> = () => Promise.resolve(),
): Promise<string[][]> {
  const pages: string[][] = [];
  let cursor: string | undefined;
  do {
    const path = `/v1/alerts?${query}${cursor === undefined ? "" : `&cursor=${encodeURIComponent(cursor)}`}`;
    const body = await get(path);
    assert.equal(body.status, 200, `${path}: ${JSON.stringify(body)}`);
    pages.push(body.items.map((a: Json) => a.alertId));
    assert.ok(pages.length < 100, "paging ends");
    cursor = body.next;
    if (cursor !== undefined) await between(pages.length);
  } while (cursor !== undefined);
  return pages;
}

const ids = async (sql: Sql, filter: { type?: string; since?: Date } = {}) =>
  (await listAlerts(sql, { ...filter, limit: 500 })).map((a) => a.alertId);

Deno.test("GET /v1/alerts pages through every alert exactly once, one instant split across pages", async () => {
  await withAlerts(async (sql, get) => {
    const all = await ids(sql);
    assert.equal(all.length, 17);
    for (const limit of [1, 2, 3, 4, 16, 17]) {
      const pages = await readAll(get, `limit=${limit}`);
      assert.deepEqual(pages.flat(), all, `limit=${limit}`);
      assert.ok(pages.slice(0, -1).every((p) => p.length === limit), `limit=${limit}: only the last page is short`);
    }
    // A page of fewer than `limit` alerts is the last: no `next`.
    const short = await get("/v1/alerts?limit=18");
    assert.deepEqual([short.items.length, "next" in short], [17, false]);
    assert.deepEqual((await get("/v1/alerts?limit=17")).items.map((a: Json) => a.alertId), all);
  });
});

Deno.test("GET /v1/alerts pages keep to `type` and `since`", async () => {
  await withAlerts(async (sql, get) => {
    const since = new Date(T - 3 * MIN);
    const cases: [string, Promise<string[]>][] = [
      ["type=low_inventory", ids(sql, { type: "low_inventory" })],
      [`since=${since.toISOString()}`, ids(sql, { since })],
      [`type=cart_abandoned&since=${since.toISOString()}`, ids(sql, { type: "cart_abandoned", since })],
    ];
    for (const [query, expected] of cases) {
      for (const limit of [1, 2, 5]) {
        assert.deepEqual((await readAll(get, `${query}&limit=${limit}`)).flat(), await expected, `${query} ${limit}`);
      }
    }
  });
});

Deno.test("GET /v1/alerts pages list each alert once while alerts are stored and pruned between pages", async () => {
  await withAlerts(async (sql, get) => {
    const before = await ids(sql);
    // Page 2 ends inside the instant T (limit 4: x, y, then four of the nine of T, ...).
    const pages = await readAll(get, "limit=4", async (page) => {
      if (page !== 2) return;
      await insert(sql, "new-newest", "low_inventory", T + 2 * MIN); // before the position: a new first page's
      await insert(sql, "!", "low_inventory", T); // of the instant read, sorting before every id read: before too
      await insert(sql, "\u{1F601}", "low_inventory", T); // of that instant, after every id: still to come
      await insert(sql, "new-oldest", "low_inventory", T - 60 * MIN); // still to come
      // Stored 91 days ago: ALERT_RETENTION_DAYS's pruning deletes it before it was read.
      await sql`update alerts set created_at = now() - interval '91 days' where alert_id = 'm2'`;
      assert.equal(await pruneAlerts(sql, 90 * 86_400_000, ALERT_PRUNE_BATCH), 1);
    });
    const read = pages.flat();
    assert.equal(new Set(read).size, read.length, `no alert twice: ${read}`);
    const after = await ids(sql);
    assert.deepEqual(read, after.filter((id) => id !== "new-newest" && id !== "!"));
    assert.deepEqual(
      before.filter((id) => !read.includes(id)),
      ["m2"],
      "every alert stored before the first page is read, but the one pruned",
    );
  });
});

/** `value` as our cursors are written: JSON, UTF-8, base64url. */
function cursorOf(value: unknown): string {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

Deno.test("GET /v1/alerts refuses a cursor it did not give with a 400 naming `cursor`", async () => {
  await withAlerts(async (_sql, get) => {
    const { next } = await get("/v1/alerts?limit=2");
    assert.equal(typeof next, "string");
    assert.match(next, /^[A-Za-z0-9_-]+$/, "written in URL-safe characters: no `+` to percent-encode");
    const bad = [
      "",
      "!!!",
      "abc",
      `${next}=`,
      `${next}+`,
      cursorOf("not an array"),
      cursorOf([T]),
      cursorOf([T, "a", 1]),
      cursorOf([-1, "a"]),
      cursorOf([T + 0.5, "a"]),
      cursorOf([Date.UTC(10000, 0, 1), "a"]),
      cursorOf([String(T), "a"]),
      cursorOf([T, ""]),
      cursorOf([T, 7]),
      cursorOf([T, "a\u0000"]),
      cursorOf([T, "\uD800"]),
      btoa('[1, "a"'),
      "x".repeat(5000),
    ];
    for (const cursor of bad) {
      const body = await get(`/v1/alerts?cursor=${encodeURIComponent(cursor)}`);
      assert.equal(body.status, 400, `cursor ${cursor}: ${JSON.stringify(body)}`);
      assert.deepEqual([...new Set(body.errors.map((e: Json) => e.path))], ["cursor"], `cursor ${cursor}`);
    }
    const twice = await get(`/v1/alerts?cursor=${next}&cursor=${next}`);
    assert.deepEqual([twice.status, twice.errors.map((e: Json) => e.path)], [400, ["cursor"]]);
    assert.equal((await get(`/v1/alerts?cursor=${next}`)).status, 200);
  });
});
