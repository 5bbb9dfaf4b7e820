/**
 * A product's checkpointed trending score decayed to one time, in SQL: the stored score is as of the product's own
 * newest activity (`trendingAt`), so scores of products busy at different times compare (and read) right only once
 * brought to the same instant.
 */
import type postgres from "postgres";
import type { Sql } from "../engine/database.ts";

/** The time trending scores are compared at, and their half-life: each stored score is as of its product's last event. */
export interface TrendingReference {
  readonly at: number;
  readonly halfLifeMs: number;
}

/** Halvings past which a decayed score is 0 (2^−1000 is still a normal double; PostgreSQL refuses an underflow). */
const MAX_HALVINGS = 1_000;
/** Doublings a score is brought back by at most: a guard against overflow (2^64 times any score is a finite double). */
const MAX_DOUBLINGS = 64;

/**
 * The score of the product state column `state` at `trending.at` (0 without one). The decay runs both ways: a product
 * whose activity reached its partition after `at` has its score brought back to `at`, exactly as long as it came after.
 */
export function decayedTrendingScore(sql: Sql, trending: TrendingReference): postgres.Fragment {
  return sql`coalesce((state->>'trendingScore')::float8 * power(2::float8, least(${MAX_DOUBLINGS}::float8,
            greatest(-${MAX_HALVINGS}::float8,
              (extract(epoch from (state->>'trendingAt')::timestamptz) * 1000 - ${trending.at}::float8)
              / ${trending.halfLifeMs}::float8))), 0)`;
}

/** A decayed score as answers give it: rounded to six decimals, as the product state rounds it. */
export function roundedScore(score: number): number {
  return Math.round(score * 1e6) / 1e6;
}
