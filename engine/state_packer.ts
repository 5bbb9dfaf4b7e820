/**
 * Idle actors are kept packed. An actor's persisted form (what a checkpoint stores as JSON) is
 * encoded into a compact one-byte string: object keys become indexes into a key table shared by
 * every actor of the packer, repeated strings become back-references, small integers one byte,
 * ISO timestamps and UUIDs their numeric value. A user state of ~1.9 KB of JSON packs into a few
 * hundred bytes, stored on the V8 heap with a 16-byte header (a Uint8Array would cost more than
 * the state in wrappers and off-heap bookkeeping). Packed data never leaves the process, so the
 * key table needs no versioning; it is bounded, and keys beyond it are spelled out.
 *
 * `unpack(pack(x))` equals `JSON.parse(JSON.stringify(x))` for every JSON-serialisable x.
 */

import { writeVarint } from "./varint.ts";

/** Keys beyond this many distinct ones are stored inline: data-dependent keys (product ids) must not grow the table for ever. */
export const KEY_TABLE_LIMIT = 4_096;

const NULL = 0x00;
const FALSE = 0x01;
const TRUE = 0x02;
const UINT = 0x03;
const NEGATIVE_INT = 0x04;
const FLOAT = 0x05;
const LATIN1 = 0x06;
const UTF16 = 0x07;
const BACKREF = 0x08;
const TIMESTAMP = 0x09;
const UUID = 0x0a;
const ARRAY = 0x0b;
const OBJECT = 0x0c;
/** Tags from here on are small non-negative integers (tag − SMALL_INT). */
const SMALL_INT = 0x10;
const SMALL_INT_MAX = 0xff - SMALL_INT;

const ISO_TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const HEX = "0123456789abcdef";
/** Strings shorter than this are cheaper spelled out than referenced. */
const MIN_BACKREF_LENGTH = 3;

/** Encodes persisted actor states to compact strings and back; one per runtime, shared by its partitions. */
export class StatePacker {
  readonly #keys: string[] = [];
  readonly #keyIndex = new Map<string, number>();
  #out = new Uint8Array(4_096);
  #length = 0;
  #strings = new Map<string, number>();
  #stringCount = 0;

  /** Distinct object keys in the shared table. */
  get keyCount(): number {
    return this.#keys.length;
  }

  /** The packed form of a JSON-serialisable value. */
  pack(value: unknown): string {
    this.#length = 0;
    this.#strings.clear();
    this.#stringCount = 0;
    if (!this.#value(jsonValue(value, ""))) this.#byte(NULL);
    let text = "";
    for (let i = 0; i < this.#length; i += 8_192) {
      text += String.fromCharCode.apply(null, this.#out.subarray(i, Math.min(this.#length, i + 8_192)) as never);
    }
    return text;
  }

  /** The JSON value a packed string holds, as `JSON.parse(JSON.stringify(value))` would give it. */
  unpack(packed: string): unknown {
    return new Reader(packed, this.#keys).value();
  }

  /** Writes a value already through `jsonValue`; false for what JSON omits (undefined, functions, symbols). */
  #value(value: unknown): boolean {
    switch (typeof value) {
      case "string":
        this.#string(value);
        return true;
      case "number":
        this.#number(value);
        return true;
      case "boolean":
        this.#byte(value ? TRUE : FALSE);
        return true;
      case "bigint":
        throw new TypeError("Do not know how to serialize a BigInt");
      case "object":
        if (value === null) this.#byte(NULL);
        else if (Array.isArray(value)) this.#array(value);
        else this.#object(value as Record<string, unknown>);
        return true;
      default:
        return false;
    }
  }

  #number(n: number): void {
    if (!Number.isFinite(n)) this.#byte(NULL);
    else if (Number.isSafeInteger(n) && !Object.is(n, -0)) {
      if (n >= 0 && n <= SMALL_INT_MAX) this.#byte(SMALL_INT + n);
      else if (n >= 0) this.#tagged(UINT, n);
      else this.#tagged(NEGATIVE_INT, -n);
    } else if (Object.is(n, -0)) {
      this.#byte(SMALL_INT); // JSON writes -0 as 0
    } else {
      this.#byte(FLOAT);
      this.#reserve(8);
      new DataView(this.#out.buffer).setFloat64(this.#length, n);
      this.#length += 8;
    }
  }

  #string(s: string): void {
    if (s.length >= MIN_BACKREF_LENGTH) {
      const seen = this.#strings.get(s);
      if (seen !== undefined) return this.#tagged(BACKREF, seen);
      this.#strings.set(s, this.#stringCount++);
    }
    if (s.length === 24 && ISO_TIMESTAMP.test(s)) {
      const ms = Date.parse(s);
      if (ms >= 0 && new Date(ms).toISOString() === s) return this.#tagged(TIMESTAMP, ms);
    }
    if (s.length === 36 && UUID_TEXT.test(s)) return this.#uuid(s);
    let wide = false;
    for (let i = 0; i < s.length && !wide; i++) wide = s.charCodeAt(i) > 0xff;
    this.#tagged(wide ? UTF16 : LATIN1, s.length);
    this.#reserve(wide ? 2 * s.length : s.length);
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (wide) this.#out[this.#length++] = c >> 8;
      this.#out[this.#length++] = c & 0xff;
    }
  }

  #uuid(s: string): void {
    this.#byte(UUID);
    this.#reserve(16);
    for (let i = 0; i < 36; i += 2) {
      if (s.charCodeAt(i) === 0x2d) i++; // '-'
      this.#out[this.#length++] = (HEX.indexOf(s[i]) << 4) | HEX.indexOf(s[i + 1]);
    }
  }

  #array(items: readonly unknown[]): void {
    this.#tagged(ARRAY, items.length);
    for (let i = 0; i < items.length; i++) if (!this.#value(jsonValue(items[i], i))) this.#byte(NULL);
  }

  #object(object: Record<string, unknown>): void {
    const entries: [string, unknown][] = [];
    for (const key of Object.keys(object)) {
      const value = jsonValue(object[key], key);
      const t = typeof value;
      if (t !== "undefined" && t !== "function" && t !== "symbol") entries.push([key, value]);
    }
    this.#tagged(OBJECT, entries.length);
    for (const [key, value] of entries) {
      this.#key(key);
      this.#value(value);
    }
  }

  /** A key: 1 + its index in the shared table, or 0 and the key spelled out. */
  #key(key: string): void {
    let index = this.#keyIndex.get(key);
    if (index === undefined && this.#keys.length < KEY_TABLE_LIMIT) {
      index = this.#keys.length;
      this.#keys.push(key);
      this.#keyIndex.set(key, index);
    }
    if (index !== undefined) return this.#varint(index + 1);
    this.#varint(0);
    this.#string(key);
  }

  #tagged(tag: number, n: number): void {
    this.#byte(tag);
    this.#varint(n);
  }

  #byte(b: number): void {
    this.#reserve(1);
    this.#out[this.#length++] = b;
  }

  /** Unsigned LEB128 of a safe integer. */
  #varint(n: number): void {
    this.#reserve(8);
    this.#length = writeVarint(this.#out, this.#length, n);
  }

  #reserve(n: number): void {
    if (this.#length + n <= this.#out.length) return;
    const grown = new Uint8Array(Math.max(2 * this.#out.length, this.#length + n));
    grown.set(this.#out.subarray(0, this.#length));
    this.#out = grown;
  }
}

/** What JSON.stringify serialises for a property: `toJSON(key)` applied once, primitives taken out of their boxes. */
function jsonValue(value: unknown, key: string | number): unknown {
  if ((typeof value === "object" && value !== null) || typeof value === "bigint") {
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") value = toJSON.call(value, String(key));
  }
  if (value instanceof Number) return Number(value);
  if (value instanceof String) return String(value);
  if (value instanceof Boolean) return value.valueOf();
  return value;
}

/** Decodes one packed string. */
class Reader {
  #at = 0;
  readonly #strings: string[] = [];

  constructor(readonly text: string, readonly keys: readonly string[]) {}

  value(): unknown {
    const tag = this.#next();
    if (tag >= SMALL_INT) return tag - SMALL_INT;
    switch (tag) {
      case NULL:
        return null;
      case FALSE:
        return false;
      case TRUE:
        return true;
      case UINT:
        return this.#varint();
      case NEGATIVE_INT:
        return -this.#varint();
      case FLOAT:
        return this.#float();
      case LATIN1:
      case UTF16:
        return this.#remember(this.#chars(tag === UTF16));
      case BACKREF: {
        const index = this.#varint();
        if (index >= this.#strings.length) throw new Error(`corrupt packed state: back-reference ${index}`);
        return this.#strings[index];
      }
      case TIMESTAMP:
        return this.#remember(new Date(this.#varint()).toISOString());
      case UUID:
        return this.#remember(this.#uuid());
      case ARRAY: {
        const items = new Array(this.#varint());
        for (let i = 0; i < items.length; i++) items[i] = this.value();
        return items;
      }
      case OBJECT: {
        const object: Record<string, unknown> = {};
        for (let n = this.#varint(); n > 0; n--) {
          const index = this.#varint();
          const key = index > 0 ? this.keys[index - 1] : this.value() as string;
          const value = this.value();
          if (key === "__proto__") {
            // As JSON.parse makes it: an own property that can be changed and deleted like any other.
            Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
          } else object[key] = value;
        }
        return object;
      }
      default:
        throw new Error(`corrupt packed state: tag ${tag} at ${this.#at - 1}`);
    }
  }

  /** The next byte; a packed string never ends early unless corrupted. */
  #next(): number {
    if (this.#at >= this.text.length) throw new Error(`corrupt packed state: truncated at ${this.#at}`);
    return this.text.charCodeAt(this.#at++);
  }

  #remember(s: string): string {
    if (s.length >= MIN_BACKREF_LENGTH) this.#strings.push(s);
    return s;
  }

  #chars(wide: boolean): string {
    const length = this.#varint();
    if (this.#at + (wide ? 2 * length : length) > this.text.length) {
      throw new Error(`corrupt packed state: truncated at ${this.#at}`);
    }
    if (!wide) return this.text.slice(this.#at, this.#at += length);
    let s = "";
    for (let i = 0; i < length; i++, this.#at += 2) {
      s += String.fromCharCode((this.text.charCodeAt(this.#at) << 8) | this.text.charCodeAt(this.#at + 1));
    }
    return s;
  }

  #uuid(): string {
    let s = "";
    for (let i = 0; i < 16; i++) {
      if (i === 4 || i === 6 || i === 8 || i === 10) s += "-";
      const b = this.#next();
      s += HEX[b >> 4] + HEX[b & 0xf];
    }
    return s;
  }

  #float(): number {
    const bytes = new Uint8Array(8);
    for (let i = 0; i < 8; i++) bytes[i] = this.#next();
    return new DataView(bytes.buffer).getFloat64(0);
  }

  #varint(): number {
    let n = 0;
    let scale = 1;
    for (;;) {
      const b = this.#next();
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      scale *= 0x80;
    }
  }
}
