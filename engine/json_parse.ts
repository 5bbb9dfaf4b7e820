/**
 * JSON.parse that reads every property name right on this Deno.
 *
 * Deno 2.9.6's V8 (15.0) misreads an escaped property name when the object's shape so far has a
 * single known next name containing a backslash: after `{"p":1,"a\\":1}` has been parsed once,
 * `{"p":1,"a\"":1}` comes back with the name `a\` instead of `a"` (also `a\n`, `a\t`). Names are
 * client-supplied ids here (cart items, co-occurrence counters, category revenue), so a state or a
 * fact could silently come back with another product's id. Text without a backslash cannot
 * trigger it and goes to JSON.parse; text with one is parsed here, with names read exactly and
 * everything else (strings, numbers, syntax errors) left to JSON.parse on the smallest piece.
 */

import { put } from "../actors/records.ts";

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/** JSON text as its value, exactly as the standard says JSON.parse gives it. */
export function parseJson(text: string): unknown {
  return text.indexOf("\\") < 0 ? JSON.parse(text) : new ExactParser(text).document();
}

/** Recursive descent over the text; any syntax error is reported by JSON.parse on the whole text. */
class ExactParser {
  #at = 0;

  constructor(private readonly text: string) {}

  document(): unknown {
    const value = this.#value();
    this.#space();
    if (this.#at !== this.text.length) this.#fail();
    return value;
  }

  #value(): unknown {
    this.#space();
    const c = this.text.charCodeAt(this.#at);
    if (c === 0x7b /* { */) return this.#object();
    if (c === 0x5b /* [ */) return this.#array();
    if (c === 0x22 /* " */) return this.#string();
    if (c === 0x74 /* t */) return this.#literal("true", true);
    if (c === 0x66 /* f */) return this.#literal("false", false);
    if (c === 0x6e /* n */) return this.#literal("null", null);
    return this.#number();
  }

  #object(): Record<string, unknown> {
    const object: Record<string, unknown> = {};
    this.#at++;
    this.#space();
    if (this.text.charCodeAt(this.#at) === 0x7d /* } */) {
      this.#at++;
      return object;
    }
    for (;;) {
      this.#space();
      if (this.text.charCodeAt(this.#at) !== 0x22) this.#fail();
      const name = this.#string();
      this.#space();
      if (this.text.charCodeAt(this.#at) !== 0x3a /* : */) this.#fail();
      this.#at++;
      const value = this.#value();
      put(object, name, value); // an own `__proto__` too, as JSON.parse defines it
      if (this.#endOf(0x7d /* } */)) return object;
    }
  }

  #array(): unknown[] {
    const array: unknown[] = [];
    this.#at++;
    this.#space();
    if (this.text.charCodeAt(this.#at) === 0x5d /* ] */) {
      this.#at++;
      return array;
    }
    for (;;) {
      array.push(this.#value());
      if (this.#endOf(0x5d /* ] */)) return array;
    }
  }

  /** After a member: true past the closing bracket, false past a comma. */
  #endOf(close: number): boolean {
    this.#space();
    const c = this.text.charCodeAt(this.#at++);
    if (c === close) return true;
    if (c !== 0x2c /* , */) this.#fail();
    return false;
  }

  #string(): string {
    const start = this.#at;
    let i = start + 1;
    for (;;) {
      const c = this.text.charCodeAt(i);
      if (Number.isNaN(c)) this.#fail();
      if (c === 0x22) break;
      i += c === 0x5c /* \ */ ? 2 : 1;
    }
    this.#at = i + 1;
    // A lone string has no property names: JSON.parse decodes its escapes and rejects bad ones.
    return parseOr(this.text.slice(start, this.#at), this.text) as string;
  }

  #number(): number {
    NUMBER.lastIndex = this.#at;
    const match = NUMBER.exec(this.text);
    if (match === null) this.#fail();
    this.#at += match[0].length;
    return Number(match[0]);
  }

  #literal<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.#at)) this.#fail();
    this.#at += word.length;
    return value;
  }

  #space(): void {
    for (;;) {
      const c = this.text.charCodeAt(this.#at);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
      this.#at++;
    }
  }

  #fail(): never {
    JSON.parse(this.text);
    throw new SyntaxError("JSON text does not parse"); // not reached: JSON.parse threw
  }
}

/** `JSON.parse(piece)`, or JSON.parse's own error for the whole text. */
function parseOr(piece: string, whole: string): unknown {
  try {
    return JSON.parse(piece);
  } catch {
    JSON.parse(whole);
    throw new SyntaxError("JSON text does not parse");
  }
}
