/**
 * GET /v1/alerts?order=stored on PGlite (the embedded database), through the real route: the feed
 * `deno task tail alerts` reads. Following `next` lists every alert once, oldest stored first, whatever its
 * occurredAt, those stored after a page included; `from=end` starts after what is stored; the answers conform to
 * /openapi.json, and a cursor of the other order or `from` where it does not apply is a 400 naming it.
 */
import assert from "node:assert/strict";
import { type AlertsGet, withAlertsRoute } from "./alerts_route_fixture.ts";
import type { Sql } from "../../engine/database.ts";

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

const T = Date.parse("2026-11-22T10:00:00.000Z");
const DAY = 86_400_000;

/** Stores alerts in one transaction, as a checkpoint does. */
async function store(sql: Sql, alerts: readonly [id: string, at: number][]): Promise<void> {
  await sql.begin(async (tx) => {
    for (const [id, at] of alerts) {
      await tx`insert into alerts (alert_id, type, severity, subject_kind, subject_id, occurred_at, details)
               values (${id}, 'cart_abandoned', 'warning', 'user', ${id}, ${new Date(at)}, '{}')`;
    }
  });
}

function withFeed(
  fn: (sql: Sql, get: AlertsGet) => Promise<void>,
  query: { alertRetentionDays?: number } = {},
): Promise<void> {
  return withAlertsRoute({ query }, fn);
}

/** Reads the feed from `start` until a page lists nothing; returns the ids and the `next` to go on from. */
async function drain(get: (path: string) => Promise<Json>, start: string, limit = 2) {
  const ids: string[] = [];
  let query = start;
  for (let pages = 0; pages < 100; pages++) {
    const body = await get(`/v1/alerts?order=stored&limit=${limit}${query}`);
    assert.equal(body.status, 200, JSON.stringify(body));
    assert.equal(typeof body.next, "string", "every page of order=stored has next");
    query = `&cursor=${encodeURIComponent(body.next)}`;
    if (body.items.length === 0) return { ids, query };
    ids.push(...body.items.map((a: Json) => a.alertId));
  }
  throw new Error("the feed did not end");
}

Deno.test("GET /v1/alerts?order=stored lists every alert once in the order stored, later and late ones too", async () => {
  await withFeed(async (sql, get) => {
    await store(sql, [["b", T], ["a", T], ["c", T - DAY]]);
    await store(sql, [["new", T + DAY]]);
    const first = await drain(get, "");
    // One transaction's alerts by alertId, transactions in the order stored; not by occurredAt.
    assert.deepEqual(first.ids, ["a", "b", "c", "new"]);
    // Stored after the reader caught up, dated days before what it read: a newest-first reader never saw them.
    await store(sql, [["late-2", T - 3 * DAY], ["late-1", T - 3 * DAY]]);
    await store(sql, [["import", Date.UTC(2019, 9, 1)]]);
    const second = await drain(get, first.query);
    assert.deepEqual(second.ids, ["late-1", "late-2", "import"]);
    assert.deepEqual((await drain(get, second.query)).ids, [], "nothing read twice");
    // From the beginning, with one page per alert: the same order.
    assert.deepEqual((await drain(get, "", 1)).ids, [...first.ids, ...second.ids]);
    // Filters keep to the order.
    const typed = await get("/v1/alerts?order=stored&type=cart_abandoned&since=2026-11-01T00:00:00Z&limit=500");
    assert.deepEqual(typed.items.map((a: Json) => a.alertId), ["a", "b", "c", "new", "late-1", "late-2"]);
  });
});

Deno.test("GET /v1/alerts?order=stored&from=end lists only what is stored after it", async () => {
  await withFeed(async (sql, get) => {
    await store(sql, [["old", T]]);
    const end = await get("/v1/alerts?order=stored&from=end");
    assert.equal(end.status, 200);
    assert.deepEqual(end.items, []);
    const cursor = `&cursor=${encodeURIComponent(end.next)}`;
    assert.deepEqual((await drain(get, cursor)).ids, []);
    await store(sql, [["later", T - DAY]]);
    assert.deepEqual((await drain(get, cursor)).ids, ["later"]);
  });
});

Deno.test("GET /v1/alerts refuses a cursor of the other order, and `from` where it does not apply", async () => {
  await withFeed(async (sql, get) => {
    await store(sql, [["a", T], ["b", T]]);
    const stored = (await get("/v1/alerts?order=stored&limit=1")).next;
    const occurred = (await get("/v1/alerts?limit=1")).next;
    const cases: [string, string][] = [
      [`/v1/alerts?cursor=${stored}`, "cursor"],
      [`/v1/alerts?order=stored&cursor=${occurred}`, "cursor"],
      ["/v1/alerts?from=end", "from"],
      [`/v1/alerts?order=stored&from=end&cursor=${stored}`, "from"],
      ["/v1/alerts?order=newest", "order"],
      ["/v1/alerts?order=stored&from=start", "from"],
    ];
    for (const [path, named] of cases) {
      const body = await get(path);
      assert.equal(body.status, 400, `${path}: ${JSON.stringify(body)}`);
      assert.deepEqual([...new Set(body.errors.map((e: Json) => e.path))], [named], path);
    }
  });
});

/** The ids GET /v1/alerts lists in both orders. */
async function listed(get: (path: string) => Promise<Json>): Promise<string[][]> {
  return [
    (await get("/v1/alerts?limit=500")).items.map((a: Json) => a.alertId),
    (await get("/v1/alerts?order=stored&limit=500")).items.map((a: Json) => a.alertId),
  ];
}

Deno.test("GET /v1/alerts leaves out alerts stored more than ALERT_RETENTION_DAYS ago, pruned or not yet", async () => {
  const expire = (sql: Sql) => sql`update alerts set created_at = now() - interval '91 days' where alert_id = 'old'`;
  await withFeed(async (sql, get) => {
    await store(sql, [["old", T], ["kept", T - DAY]]);
    await expire(sql);
    // No prune has run (none runs without a processing instance): it used to be listed until one did.
    assert.deepEqual(await listed(get), [["kept"], ["kept"]]);
  }, { alertRetentionDays: 90 });
  await withFeed(async (sql, get) => {
    await store(sql, [["old", T], ["kept", T - DAY]]);
    await expire(sql);
    assert.deepEqual(await listed(get), [["old", "kept"], ["kept", "old"]], "0 keeps them");
  }, { alertRetentionDays: 0 });
});
