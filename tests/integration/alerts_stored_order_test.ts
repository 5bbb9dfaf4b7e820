/**
 * GET /v1/alerts?order=stored on PostgreSQL, where checkpoints of several partitions store alerts in transactions that
 * overlap: an alert stored by a transaction that commits after a later one is neither lost nor listed twice. The feed
 * holds back what later transactions stored until the earlier one ends, then lists both in the order stored.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { connectDatabase } from "../../engine/database.ts";
import { silentLogger } from "../../engine/logger.ts";
import type { StateReader } from "../../engine/state_reader.ts";
import { queryRoutes } from "../../http/query_routes.ts";
import { createHandler } from "../../http/server.ts";
import { migrate } from "../../sql/migrations.ts";
import { onlyOn } from "../helpers/modes.ts";
import { eventually, services, uniqueName } from "../helpers/services.ts";

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

const noState: StateReader = { read: () => Promise.resolve(null) };

const INSERT = `insert into alerts (alert_id, type, severity, subject_kind, subject_id, occurred_at)
                values ($1, 'cart_abandoned', 'warning', 'user', $1, now())`;

onlyOn(
  "postgresql",
  "GET /v1/alerts?order=stored lists an alert of a transaction that commits late, once",
  async () => {
    const { databaseUrl } = services();
    const name = uniqueName("alertfeed");
    const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name}`);
    const url = new URL(databaseUrl);
    url.pathname = `/${name}`;
    const sql = connectDatabase({ url: url.toString(), maxConnections: 2 });
    const slow = postgres(url.toString(), { max: 1, onnotice: () => {} });
    const fast = postgres(url.toString(), { max: 1, onnotice: () => {} });
    try {
      await migrate(sql);
      const handle = createHandler(queryRoutes({ reader: noState, sql, now: Date.now }), silentLogger);
      const page = async (query: string) => {
        const response = await handle(new Request(`http://engine.test/v1/alerts?order=stored&limit=10${query}`));
        const body: Json = await response.json();
        assert.equal(response.status, 200, JSON.stringify(body));
        return { ids: body.items.map((a: Json) => a.alertId) as string[], next: `&cursor=${body.next}` };
      };
      await fast.unsafe(INSERT, ["before"]);
      // A checkpoint that began storing first and commits last (another partition's commits in between).
      let commit!: () => void;
      const held = new Promise<void>((resolve) => commit = resolve);
      let begun!: () => void;
      const started = new Promise<void>((resolve) => begun = resolve);
      const storing = slow.begin(async (tx) => {
        await tx.unsafe(INSERT, ["slow"]);
        begun();
        await held;
      });
      await started;
      await fast.unsafe(INSERT, ["fast"]);
      // Other clients of the server hold the feed back while their transactions run: wait for them, not for "slow".
      const first = await eventually("before listed", async () => {
        const read = await page("");
        return read.ids.length > 0 ? read : undefined;
      });
      // "fast" is committed, but listing it would put the cursor past "slow", which then commits behind it: lost.
      assert.deepEqual(first.ids, ["before"]);
      assert.deepEqual((await page(first.next)).ids, [], "held back while the earlier transaction runs");
      commit();
      await storing;
      const second = await eventually("slow and fast listed", async () => {
        const read = await page(first.next);
        return read.ids.length > 0 ? read : undefined;
      });
      assert.deepEqual(second.ids, ["slow", "fast"]);
      assert.deepEqual((await page(second.next)).ids, []);
    } finally {
      await Promise.all([sql.end(), slow.end(), fast.end()]);
      await admin.unsafe(`drop database if exists ${name} with (force)`).catch(() => {});
      await admin.end();
    }
  },
);
