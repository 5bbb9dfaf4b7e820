/** Read-only queries behind the HTTP query routes. Tagged templates only. */
import type { Sql } from "../engine/database.ts";
import { decayedTrendingScore, roundedScore, type TrendingReference } from "./trending_score.ts";

/** Persisted product-state fields that products can be ranked by. */
export type ProductRankField = "views" | "unitsSold" | "revenue" | "trendingScore";

/** One product of a ranking, from its last checkpoint. */
export interface RankedProduct {
  readonly productId: string;
  readonly views: number;
  readonly uniqueViewers: number;
  readonly cartAdds: number;
  readonly orders: number;
  readonly unitsSold: number;
  readonly revenue: number;
  readonly trendingScore: number;
  readonly category: string | null;
  readonly brand: string | null;
  readonly stock: number | null;
  readonly asOf: string;
}

type RankedRow = {
  key: string;
  views: string | null;
  unique_viewers: string | null;
  cart_adds: string | null;
  orders: string | null;
  units_sold: string | null;
  revenue: string | null;
  trending_score: string | null;
  category: string | null;
  brand: string | null;
  stock: string | null;
  updated_at: Date;
  score: string;
};

const num = (value: string | null): number => value === null ? 0 : Number(value);

/**
 * The `limit` checkpointed products with the highest `field` (all-time totals, or the trending score
 * decayed from each product's last event to `trending.at`), ties broken by product id; with
 * `activeIn` (epoch ms, [from, to)), only products with a fact in that range (`product_minutes`). A total ranks
 * only the products with some of it: a list of best sellers does not fill up with products never sold.
 */
export async function topProducts(
  sql: Sql,
  field: ProductRankField,
  limit: number,
  activeIn?: { readonly from: number; readonly to: number },
  trending?: TrendingReference,
): Promise<RankedProduct[]> {
  // A product quiet for a day must not outrank one busy now with the score it had a day ago (trending_score.ts).
  const score = field === "trendingScore" && trending
    ? decayedTrendingScore(sql, trending)
    : sql`coalesce((state->>${field}::text)::numeric, 0)`;
  // Ranked on the one field first, the others read for the winners only: each `->>` reads the whole
  // (often TOASTed) state again, and eleven of them per product made a 20,000-product ranking 6 to 9
  // times slower on PGlite.
  const rows = await sql<RankedRow[]>`
    with ranked as (
      select key, ${score} as score
        from actor_states
       where kind = 'product'
         ${field === "trendingScore" ? sql`` : sql`and ${score} > 0`}
         ${
    activeIn === undefined ? sql`` : sql`and key in (select product_id from product_minutes
                        where minute >= ${new Date(activeIn.from)} and minute < ${new Date(activeIn.to)})`
  }
       order by score desc, key collate "C"
       limit ${limit}
    )
    select s.key, s.state->>'views' as views, s.state->>'uniqueViewers' as unique_viewers,
           s.state->>'cartAdds' as cart_adds, s.state->>'orders' as orders, s.state->>'unitsSold' as units_sold,
           s.state->>'revenue' as revenue, s.state->>'trendingScore' as trending_score,
           s.state->>'category' as category, s.state->>'brand' as brand, s.state->>'stock' as stock, s.updated_at,
           r.score::text as score
      from ranked r join actor_states s on s.kind = 'product' and s.key = r.key
     order by r.score desc, r.key collate "C"`;
  return rows.map((r) => ({
    productId: r.key,
    views: num(r.views),
    uniqueViewers: num(r.unique_viewers),
    cartAdds: num(r.cart_adds),
    orders: num(r.orders),
    unitsSold: num(r.units_sold),
    revenue: num(r.revenue),
    trendingScore: trending && field === "trendingScore" ? roundedScore(num(r.score)) : num(r.trending_score),
    category: r.category,
    brand: r.brand,
    stock: r.stock === null ? null : Number(r.stock),
    asOf: r.updated_at.toISOString(),
  }));
}

/** An alert as the query API returns it. */
export interface StoredAlert {
  readonly alertId: string;
  readonly type: string;
  readonly severity: string;
  readonly subject: { readonly kind: string; readonly id: string };
  readonly occurredAt: string;
  readonly details: unknown;
}

/** Filters of `listAlerts`. */
export interface AlertFilter {
  readonly type?: string;
  /** Only alerts that occurred at or after this time. */
  readonly since?: Date;
  /** Only alerts listed after this one (a page's last): older, or of its instant with a greater id (code points). */
  readonly after?: { readonly occurredAt: Date; readonly alertId: string };
  readonly limit: number;
  /** ALERT_RETENTION_DAYS in ms (0: all): alerts stored longer ago are not listed, whether pruned yet or not. */
  readonly retentionMs?: number;
}

/** An `alerts` row as both listings read it. */
interface AlertRow {
  alert_id: string;
  type: string;
  severity: string;
  subject_kind: string;
  subject_id: string;
  occurred_at: Date;
  details: unknown;
}

/** An alert as the API gives it. */
function storedAlert(r: AlertRow): StoredAlert {
  return {
    alertId: r.alert_id,
    type: r.type,
    severity: r.severity,
    subject: { kind: r.subject_kind, id: r.subject_id },
    occurredAt: r.occurred_at.toISOString(),
    details: r.details,
  };
}

/** The condition on alerts kept for `retentionMs` (stored then or later, by the database's clock, as pruneAlerts). */
function retained(sql: Sql, retentionMs = 0) {
  return retentionMs > 0 ? sql`and created_at >= now() - make_interval(secs => ${retentionMs / 1000}::float8)` : sql``;
}

/** Stored alerts, newest first; of one instant, by alertId in code-point order (as `after` continues them). */
export async function listAlerts(sql: Sql, filter: AlertFilter): Promise<StoredAlert[]> {
  const rows = await sql<AlertRow[]>`
    select alert_id, type, severity, subject_kind, subject_id, occurred_at, details
      from alerts
     where true
       ${filter.type === undefined ? sql`` : sql`and type = ${filter.type}`}
       ${filter.since === undefined ? sql`` : sql`and occurred_at >= ${filter.since}`}
       ${retained(sql, filter.retentionMs)}
       ${
    filter.after === undefined ? sql`` : sql`and occurred_at <= ${filter.after.occurredAt}
       and (occurred_at < ${filter.after.occurredAt} or alert_id collate "C" > ${filter.after.alertId})`
  }
     order by occurred_at desc, alert_id collate "C"
     limit ${filter.limit}`;
  return rows.map(storedAlert);
}

/** Filters of `listStoredAlerts`. */
export interface StoredAlertFilter {
  readonly type?: string;
  /** Only alerts that occurred at or after this time. */
  readonly since?: Date;
  /** Only alerts listed after this position (a page's last, or the horizon of a page that listed all there was). */
  readonly after?: { readonly xid: string; readonly alertId: string };
  readonly limit: number;
  /** ALERT_RETENTION_DAYS in ms (0: all): alerts stored longer ago are not listed, whether pruned yet or not. */
  readonly retentionMs?: number;
}

/** A page of `listStoredAlerts`. */
export interface StoredAlertPage {
  /** The alerts, oldest stored first, each with the id of the transaction that stored it. */
  readonly items: readonly (StoredAlert & { readonly storedXid: string })[];
  /** The oldest transaction still running when the page was read: every alert stored before it was listable. */
  readonly horizon: string;
}

/**
 * Stored alerts in the order they were stored (by the storing transaction's id; of one transaction, by alertId in
 * code-point order), only those of transactions older than every one still running: one that commits later has a
 * greater id than the horizon, so a reader that goes on from where it stopped never misses an alert nor reads one twice.
 */
export async function listStoredAlerts(sql: Sql, filter: StoredAlertFilter): Promise<StoredAlertPage> {
  const rows = await sql<(AlertRow & { horizon: string; stored_xid: string | null })[]>`
    with h as (select pg_snapshot_xmin(pg_current_snapshot()) as horizon)
    select h.horizon::text as horizon, a.stored_xid::text as stored_xid, a.alert_id, a.type, a.severity,
           a.subject_kind, a.subject_id, a.occurred_at, a.details
      from h left join lateral (
        select stored_xid, alert_id, type, severity, subject_kind, subject_id, occurred_at, details
          from alerts
         where stored_xid < h.horizon
           ${filter.type === undefined ? sql`` : sql`and type = ${filter.type}`}
           ${filter.since === undefined ? sql`` : sql`and occurred_at >= ${filter.since}`}
       ${retained(sql, filter.retentionMs)}
           ${
    filter.after === undefined ? sql`` : sql`and stored_xid >= ${filter.after.xid}::xid8
           and (stored_xid > ${filter.after.xid}::xid8 or alert_id collate "C" > ${filter.after.alertId})`
  }
         order by stored_xid, alert_id collate "C"
         limit ${filter.limit}
      ) a on true
     order by a.stored_xid, a.alert_id collate "C"`;
  return {
    horizon: rows[0].horizon,
    items: rows.filter((r) => r.stored_xid !== null).map((r) => ({ ...storedAlert(r), storedXid: r.stored_xid! })),
  };
}

/** A user's latest stored recommendations (the `recommendations` topic payload), or null. */
export async function latestRecommendations(
  sql: Sql,
  userId: string,
): Promise<{ payload: unknown; generatedAt: string } | null> {
  const [row] = await sql<{ payload: unknown; generated_at: Date }[]>`
    select payload, generated_at from latest_recommendations where user_id = ${userId}`;
  return row ? { payload: row.payload, generatedAt: row.generated_at.toISOString() } : null;
}
