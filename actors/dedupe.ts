/**
 * Exactly-once for messages that may arrive twice. After a crash a partition replays from its
 * checkpoint and re-produces its outputs with identical ids, so product and global actors can
 * receive the same fact twice. Output ids of messages have the form
 * `<topic>-<partition>-<offset>-<rule>` (engine/partition_worker.ts; the topic reads `<topic>~<generation>` once
 * the partition's log started again below its checkpoint, so that the new log is a source of its own), and an actor
 * receives at most one fact per input message under a rule without a dash, so such a fact is identified by its
 * source partition and offset. (The abandonments a late user event raises before itself, besides its
 * activity fact, have rules with a dash, `a-cart` and `a-checkout`: their ids go to the ring below.)
 *
 * Per source partition we keep the offsets already seen as runs, within a window of the last
 * `window` offsets: an offset inside the window is a duplicate if seen, an offset below it is a
 * replay (outputs of a source partition are out of offset order by at most one batch, and a
 * replay starts at most one checkpoint segment back, so the window must exceed
 * CHECKPOINT_MAX_MESSAGES plus the largest batch; engine/config.ts refuses to start otherwise).
 * Ids without a source offset (timer outputs, canonical events) go to a ring of the last
 * `recentLimit` 52-bit id hashes.
 */
import { fromBase64, toBase64 } from "./base64.ts";
import { hash52 } from "./hash.ts";
import { put } from "./records.ts";

/** Seen-message memory of one actor. */
export interface DedupeState {
  /**
   * Sources (`topic-partition`) in the order first seen; `runs[i]` are the offsets seen from `sources[i]`, as flattened
   * inclusive runs `[start0, end0, start1, end1, …]`. Two arrays, so that a fact copies a dozen references and shares
   * the names: a product hears from every user partition, and copying a plain object of a dozen keys added in
   * varying orders (a hidden class per order) was 5% of the domain logic's time, a Map copy 0.6 µs.
   */
  readonly sources: readonly string[];
  readonly runs: readonly (readonly number[])[];
  /** Hashes of ids without a source offset, oldest first. */
  readonly recent: readonly number[];
}

/** Bounds of a dedupe memory. */
export interface DedupeBounds {
  readonly window: number;
  readonly recentLimit: number;
}

/** An empty memory. */
export const EMPTY_DEDUPE: DedupeState = Object.freeze({ sources: [], runs: [], recent: [] });

const SOURCE_ID = /^(.+-\d+)-(\d+)-[^-]*$/;

/** The source partition and offset an output id derives from, if it derives from a message. */
export function factSource(id: string): { source: string; offset: number } | undefined {
  if (id.startsWith("timer-")) return undefined;
  const match = SOURCE_ID.exec(id);
  return match ? { source: match[1], offset: Number(match[2]) } : undefined;
}

/** Records a fact's output id; returns the new memory, or null if it was seen before (a duplicate). */
export function admit(state: DedupeState, id: string, bounds: DedupeBounds): DedupeState | null {
  const position = factSource(id);
  if (!position) return admitRecent(state, hash52(id), bounds.recentLimit);
  const at = state.sources.indexOf(position.source);
  const next = insertOffset(at < 0 ? [] : state.runs[at], position.offset, bounds.window);
  if (!next) return null;
  if (at < 0) return { ...state, sources: [...state.sources, position.source], runs: [...state.runs, next] };
  const runs = state.runs.slice();
  runs[at] = next;
  return { ...state, runs };
}

/** Records an id that carries no source offset (an eventId); null if it is among the recent ones. */
export function admitId(state: DedupeState, id: string, bounds: DedupeBounds): DedupeState | null {
  return admitRecent(state, hash52(id), bounds.recentLimit);
}

function admitRecent(state: DedupeState, hash: number, limit: number): DedupeState | null {
  const recent = admitHash(state.recent, hash, limit);
  return recent ? { ...state, recent } : null;
}

/** Appends `hash` to the last `limit` hashes (oldest first), copied once; null if it is among them. */
export function admitHash(hashes: readonly number[], hash: number, limit: number): number[] | null {
  if (hashes.includes(hash)) return null;
  const next = hashes.slice(Math.max(0, hashes.length + 1 - limit));
  next.push(hash);
  return next;
}

/**
 * Inserts `offset` into sorted inclusive runs; null if already present or below the window. A hot
 * product holds hundreds of runs per source (its offsets are scattered), and offsets mostly come
 * last: the place is found by binary search, and the runs before it are copied in one slice.
 */
export function insertOffset(runs: readonly number[], offset: number, window: number): number[] | null {
  const n = runs.length;
  const hi = n > 0 ? runs[n - 1] : -Infinity;
  if (offset <= hi - window) return null;
  // First run whose end is ≥ offset - 1 (the run offset may extend or fall into), as run index `lo`.
  let lo = 0;
  let up = n / 2;
  while (lo < up) {
    const mid = (lo + up) >>> 1;
    if (runs[2 * mid + 1] < offset - 1) lo = mid + 1;
    else up = mid;
  }
  const i = 2 * lo;
  if (i < n && runs[i] <= offset && offset <= runs[i + 1]) return null;
  let start = offset;
  let end = offset;
  let j = i;
  // Merge with the run ending right before, and with the run starting right after.
  while (j < n && runs[j] <= offset + 1) {
    start = Math.min(start, runs[j]);
    end = Math.max(end, runs[j + 1]);
    j += 2;
  }
  // Runs after the new one start above `offset`, which is inside the window: only earlier ones can fall out.
  const floor = (j < n ? hi : end) - window + 1;
  let kept = 0;
  while (kept < i && runs[kept + 1] < floor) kept += 2;
  const next = runs.slice(kept, i);
  if (next.length > 0) next[0] = Math.max(next[0], floor);
  next.push(next.length === 0 ? Math.max(start, floor) : start, end);
  for (let k = j; k < n; k++) next.push(runs[k]);
  return next;
}

/** The persisted form: runs as base64 varint deltas (a few bytes per run instead of ~20 characters). */
export interface PersistedDedupe {
  readonly sources: Readonly<Record<string, string | readonly number[]>>;
  readonly recent: readonly number[];
}

/** Compacts a memory for a checkpoint. */
export function persistDedupe(state: DedupeState): PersistedDedupe {
  const sources: Record<string, string> = {};
  state.sources.forEach((source, i) => put(sources, source, encodeRuns(state.runs[i])));
  return { sources, recent: state.recent };
}

/** Inverse of `persistDedupe`; also accepts plain run arrays. */
export function restoreDedupe(data: PersistedDedupe | undefined): DedupeState {
  if (!data) return EMPTY_DEDUPE;
  const entries = Object.entries(data.sources ?? {});
  return {
    sources: entries.map(([source]) => source),
    runs: entries.map(([, runs]) => typeof runs === "string" ? decodeRuns(runs) : runs),
    recent: data.recent ?? [],
  };
}

/** Runs `[s0, e0, s1, e1, …]` as unsigned LEB128 varints of s0, e0 − s0, s1 − e0, e1 − s1, …, in base64. */
export function encodeRuns(runs: readonly number[]): string {
  let n = 0;
  let previous = 0;
  for (const value of runs) {
    // A varint of an offset below 2^53 takes at most 8 bytes; a larger number (a corrupt id) up to 147.
    if (scratch.length - n < VARINT_ROOM) scratch = grown(scratch, n);
    let delta = value - previous;
    previous = value;
    while (delta >= 0x80) {
      scratch[n++] = (delta % 0x80) | 0x80;
      delta = Math.floor(delta / 0x80);
    }
    scratch[n++] = delta;
  }
  return toBase64(scratch.subarray(0, n));
}

/** Varints being encoded; grown as needed, never shared beyond one call. */
let scratch: Uint8Array = new Uint8Array(256);
/** Room for the varint of any finite double (1.8e308 < 2^1029, 7 bits a byte). */
const VARINT_ROOM = 148;

/** A buffer twice the size of `bytes`, with its first `used` bytes. */
function grown(bytes: Uint8Array, used: number): Uint8Array {
  const next = new Uint8Array(Math.max(2 * bytes.length, used + VARINT_ROOM));
  next.set(bytes.subarray(0, used));
  return next;
}

/** Inverse of `encodeRuns`. */
export function decodeRuns(text: string): number[] {
  const bytes = fromBase64(text);
  const runs: number[] = [];
  let previous = 0;
  for (let i = 0; i < bytes.length;) {
    let delta = 0;
    let scale = 1;
    while (bytes[i] & 0x80) {
      delta += (bytes[i++] & 0x7f) * scale;
      scale *= 0x80;
    }
    delta += bytes[i++] * scale;
    previous += delta;
    runs.push(previous);
  }
  return runs;
}
