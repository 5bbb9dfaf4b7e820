/** The stored history of the global analytics (`analytics_minutes`): written by checkpoints, summed by queries. */
import type { Sql, TransactionSql } from "../engine/database.ts";
import type { AnalyticsHistory, AnalyticsMinute } from "../engine/outputs.ts";

/**
 * Stores finished minutes and deletes those before the newest `keepFrom`. Idempotent: a replay
 * re-emits identical minutes, and an upsert of an identical row changes nothing.
 */
export async function storeAnalyticsHistory(tx: TransactionSql, batches: readonly AnalyticsHistory[]): Promise<void> {
  if (batches.length === 0) return;
  const byMinute = new Map<number, AnalyticsMinute>();
  for (const batch of batches) for (const m of batch.minutes) byMinute.set(m.minute, m);
  if (byMinute.size > 0) {
    const rows = [...byMinute.values()].map((m) => ({
      minute: new Date(m.minute).toISOString(),
      events: m.events,
      orders: m.orders,
      revenue_millis: m.revenueMillis,
      page_views: m.pageViews,
      load_time_ms_sum: m.loadTimeMsSum,
      load_time_samples: m.loadTimeSamples,
      checkouts: m.checkouts,
      carts_converted: m.cartsConverted,
      carts_abandoned: m.cartsAbandoned,
      checkouts_abandoned: m.checkoutsAbandoned,
      category_revenue_millis: m.categoryRevenueMillis,
      active_users: m.activeUsers,
      active_sessions: m.activeSessions,
      sessions_reached: m.sessionsReached,
    }));
    await tx`
      insert into analytics_minutes (minute, events, orders, revenue_millis, page_views, load_time_ms_sum,
        load_time_samples, checkouts, carts_converted, carts_abandoned, checkouts_abandoned, category_revenue_millis,
        active_users, active_sessions, sessions_reached)
      select r.minute::timestamptz, r.events, r.orders, r.revenue_millis, r.page_views, r.load_time_ms_sum,
             r.load_time_samples, r.checkouts, r.carts_converted, r.carts_abandoned, r.checkouts_abandoned,
             r.category_revenue_millis, r.active_users, r.active_sessions, r.sessions_reached
        from jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) as r(
          minute text, events jsonb, orders bigint, revenue_millis bigint, page_views bigint, load_time_ms_sum bigint,
          load_time_samples bigint, checkouts bigint, carts_converted bigint, carts_abandoned bigint,
          checkouts_abandoned bigint, category_revenue_millis jsonb, active_users bigint, active_sessions bigint,
          sessions_reached jsonb)
      on conflict (minute) do update set
        events = excluded.events, orders = excluded.orders, revenue_millis = excluded.revenue_millis,
        page_views = excluded.page_views, load_time_ms_sum = excluded.load_time_ms_sum,
        load_time_samples = excluded.load_time_samples, checkouts = excluded.checkouts,
        carts_converted = excluded.carts_converted, carts_abandoned = excluded.carts_abandoned,
        checkouts_abandoned = excluded.checkouts_abandoned, category_revenue_millis = excluded.category_revenue_millis,
        active_users = excluded.active_users, active_sessions = excluded.active_sessions,
        sessions_reached = excluded.sessions_reached`;
  }
  // Not Math.max(...batches): V8 refuses a call of more than about 125,000 arguments, and a checkpoint may hold more.
  const keepFrom = batches.reduce((newest, b) => Math.max(newest, b.keepFrom), -Infinity);
  await tx`delete from analytics_minutes where minute < ${new Date(keepFrom)}`;
}

/** The stored minutes of a range, added up into one minute-shaped total. */
export interface StoredMinutes {
  /** How many stored minutes the range holds. */
  readonly count: number;
  /** Their sum, dated at the start of the range. */
  readonly total: AnalyticsMinute;
}

type SumRow = {
  count: string;
  orders: string;
  revenue_millis: string;
  page_views: string;
  load_time_ms_sum: string;
  load_time_samples: string;
  checkouts: string;
  carts_converted: string;
  carts_abandoned: string;
  checkouts_abandoned: string;
  active_users: string;
  active_sessions: string;
  events: Record<string, number | string>;
  category_revenue_millis: Record<string, number | string>;
  sessions_reached: Record<string, number | string>;
};

/** Sums the stored minutes in [from, to) (epoch ms) in one query. */
export async function sumAnalyticsMinutes(sql: Sql, from: number, to: number): Promise<StoredMinutes> {
  const [row] = await sql<SumRow[]>`
    with stored as (
      select * from analytics_minutes where minute >= ${new Date(from)} and minute < ${new Date(to)}
    )
    select count(*) as count,
           coalesce(sum(orders), 0) as orders, coalesce(sum(revenue_millis), 0) as revenue_millis,
           coalesce(sum(page_views), 0) as page_views, coalesce(sum(load_time_ms_sum), 0) as load_time_ms_sum,
           coalesce(sum(load_time_samples), 0) as load_time_samples, coalesce(sum(checkouts), 0) as checkouts,
           coalesce(sum(carts_converted), 0) as carts_converted, coalesce(sum(carts_abandoned), 0) as carts_abandoned,
           coalesce(sum(checkouts_abandoned), 0) as checkouts_abandoned,
           coalesce(sum(active_users), 0) as active_users, coalesce(sum(active_sessions), 0) as active_sessions,
           (select coalesce(jsonb_object_agg(e.key, e.n), '{}')
              from (select key, sum(value::bigint) as n from stored, jsonb_each_text(stored.events) group by key) e
           ) as events,
           (select coalesce(jsonb_object_agg(c.key, c.n), '{}')
              from (select key, sum(value::bigint) as n
                      from stored, jsonb_each_text(stored.category_revenue_millis) group by key) c
           ) as category_revenue_millis,
           (select coalesce(jsonb_object_agg(r.key, r.n), '{}')
              from (select key, sum(value::bigint) as n from stored, jsonb_each_text(stored.sessions_reached) group by key) r
           ) as sessions_reached
      from stored`;
  const numbers = (record: Record<string, number | string>) =>
    Object.fromEntries(Object.entries(record).map(([key, n]) => [key, Number(n)]));
  return {
    count: Number(row.count),
    total: {
      minute: from,
      events: numbers(row.events),
      orders: Number(row.orders),
      revenueMillis: Number(row.revenue_millis),
      pageViews: Number(row.page_views),
      loadTimeMsSum: Number(row.load_time_ms_sum),
      loadTimeSamples: Number(row.load_time_samples),
      checkouts: Number(row.checkouts),
      cartsConverted: Number(row.carts_converted),
      cartsAbandoned: Number(row.carts_abandoned),
      checkoutsAbandoned: Number(row.checkouts_abandoned),
      categoryRevenueMillis: numbers(row.category_revenue_millis),
      activeUsers: Number(row.active_users),
      activeSessions: Number(row.active_sessions),
      sessionsReached: numbers(row.sessions_reached),
    },
  };
}
