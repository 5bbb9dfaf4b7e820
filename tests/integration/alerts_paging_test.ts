/**
 * GET /v1/alerts read page after page on PostgreSQL, in a database that collates as en-US (ICU): the pages, each
 * asked of another instance's handler (alerts are read from PostgreSQL where the query arrives), list every alert once,
 * one instant in code-point order across page boundaries (the keyset compares ids as the listing orders them, not by
 * the database's collation), while alerts are stored and ALERT_RETENTION_DAYS prunes between pages.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { connectDatabase, type Sql } from "../../engine/database.ts";
import { silentLogger } from "../../engine/logger.ts";
import type { StateReader } from "../../engine/state_reader.ts";
import { queryRoutes } from "../../http/query_routes.ts";
import { createHandler } from "../../http/server.ts";
import { ALERT_PRUNE_BATCH, pruneAlerts } from "../../sql/checkpoints.ts";
import { migrate } from "../../sql/migrations.ts";
import { onlyOn } from "../helpers/modes.ts";
import { services, uniqueName } from "../helpers/services.ts";

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

const T = Date.parse("2026-12-06T10:00:00.000Z");
const MIN = 60_000;
const DAY = 86_400_000;
const noState: StateReader = { read: () => Promise.resolve(null) };

/** Code-point order (PostgreSQL's "C" on UTF-8), which neither `<` on UTF-16 nor an en-US collation follows. */
function byCodePoints(a: string, b: string): number {
  const x = [...a].map((c) => c.codePointAt(0)!);
  const y = [...b].map((c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

async function insert(sql: Sql, id: string, at: number): Promise<void> {
  await sql`insert into alerts (alert_id, type, severity, subject_kind, subject_id, occurred_at)
            values (${id}, 'low_inventory', 'warning', 'product', 'p1', ${new Date(at)})`;
}

onlyOn(
  "postgresql",
  "GET /v1/alerts pages list every alert once, in code-point order across pages, on an en-US database",
  async () => {
    const { databaseUrl } = services();
    const name = uniqueName("alertpages");
    const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    await admin.unsafe(
      `create database ${name} template template0 encoding 'UTF8' locale_provider icu icu_locale 'en-US' locale 'C'`,
    );
    const url = new URL(databaseUrl);
    url.pathname = `/${name}`;
    const instances = [0, 1].map(() => connectDatabase({ url: url.toString(), maxConnections: 2 }));
    const [sql] = instances;
    try {
      await migrate(sql);
      const [{ icu }] = await sql<{ icu: boolean }[]>`select 'a' < 'B' as icu`;
      assert.ok(icu, "the database collates as en-US (a before B)");
      const ofT = ["B-2", "a-1", "_x", "Z", "é", "\u{1F600}", "\uFF5E", "a-10", "a-9", "b", "A"];
      for (const id of ofT) await insert(sql, id, T);
      for (let k = 1; k <= 5; k++) await insert(sql, `m${k}`, T - k * MIN);
      await insert(sql, "newest", T + MIN);
      const handlers = instances.map((db) =>
        createHandler(queryRoutes({ reader: noState, sql: db, now: Date.now }), silentLogger)
      );

      const read: string[] = [];
      let cursor: string | undefined;
      let page = 0;
      do {
        const query = cursor === undefined ? "" : `&cursor=${encodeURIComponent(cursor)}`;
        const response = await handlers[page % 2](new Request(`http://engine.test/v1/alerts?limit=3${query}`));
        const body: Json = await response.json();
        assert.equal(response.status, 200, JSON.stringify(body));
        read.push(...body.items.map((a: Json) => a.alertId));
        cursor = body.next;
        page++;
        if (page === 2) {
          // Read so far: newest, then A, B-2, Z, _x, a-1 of T. Stored now: one before that position, one after it.
          await insert(sql, "0-before", T);
          await insert(sql, "b-after", T);
          // Stored 91 days ago and not read yet: the pruning of ALERT_RETENTION_DAYS=90 deletes it.
          await sql`update alerts set created_at = now() - interval '91 days' where alert_id = 'm3'`;
          assert.equal(await pruneAlerts(sql, 90 * DAY, ALERT_PRUNE_BATCH), 1);
        }
        assert.ok(page < 50, "paging ends");
      } while (cursor !== undefined);

      const expected = [
        "newest",
        ...[...ofT, "b-after"].sort(byCodePoints),
        ...["m1", "m2", "m4", "m5"],
      ];
      assert.deepEqual(read, expected);
    } finally {
      for (const db of instances) await db.end();
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    }
  },
);
