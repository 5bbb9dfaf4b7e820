/** Per-product minute counts (`product_minutes`): added to by checkpoints, ranked over windows by queries. */
import { fromMillis } from "../actors/money.ts";
import type { Sql, TransactionSql } from "../engine/database.ts";
import type { ProductMinute } from "../engine/outputs.ts";
import { decayedTrendingScore, roundedScore, type TrendingReference } from "./trending_score.ts";

/**
 * Adds a checkpoint's deltas (one per product, minute and category) to the stored minutes, then deletes the
 * partition's minutes before the newest `keepFrom`. NOT idempotent on purpose: it must run only in
 * the checkpoint transaction that advances the partition's offset past the facts the deltas count.
 */
export async function storeProductMinutes(
  tx: TransactionSql,
  partition: number,
  deltas: readonly ProductMinute[],
): Promise<void> {
  if (deltas.length === 0) return;
  const rows = deltas.map((d) => ({
    product_id: d.productId,
    // Epoch ms, turned into a timestamp by PostgreSQL: a JavaScript Date and its ISO text cost 0.5 µs per row.
    minute: d.minute,
    category: d.category,
    brand: d.brand,
    views: d.views,
    cart_adds: d.cartAdds,
    orders: d.orders,
    category_orders: d.categoryOrders ?? d.orders,
    units: d.units,
    revenue_millis: d.revenueMillis,
  }));
  await tx`
    insert into product_minutes (product_id, minute, partition, category, brand, views, cart_adds, orders,
      category_orders, units, revenue_millis)
    select r.product_id, to_timestamp(r.minute / 1000.0), ${partition}, r.category, r.brand, r.views, r.cart_adds, r.orders,
           r.category_orders, r.units, r.revenue_millis
      from json_to_recordset(${JSON.stringify(rows)}::text::json) as r(product_id text, minute bigint, category text,
        brand text, views bigint, cart_adds bigint, orders bigint, category_orders bigint, units bigint,
        revenue_millis bigint)
    on conflict (product_id, minute, (coalesce(category, ''))) do update set
      partition = excluded.partition,
      brand = coalesce(excluded.brand, product_minutes.brand),
      views = product_minutes.views + excluded.views,
      cart_adds = product_minutes.cart_adds + excluded.cart_adds,
      orders = product_minutes.orders + excluded.orders,
      category_orders = coalesce(product_minutes.category_orders, product_minutes.orders) + excluded.category_orders,
      units = product_minutes.units + excluded.units,
      revenue_millis = product_minutes.revenue_millis + excluded.revenue_millis`;
  // Not Math.max(...deltas): V8 refuses a call of more than about 125,000 arguments, and a checkpoint may hold more.
  const keepFrom = deltas.reduce((newest, d) => Math.max(newest, d.keepFrom), -Infinity);
  await tx`delete from product_minutes where partition = ${partition} and minute < ${new Date(keepFrom)}`;
}

/** What windowed rankings order by: views, units sold, or revenue. */
export type WindowMeasure = "views" | "units" | "revenue";

const COLUMNS: Readonly<Record<WindowMeasure, string>> = {
  views: "views",
  units: "units",
  revenue: "revenue_millis",
};

/** A product's sums over a window, with its current (checkpointed, not windowed) figures. */
export interface WindowedProduct {
  readonly productId: string;
  readonly views: number;
  readonly cartAdds: number;
  readonly orders: number;
  readonly unitsSold: number;
  readonly revenue: number;
  readonly category: string | null;
  readonly brand: string | null;
  /** From the product's last checkpoint (not windowed); null when it has none. */
  readonly uniqueViewers: number | null;
  /** Its checkpointed trending score decayed to the ranking's `trending.at`; null without a checkpoint. */
  readonly trendingScore: number | null;
  readonly stock: number | null;
  readonly asOf: string | null;
}

type ProductRow = {
  product_id: string;
  views: string;
  cart_adds: string;
  orders: string;
  units: string;
  revenue_millis: string;
  category: string | null;
  brand: string | null;
  unique_viewers: string | null;
  trending_score: string | null;
  stock: string | null;
  updated_at: Date | null;
};

const orNull = (value: string | null): number | null => value === null ? null : Number(value);

/**
 * The `limit` products with the largest `measure` in [from, to) (epoch ms), ties broken by product id; none of it, left
 * out. Each one's trending score is given at `trending.at` (the window's end), as a ranking by trend compares them.
 */
export async function rankProductsInWindow(
  sql: Sql,
  measure: WindowMeasure,
  from: number,
  to: number,
  limit: number,
  trending: TrendingReference,
): Promise<WindowedProduct[]> {
  const rows = await sql<ProductRow[]>`
    with ranked as (
      select product_id, sum(views) as views, sum(cart_adds) as cart_adds, sum(orders) as orders,
             sum(units) as units, sum(revenue_millis) as revenue_millis,
             (array_agg(category order by minute desc, category collate "C") filter (where category is not null))[1]
               as category,
             (array_agg(brand order by minute desc) filter (where brand is not null))[1] as brand
        from product_minutes
       where minute >= ${new Date(from)} and minute < ${new Date(to)}
       group by product_id
      having sum(${sql(COLUMNS[measure])}) > 0
       order by sum(${sql(COLUMNS[measure])}) desc, product_id collate "C"
       limit ${limit}
    )
    -- The product's category as its answer gives it (the latest reported); without a checkpoint, its window's latest.
    select r.product_id, r.views, r.cart_adds, r.orders, r.units, r.revenue_millis,
           coalesce(s.state->>'category', r.category) as category, r.brand, s.state->>'uniqueViewers' as unique_viewers,
           case when s.key is null then null else ${decayedTrendingScore(sql, trending)}::text end as trending_score,
           s.state->>'stock' as stock, s.updated_at
      from ranked r
      left join actor_states s on s.kind = 'product' and s.key = r.product_id
     order by r.${sql(COLUMNS[measure])} desc, r.product_id collate "C"`;
  return rows.map((r) => ({
    productId: r.product_id,
    views: Number(r.views),
    cartAdds: Number(r.cart_adds),
    orders: Number(r.orders),
    unitsSold: Number(r.units),
    revenue: fromMillis(Number(r.revenue_millis)),
    category: r.category,
    brand: r.brand,
    uniqueViewers: orNull(r.unique_viewers),
    trendingScore: r.trending_score === null ? null : roundedScore(Number(r.trending_score)),
    stock: orNull(r.stock),
    asOf: r.updated_at?.toISOString() ?? null,
  }));
}

/** A category's sums over a window (products without a known category are left out). */
export interface WindowedCategory {
  readonly category: string;
  readonly views: number;
  readonly cartAdds: number;
  /** Orders holding a product of the category, each counted once however many of its products it holds. */
  readonly orders: number;
  readonly unitsSold: number;
  readonly revenue: number;
  /** Distinct products of the category with activity in the window. */
  readonly products: number;
  /** Ranked by trend: the decayed, weighted activity of the window. */
  readonly trendingScore?: number;
}

/** Ranking by trend: activity weighted as the products' trending score, decayed to `at` with the half-life. */
export interface TrendMeasure {
  readonly at: number;
  readonly halfLifeMs: number;
  readonly weights: { readonly view: number; readonly cart: number; readonly purchase: number };
}

/** Halvings past which a decayed count is 0 (2^−1000 is still a normal double; PostgreSQL refuses an underflow). */
const MAX_HALVINGS = 1_000;

/**
 * The `limit` categories with the largest `measure` in [from, to) (epoch ms), ties broken by name (none of it: left
 * out). A trend measure sums each minute's weighted views, cart adds and orders decayed to `at`: the products'
 * trending score, at minute rather than bucket resolution, given as `trendingScore`.
 */
export async function rankCategoriesInWindow(
  sql: Sql,
  measure: WindowMeasure | TrendMeasure,
  from: number,
  to: number,
  limit: number,
): Promise<WindowedCategory[]> {
  const score = typeof measure === "string" ? sql`sum(${sql(COLUMNS[measure])})` : sql`sum(
    (${measure.weights.view}::float8 * views + ${measure.weights.cart}::float8 * cart_adds
      + ${measure.weights.purchase}::float8 * orders)
    * power(2::float8, greatest(-${MAX_HALVINGS}::float8,
        -greatest(0, ${measure.at}::float8 - extract(epoch from minute) * 1000) / ${measure.halfLifeMs}::float8)))`;
  const rows = await sql<
    (Omit<ProductRow, "product_id" | "brand"> & { category: string; products: string; score: string })[]
  >`
    select category, sum(views) as views, sum(cart_adds) as cart_adds,
           sum(coalesce(category_orders, orders)) as orders, sum(units) as units,
           sum(revenue_millis) as revenue_millis, count(distinct product_id) as products, ${score}::text as score
      from product_minutes
     where minute >= ${new Date(from)} and minute < ${new Date(to)} and category is not null
     group by category
    having ${score} > 0
     order by ${score} desc, category collate "C"
     limit ${limit}`;
  return rows.map((r) => ({
    ...(typeof measure === "string" ? {} : { trendingScore: Math.round(Number(r.score) * 1e6) / 1e6 }),
    category: r.category,
    views: Number(r.views),
    cartAdds: Number(r.cart_adds),
    orders: Number(r.orders),
    unitsSold: Number(r.units),
    revenue: fromMillis(Number(r.revenue_millis)),
    products: Number(r.products),
  }));
}
