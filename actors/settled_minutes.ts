/**
 * The global actor's settled minutes (actors/global.ts MinuteParts) as ascending chunks of at most a few dozen, so that
 * a version changing one of them (a lagging partition's late fact, a new minute in a gap) copies its chunk and the list
 * of chunks, about 90 references for a day of minutes, not the day; the unchanged chunks and minutes are shared.
 */

/** Minutes per chunk as they settle: √1440 ≈ 38, so a late fact copies about as many chunks as minutes. */
export const SETTLED_CHUNK = 40;

/** Ascending chunks, none empty, each ascending, all of them together ascending. */
export type Chunks<T extends { readonly minute: number }> = readonly (readonly T[])[];

/** `items` (ascending) in chunks of SETTLED_CHUNK, each a slice: the items keep their identity. */
export function chunked<T extends { readonly minute: number }>(items: readonly T[]): Chunks<T> {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += SETTLED_CHUNK) chunks.push(items.slice(i, i + SETTLED_CHUNK));
  return chunks;
}

/** The latest minute of `chunks`; -Infinity if none. */
export function lastMinute<T extends { readonly minute: number }>(chunks: Chunks<T>): number {
  return chunks.length === 0 ? -Infinity : chunks[chunks.length - 1][chunks[chunks.length - 1].length - 1].minute;
}

/** The index of the chunk where `minute` is or would go: the last one starting at or before it (the first if none). */
export function chunkOf<T extends { readonly minute: number }>(chunks: Chunks<T>, minute: number): number {
  let lo = 0;
  let hi = chunks.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (chunks[mid][0].minute <= minute) lo = mid + 1;
    else hi = mid;
  }
  return Math.max(0, lo - 1);
}

/**
 * `chunks` with the chunk of `minute` replaced by `change` of it (ascending, not empty), halved once it holds twice
 * SETTLED_CHUNK (new minutes in gaps grow it); the other chunks are the same arrays.
 */
export function changedAt<T extends { readonly minute: number }>(
  chunks: Chunks<T>,
  minute: number,
  change: (chunk: readonly T[]) => readonly T[],
): Chunks<T> {
  if (chunks.length === 0) return [change([])];
  const at = chunkOf(chunks, minute);
  const changed = change(chunks[at]);
  const replacement = changed.length < 2 * SETTLED_CHUNK
    ? [changed]
    : [changed.slice(0, changed.length >> 1), changed.slice(changed.length >> 1)];
  return [...chunks.slice(0, at), ...replacement, ...chunks.slice(at + 1)];
}

/** How many of the first items of `chunks` pass `test`, counted up to the first that does not. */
export function leadingCount<T extends { readonly minute: number }>(
  chunks: Chunks<T>,
  test: (item: T) => boolean,
): number {
  let count = 0;
  for (const chunk of chunks) {
    for (const item of chunk) {
      if (!test(item)) return count;
      count++;
    }
  }
  return count;
}

/**
 * `chunks` without their first `dropped` items and with `added` (ascending, after them) appended, filling the last
 * chunk up to SETTLED_CHUNK first; the chunks neither touches are the same arrays.
 */
export function shifted<T extends { readonly minute: number }>(
  chunks: Chunks<T>,
  dropped: number,
  added: readonly T[],
): Chunks<T> {
  if (dropped === 0 && added.length === 0) return chunks;
  const result: (readonly T[])[] = [];
  let skip = dropped;
  for (const chunk of chunks) {
    if (skip >= chunk.length) skip -= chunk.length;
    else {
      result.push(skip === 0 ? chunk : chunk.slice(skip));
      skip = 0;
    }
  }
  let i = 0;
  const last = result[result.length - 1];
  if (last !== undefined && last.length < SETTLED_CHUNK && added.length > 0) {
    i = Math.min(added.length, SETTLED_CHUNK - last.length);
    result[result.length - 1] = last.concat(added.slice(0, i));
  }
  for (; i < added.length; i += SETTLED_CHUNK) result.push(added.slice(i, i + SETTLED_CHUNK));
  return result;
}

/** All items of `chunks`, then `after`, in one new array. */
export function flattened<T extends { readonly minute: number }>(chunks: Chunks<T>, after: readonly T[]): readonly T[] {
  if (chunks.length === 0) return after;
  if (chunks.length === 1 && after.length === 0) return chunks[0];
  return ([] as T[]).concat(...chunks, after);
}
