/**
 * Where the instance's least recently used actors end: passivation beyond MAX_ACTORS is least recently used across
 * every partition of the instance, not within each, yet no partition hands over or sorts all its actors. Each
 * partition's clean actors are already in use order (its cells map, least recently used first), so a merge of those
 * sequences that stops after the `count` oldest finds them in O(count · log partitions).
 */

/**
 * Passivate the clean actors used before `usedAt`, and `ties` of those used at it (least recently used first): the
 * actors used at the cut are shared out between partitions by count, so that the instance's total is exact.
 */
export interface LruCut {
  readonly usedAt: number;
  readonly ties: number;
}

/** Passivates nothing beyond what is idle. */
export const NO_CUT: LruCut = { usedAt: Number.NEGATIVE_INFINITY, ties: 0 };

/**
 * The cut of each sequence (its clean actors' use times, least recently used first) such that, together, the cuts
 * take the `count` least recently used across all sequences (every one if they hold fewer). Reads only as far as
 * those `count`: nothing per actor kept in memory.
 */
export function lruCuts(sequences: readonly Iterable<number>[], count: number): LruCut[] {
  if (count <= 0) return sequences.map(() => NO_CUT);
  const iterators = sequences.map((s) => s[Symbol.iterator]());
  const heads: number[] = new Array(iterators.length);
  // A binary min-heap of the sequence indexes that still have a head, ordered by it.
  const heap: number[] = [];
  const less = (a: number, b: number) => heads[heap[a]] < heads[heap[b]];
  const swap = (a: number, b: number) => ([heap[a], heap[b]] = [heap[b], heap[a]]);
  const down = (at: number) => {
    for (;;) {
      const left = 2 * at + 1, right = left + 1;
      let least = at;
      if (left < heap.length && less(left, least)) least = left;
      if (right < heap.length && less(right, least)) least = right;
      if (least === at) return;
      swap(at, least);
      at = least;
    }
  };
  const up = (at: number) => {
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!less(at, parent)) return;
      swap(at, parent);
      at = parent;
    }
  };
  iterators.forEach((iterator, i) => {
    const next = iterator.next();
    if (next.done) return;
    heads[i] = next.value;
    heap.push(i);
    up(heap.length - 1);
  });
  // Per sequence: the last use time taken from it, and how many taken at that time.
  const lastTaken = new Array<number>(iterators.length).fill(Number.NaN);
  const takenAtLast = new Array<number>(iterators.length).fill(0);
  let cut = Number.NEGATIVE_INFINITY;
  for (let taken = 0; taken < count && heap.length > 0; taken++) {
    const i = heap[0];
    const usedAt = heads[i];
    if (usedAt > cut) cut = usedAt;
    if (lastTaken[i] === usedAt) takenAtLast[i]++;
    else [lastTaken[i], takenAtLast[i]] = [usedAt, 1];
    const next = iterators[i].next();
    if (next.done) {
      heap[0] = heap[heap.length - 1];
      heap.pop();
    } else {
      heads[i] = next.value;
    }
    down(0);
  }
  return iterators.map((_, i) => ({ usedAt: cut, ties: lastTaken[i] === cut ? takenAtLast[i] : 0 }));
}
