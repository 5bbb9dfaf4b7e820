/**
 * Item-to-item recommendations from co-occurrence within sessions. Each product actor owns
 * bounded counters of the products co-viewed and co-bought with it (at most RELATED_CANDIDATES
 * each; when full, the lowest count goes, ties broken by product id, so the top-K survives).
 *
 * The flow is message-based, since a user actor cannot read a product actor: on a product view
 * or cart add, the user actor (which owns the rate limit, the cart and the purchases) attaches a
 * `recommend: {exclude}` request to the fact it forwards to that product; the product actor, which
 * owns the counters, ranks them (co-views + RECS_CO_BOUGHT_WEIGHT × co-buys), drops the product
 * itself and the excluded ones, and emits the top RECS_TOP_K on `recommendations` keyed by the
 * user. The latest recommendations a user got are read from that topic (the engine's table).
 */
/**
 * Co-occurrence counts: related product id → count. A Map in memory (a product with a full set
 * gains and drops an id on most views; a plain object with that many changing keys is a slow
 * hash table to copy), a plain object when persisted (`coCountsToJSON`, `coCountsFromJSON`).
 */
export type CoCounts = ReadonlyMap<string, number>;

/** The persisted form of co-occurrence counts. */
export type PersistedCoCounts = Readonly<Record<string, number>>;

/** One recommended product. */
export interface ScoredProduct {
  readonly productId: string;
  readonly score: number;
}

/** The payload on the `recommendations` topic. */
export interface Recommendation {
  /** `ctx.outputId`, identical on replay, for idempotent storage. */
  readonly recommendationId: string;
  readonly userId: string;
  readonly basedOn: string;
  readonly items: readonly ScoredProduct[];
  /** Event time of the view or cart add that asked for it. */
  readonly generatedAt: string;
}

/**
 * Counts one more co-occurrence with each of `related` (except `self`), keeping at most `limit`
 * (Space-Saving): a new id on a full product takes the place of the lowest count (ties: the last
 * product id) and inherits that count plus one. Entering at 1, it was always the lowest and went at
 * once, so once every count was 2 or more no new product could get in however often it was seen.
 * Counts of ids that entered so are estimates from above, by at most the count they inherited.
 */
export function bump(counts: CoCounts, related: readonly string[], self: string, limit: number): CoCounts {
  const next = new Map(counts);
  // Counts restored from a checkpoint taken under a higher limit are trimmed to this one first.
  while (next.size > limit) next.delete(lowest(next)[0]);
  for (const id of new Set(related)) {
    if (id === self) continue;
    const count = next.get(id);
    if (count !== undefined || next.size < limit) {
      next.set(id, (count ?? 0) + 1);
    } else if (next.size > 0) {
      const [worst, n] = lowest(next);
      next.delete(worst);
      next.set(id, n + 1);
    }
  }
  return next;
}

/** The entry that goes first: the lowest count, ties by the last product id. */
function lowest(counts: CoCounts): [string, number] {
  let worst = "";
  let n = Infinity;
  for (const [id, count] of counts) {
    if (count < n || (count === n && compare(id, worst) > 0)) {
      worst = id;
      n = count;
    }
  }
  return [worst, n];
}

/**
 * Counts as an object, for checkpoints and readers. Without a prototype, so that V8 builds it as a
 * hash table at once: `Object.fromEntries` made each product's set of ids a new hidden class, about
 * four times the cost of building and serialising it (23–30 µs for 30 ids here, against 6–8).
 */
export function coCountsToJSON(counts: CoCounts): PersistedCoCounts {
  const record: Record<string, number> = Object.create(null);
  for (const [id, n] of counts) record[id] = n;
  return record;
}

/** Inverse of `coCountsToJSON`. */
export function coCountsFromJSON(data: PersistedCoCounts | undefined): CoCounts {
  return new Map(Object.entries(data ?? {}));
}

/** Ranks related products by co-views + `boughtWeight` × co-buys, best first, ties by product id. */
export function rankRelated(
  coViewed: CoCounts,
  coBought: CoCounts,
  boughtWeight: number,
  limit: number,
  exclude: ReadonlySet<string> = new Set(),
): ScoredProduct[] {
  const scores = new Map<string, number>();
  for (const [id, n] of coViewed) scores.set(id, n);
  for (const [id, n] of coBought) scores.set(id, (scores.get(id) ?? 0) + boughtWeight * n);
  return [...scores]
    .filter(([id, score]) => score > 0 && !exclude.has(id))
    .sort(([a, x], [b, y]) => y - x || compare(a, b))
    .slice(0, limit)
    .map(([productId, score]) => ({ productId, score: Math.round(score * 1e6) / 1e6 }));
}

/** Code-unit order, the same in every locale. */
export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
