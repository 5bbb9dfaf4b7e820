/**
 * The realtime analytics route over the global state a fold of events ends with (no database: every
 * window here lies within the actor's memory).
 */
import assert from "node:assert/strict";
import type { Sql } from "../../engine/database.ts";
import { silentLogger } from "../../engine/logger.ts";
import type { StateReader } from "../../engine/state_reader.ts";
import { queryRoutes } from "../../http/query_routes.ts";
import { createHandler } from "../../http/server.ts";
import { EventBuilder, fold } from "../helpers/fold.ts";

/** A database that answers every query with no rows. */
const emptySql = ((_strings: TemplateStringsArray, ..._values: unknown[]) => Promise.resolve([])) as unknown as Sql;

Deno.test("GET /v1/analytics/realtime reports revenue by category in 5-minute windows, and per window of its own", async () => {
  const b = new EventBuilder();
  const order = (id: string, at: number, category: string, price: number) =>
    b.event("order_completed", "u1", at, {
      orderId: id,
      items: [{ productId: `p-${id}`, quantity: 1, price, category }],
      total: price,
    });
  const r = await fold([order("o1", 0, "shoes", 10), order("o2", 60, "hats", 7), order("o3", 360, "shoes", 4.5)], {
    partitions: 1,
  });
  const reader: StateReader = {
    read: (kind) =>
      Promise.resolve(kind === "global" ? { state: r.persisted("global", "global"), source: "memory" } : null),
  };
  const handle = createHandler(queryRoutes({ reader, sql: emptySql, now: () => b.time(400) }), silentLogger);
  const response = await handle(new Request("http://engine.test/v1/analytics/realtime"));
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.deepEqual(body.revenueByCategory, [
    { windowStart: "2026-01-05T10:00:00.000Z", windowEnd: "2026-01-05T10:05:00.000Z", revenue: { shoes: 10, hats: 7 } },
    { windowStart: "2026-01-05T10:05:00.000Z", windowEnd: "2026-01-05T10:10:00.000Z", revenue: { shoes: 4.5 } },
  ]);
  assert.deepEqual(body.last1.revenueByCategory, { shoes: 4.5 }, "the minute of the latest event");
  assert.deepEqual(body.last15.revenueByCategory, { shoes: 14.5, hats: 7 });
});
