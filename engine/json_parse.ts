/**
 * JSON.parse that reads every property name right on this Deno.
 *
 * Deno 2.9.6's V8 (15.0) misreads an escaped property name when the object's shape so far has a
 * single known next name containing a backslash: after `{"p":1,"a\\":1}` has been parsed once,
 * `{"p":1,"a\"":1}` comes back with the name `a\` instead of `a"` (also `a\n`, `a\t`). Names are
 * client-supplied ids here (cart items, co-occurrence counters, category revenue), so a state or a
 * fact could silently come back with another product's id. Text without a backslash cannot
 * trigger it and goes to JSON.parse; text with one is parsed here, with names read exactly: each
 * string is decoded by JSON.parse on its own (a lone string has no names), numbers by `Number` on
 * the JSON number grammar's match, and any syntax error is JSON.parse's own on the whole text.
 */

import { put } from "../actors/records.ts";

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/** JSON text as its value, exactly as the standard says JSON.parse gives it. */
export function parseJson(text: string): unknown {
  return text.indexOf("\\") < 0 ? JSON.parse(text) : new ExactParser(text).document();
}

/** A loop over the text with an explicit stack of open containers, so that any depth JSON.parse takes works here. */
class ExactParser {
  #at = 0;

  constructor(private readonly text: string) {}

  document(): unknown {
    /** Open arrays and objects, innermost last; `names[i]` is the name whose value `open[i]` (an object) awaits. */
    const open: (unknown[] | Record<string, unknown>)[] = [];
    const names: string[] = [];
    for (;;) {
      this.#space();
      const c = this.text.charCodeAt(this.#at);
      let value: unknown;
      if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
        this.#at++;
        this.#space();
        const empty = this.text.charCodeAt(this.#at) === (c === 0x7b ? 0x7d /* } */ : 0x5d /* ] */);
        if (!empty) {
          open.push(c === 0x7b ? {} : []);
          names.push(c === 0x7b ? this.#name() : "");
          continue;
        }
        this.#at++;
        value = c === 0x7b ? {} : [];
      } else {
        value = this.#scalar(c);
      }
      // Put the value in its container; close each container that ends right after it.
      for (;;) {
        const container = open.at(-1);
        if (container === undefined) {
          this.#space();
          if (this.#at !== this.text.length) this.#fail();
          return value;
        }
        const isArray = Array.isArray(container);
        if (isArray) container.push(value);
        else put(container, names[names.length - 1], value); // an own `__proto__` too, as JSON.parse defines it
        this.#space();
        const next = this.text.charCodeAt(this.#at++);
        if (next === 0x2c /* , */) {
          if (!isArray) names[names.length - 1] = this.#name();
          break;
        }
        if (next !== (isArray ? 0x5d : 0x7d)) this.#fail();
        open.pop();
        names.pop();
        value = container;
      }
    }
  }

  /** A member's name and the colon after it. */
  #name(): string {
    this.#space();
    if (this.text.charCodeAt(this.#at) !== 0x22) this.#fail();
    const name = this.#string();
    this.#space();
    if (this.text.charCodeAt(this.#at++) !== 0x3a /* : */) this.#fail();
    return name;
  }

  #scalar(c: number): unknown {
    if (c === 0x22 /* " */) return this.#string();
    if (c === 0x74 /* t */) return this.#literal("true", true);
    if (c === 0x66 /* f */) return this.#literal("false", false);
    if (c === 0x6e /* n */) return this.#literal("null", null);
    NUMBER.lastIndex = this.#at;
    const match = NUMBER.exec(this.text);
    if (match === null) this.#fail();
    this.#at += match[0].length;
    return Number(match[0]);
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
    try {
      return JSON.parse(this.text.slice(start, this.#at));
    } catch (error) {
      if (error instanceof SyntaxError) this.#fail();
      throw error;
    }
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

  /** Throws JSON.parse's own error for the whole text. */
  #fail(): never {
    JSON.parse(this.text);
    throw new SyntaxError("JSON text does not parse"); // not reached: JSON.parse threw
  }
}
