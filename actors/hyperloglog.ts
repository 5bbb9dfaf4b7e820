/**
 * HyperLogLog distinct counting with Ertl's improved estimator ("New cardinality estimation
 * algorithms for HyperLogLog sketches", 2017), which needs no empirical bias tables and is
 * accurate from one element up. 32-bit MurmurHash3 of the item; the top `p` bits pick the
 * register, the rest give the rank. Standard error ≈ 1.04/√(2^p): 0.81% at p = 14.
 *
 * Small sketches are sparse (sorted `index << 5 | rank` words), large ones dense (one byte per
 * register); the switch happens when the sparse form would outgrow the dense one. Values are
 * immutable: `add` returns a new sketch, or the same one when nothing changed. The persisted form
 * is `{p, sparse}` or `{p, dense}` with base64 payloads.
 */
import { fromBase64, toBase64 } from "./base64.ts";
import { murmur3 } from "./hash.ts";

/** Precision used for unique viewers: 16,384 registers, ≤ 16 KiB dense. */
export const VIEWER_PRECISION = 14;
const MIN_PRECISION = 4;
const MAX_PRECISION = 16;
const HASH_BITS = 32;

/** The persisted form of a sketch. */
export interface HyperLogLogData {
  readonly p: number;
  readonly sparse?: string;
  readonly dense?: string;
}

/** An immutable HyperLogLog sketch. */
export class HyperLogLog {
  readonly p: number;
  /** Sorted `index << 5 | rank` words, or null once dense. */
  readonly #sparse: Uint32Array | null;
  readonly #dense: Uint8Array | null;

  private constructor(p: number, sparse: Uint32Array | null, dense: Uint8Array | null) {
    this.p = p;
    this.#sparse = sparse;
    this.#dense = dense;
  }

  /** An empty sketch with 2^p registers. */
  static empty(p = VIEWER_PRECISION): HyperLogLog {
    if (!Number.isInteger(p) || p < MIN_PRECISION || p > MAX_PRECISION) {
      throw new RangeError(
        `Cannot create a HyperLogLog: precision must be ${MIN_PRECISION}–${MAX_PRECISION}, got ${p}`,
      );
    }
    return new HyperLogLog(p, new Uint32Array(0), null);
  }

  /** Restores a persisted sketch. */
  static fromJSON(data: HyperLogLogData): HyperLogLog {
    const empty = HyperLogLog.empty(data.p);
    const m = 1 << data.p;
    if (data.dense !== undefined) {
      const registers = fromBase64(data.dense);
      if (registers.length !== m) {
        throw new RangeError(`Cannot restore a HyperLogLog: ${registers.length} registers, expected ${m}`);
      }
      return new HyperLogLog(data.p, null, registers);
    }
    if (data.sparse === undefined || data.sparse === "") return empty;
    const bytes = fromBase64(data.sparse);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const words = new Uint32Array(bytes.length / 4);
    for (let i = 0; i < words.length; i++) words[i] = view.getUint32(i * 4, true);
    return new HyperLogLog(data.p, words, null);
  }

  /** Number of registers. */
  get m(): number {
    return 1 << this.p;
  }

  /** Whether the sketch is in its sparse form. */
  get isSparse(): boolean {
    return this.#sparse !== null;
  }

  /** Adds an item (hashed with MurmurHash3). */
  add(item: string): HyperLogLog {
    return this.addHash(murmur3(item));
  }

  /** Adds an unsigned 32-bit hash. */
  addHash(hash: number): HyperLogLog {
    const q = HASH_BITS - this.p;
    const index = hash >>> q;
    const rest = (hash << this.p) >>> 0;
    const rank = Math.min(Math.clz32(rest) + 1, q + 1);
    return this.#withRegister(index, rank);
  }

  /** The union of two sketches of the same precision. */
  merge(other: HyperLogLog): HyperLogLog {
    if (other.p !== this.p) throw new RangeError(`Cannot merge HyperLogLogs of precision ${this.p} and ${other.p}`);
    const registers = new Uint8Array(this.m);
    let nonZero = 0;
    const take = (index: number, rank: number) => {
      if (registers[index] === 0) nonZero++;
      if (rank > registers[index]) registers[index] = rank;
    };
    this.#forEach(take);
    other.#forEach(take);
    if (this.#dense || other.#dense || nonZero * 4 > this.m) return new HyperLogLog(this.p, null, registers);
    const words = new Uint32Array(nonZero);
    let k = 0;
    for (let i = 0; i < registers.length; i++) if (registers[i] > 0) words[k++] = (i << 5) | registers[i];
    return new HyperLogLog(this.p, words, null);
  }

  /** Estimated number of distinct items added. */
  estimate(): number {
    const m = this.m;
    const q = HASH_BITS - this.p;
    const histogram = new Array<number>(q + 2).fill(0);
    let nonZero = 0;
    this.#forEach((_, rank) => {
      histogram[rank]++;
      nonZero++;
    });
    histogram[0] = m - nonZero;
    let z = m * tau(1 - histogram[q + 1] / m);
    for (let k = q; k >= 1; k--) z = 0.5 * (z + histogram[k]);
    z += m * sigma(histogram[0] / m);
    return Math.round((m * m) / (2 * Math.LN2) / z);
  }

  /** The compact persisted form. */
  toJSON(): HyperLogLogData {
    if (this.#dense) return { p: this.p, dense: toBase64(this.#dense) };
    const words = this.#sparse!;
    const bytes = new Uint8Array(words.length * 4);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < words.length; i++) view.setUint32(i * 4, words[i], true);
    return { p: this.p, sparse: toBase64(bytes) };
  }

  #forEach(fn: (index: number, rank: number) => void): void {
    if (this.#dense) {
      const registers = this.#dense;
      for (let i = 0; i < registers.length; i++) if (registers[i] > 0) fn(i, registers[i]);
      return;
    }
    for (const word of this.#sparse!) fn(word >>> 5, word & 31);
  }

  #withRegister(index: number, rank: number): HyperLogLog {
    if (this.#dense) {
      if (this.#dense[index] >= rank) return this;
      const registers = this.#dense.slice();
      registers[index] = rank;
      return new HyperLogLog(this.p, null, registers);
    }
    const words = this.#sparse!;
    let lo = 0;
    let hi = words.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (words[mid] >>> 5 < index) lo = mid + 1;
      else hi = mid;
    }
    const word = (index << 5) | rank;
    if (lo < words.length && words[lo] >>> 5 === index) {
      if ((words[lo] & 31) >= rank) return this;
      const next = words.slice();
      next[lo] = word;
      return new HyperLogLog(this.p, next, null);
    }
    if ((words.length + 1) * 4 > this.m) {
      const registers = new Uint8Array(this.m);
      for (const w of words) registers[w >>> 5] = w & 31;
      registers[index] = rank;
      return new HyperLogLog(this.p, null, registers);
    }
    const next = new Uint32Array(words.length + 1);
    next.set(words.subarray(0, lo));
    next[lo] = word;
    next.set(words.subarray(lo), lo + 1);
    return new HyperLogLog(this.p, next, null);
  }
}

/** σ(x) = x + Σ_{k≥1} x^(2^k) 2^(k−1), for the share of empty registers. */
function sigma(x: number): number {
  if (x === 1) return Infinity;
  let y = 1;
  let z = x;
  let previous: number;
  do {
    x *= x;
    previous = z;
    z += x * y;
    y += y;
  } while (z !== previous);
  return z;
}

/** τ(x) = (1 − x − Σ_{k≥1} (1 − x^(2^−k))² 2^−k) / 3, for the share of saturated registers. */
function tau(x: number): number {
  if (x === 0 || x === 1) return 0;
  let y = 1;
  let z = 1 - x;
  let previous: number;
  do {
    x = Math.sqrt(x);
    previous = z;
    y *= 0.5;
    z -= (1 - x) ** 2 * y;
  } while (z !== previous);
  return z / 3;
}
