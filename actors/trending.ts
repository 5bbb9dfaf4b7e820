/**
 * Trending score: views, cart adds and purchases, weighted and exponentially decayed with a
 * half-life (TRENDING_HALF_LIFE_MINUTES), on event time. Activity is counted in buckets of one
 * twelfth of the half-life (integer counts, so the result does not depend on arrival order), and
 * buckets older than TRENDING_HORIZON_HALF_LIVES half-lives behind the latest event are dropped
 * (their weight is below 0.1%). The score at time T is Σ weight × count × 2^(−(T − bucket)/half-life).
 */

/** A bucket: [start (epoch ms), views, cart adds, purchases]. */
export type TrendBucket = readonly [number, number, number, number];

/** What kind of activity a bucket counts. */
export type TrendKind = "view" | "cart" | "purchase";

/** Buckets per half-life. */
export const BUCKETS_PER_HALF_LIFE = 12;
/** How many half-lives of history are kept. */
export const TRENDING_HORIZON_HALF_LIVES = 10;

/** Weights of each kind of activity. */
export interface TrendWeights {
  readonly view: number;
  readonly cart: number;
  readonly purchase: number;
}

const COLUMN: Record<TrendKind, 1 | 2 | 3> = { view: 1, cart: 2, purchase: 3 };

/** Start (epoch ms) of the bucket holding `at`. */
export function bucketStart(at: number, halfLifeMs: number): number {
  const width = Math.max(1, Math.floor(halfLifeMs / BUCKETS_PER_HALF_LIFE));
  return Math.floor(at / width) * width;
}

/** Counts one activity at `at`; `latest` is the latest event time of the product (after this one). */
export function recordTrend(
  buckets: readonly TrendBucket[],
  kind: TrendKind,
  at: number,
  latest: number,
  halfLifeMs: number,
): TrendBucket[] {
  const width = Math.max(1, Math.floor(halfLifeMs / BUCKETS_PER_HALF_LIFE));
  const horizon = latest - TRENDING_HORIZON_HALF_LIVES * halfLifeMs;
  const kept = buckets.filter((b) => b[0] + width > horizon);
  const start = Math.floor(at / width) * width;
  if (start + width <= horizon) return kept;
  const column = COLUMN[kind];
  const index = kept.findIndex((b) => b[0] === start);
  if (index >= 0) {
    const b = [...kept[index]] as [number, number, number, number];
    b[column]++;
    kept[index] = b;
    return kept;
  }
  const b: [number, number, number, number] = [start, 0, 0, 0];
  b[column] = 1;
  return [...kept, b].sort((x, y) => x[0] - y[0]);
}

/** The decayed, weighted score at time `at` (rounded to 6 decimals). */
export function trendingScore(
  buckets: readonly TrendBucket[],
  at: number,
  weights: TrendWeights,
  halfLifeMs: number,
): number {
  let score = 0;
  for (const [start, views, carts, purchases] of buckets) {
    const decay = 2 ** (-Math.max(0, at - start) / halfLifeMs);
    score += (weights.view * views + weights.cart * carts + weights.purchase * purchases) * decay;
  }
  return Math.round(score * 1e6) / 1e6;
}
