/**
 * A fast path in front of zod for messages the engine validates on every event. zod 4 takes about
 * 2 µs to validate one fact or stored event on this project's machines, and an event is validated
 * four times on its way through the actors (the event, its product and activity facts, the
 * product's minute). Most of those messages were written by the engine itself and are valid.
 *
 * `compileCheck` turns the parts of zod these schemas use (objects, discriminated unions, strings
 * with length limits, patterns and refinements, numbers with bounds, literals, enums, arrays,
 * records, optionals, nullables, defaults, unknown) into a plain predicate that answers "valid, and zod would return
 * this very value": no unknown keys to strip, no defaults to fill in. Whenever it answers no, or a
 * schema uses anything else (coercion, transforms, other formats), zod itself decides and words
 * the error, so results and messages are zod's. It is made for plain data, as JSON.parse and
 * object literals make: other objects go to zod, and a getter that answers differently when read
 * again is beyond it. tests/unit/schema_check_test.ts holds the two to each other over mutated
 * messages and adversarial values.
 */
import type { z } from "zod";

/** Whether a value is valid and zod's output for it would be the value itself. */
export type Check = (value: unknown) => boolean;

/** The parts of zod 4's internal definitions read here. */
interface Def {
  readonly type: string;
  readonly checks?: readonly { readonly _zod: { readonly def: CheckDef } }[];
  readonly coerce?: boolean;
  readonly format?: string;
  readonly pattern?: RegExp;
  readonly innerType?: Schema;
  readonly element?: Schema;
  readonly shape?: Readonly<Record<string, Schema>>;
  readonly catchall?: Schema;
  readonly keyType?: Schema;
  readonly valueType?: Schema;
  readonly values?: readonly unknown[];
  readonly entries?: Readonly<Record<string, unknown>>;
  readonly options?: readonly Schema[];
  readonly discriminator?: string;
}

interface CheckDef {
  readonly check: string;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly value?: number;
  readonly inclusive?: boolean;
  readonly format?: string;
  readonly pattern?: RegExp;
  readonly fn?: (value: unknown) => unknown;
}

interface Schema {
  /** `optin`: "optional" or "defaulted" when the key may be absent from an object. */
  readonly _zod: { readonly def: Def; readonly optin?: string };
}

/** String formats zod checks with its pattern alone (others, such as url, run code of their own). */
const PATTERN_FORMATS = new Set(["datetime", "uuid", "regex"]);

const compiled = new WeakMap<object, Check | null>();

/** zod's `safeParse`, answered without zod when the compiled check accepts the value as it is (then `data` is `value` itself, not a copy). */
export function safeParseFast<T extends z.ZodType>(schema: T, value: unknown): z.ZodSafeParseResult<z.output<T>> {
  const check = checkOf(schema);
  if (check !== null && check(value)) return { success: true, data: value as z.output<T> };
  return schema.safeParse(value);
}

/** The schema's compiled check, compiled once; null if the schema uses something not compiled. */
export function checkOf(schema: z.ZodType): Check | null {
  let check = compiled.get(schema);
  if (check === undefined) {
    check = compileCheck(schema);
    compiled.set(schema, check);
  }
  return check;
}

/** Compiles a zod schema into a Check; null if it uses anything this module does not model. */
export function compileCheck(schema: z.ZodType): Check | null {
  return compile(schema as unknown as Schema);
}

function compile(schema: Schema): Check | null {
  const def = schema._zod.def;
  if (def.coerce) return null;
  const base = compileType(def);
  if (base === null) return null;
  const checks: Check[] = [];
  for (const check of def.checks ?? []) {
    const compiledCheck = compileRefinement(check._zod.def);
    if (compiledCheck === null) return null;
    checks.push(compiledCheck);
  }
  if (checks.length === 0) return base;
  return (value) => {
    if (!base(value)) return false;
    for (let i = 0; i < checks.length; i++) if (!checks[i](value)) return false;
    return true;
  };
}

function compileType(def: Def): Check | null {
  switch (def.type) {
    case "string": {
      if (def.format === undefined) return (value) => typeof value === "string";
      const pattern = patternOf(def.format, def.pattern);
      return pattern && ((value) => typeof value === "string" && pattern.test(value));
    }
    case "number":
      return (value) => typeof value === "number" && Number.isFinite(value);
    case "boolean":
      return (value) => typeof value === "boolean";
    case "literal": {
      const values = new Set(def.values);
      return (value) => values.has(value);
    }
    case "enum": {
      const values = new Set(Object.values(def.entries ?? {}));
      return (value) => values.has(value);
    }
    case "optional": {
      const inner = compile(def.innerType!);
      return inner && ((value) => value === undefined || inner(value));
    }
    case "nullable": {
      const inner = compile(def.innerType!);
      return inner && ((value) => value === null || inner(value));
    }
    case "unknown":
      return () => true;
    case "default": {
      // An absent value gets the default: zod's output differs from the input, so zod handles it.
      const inner = compile(def.innerType!);
      return inner && ((value) => value !== undefined && inner(value));
    }
    case "array": {
      const element = compile(def.element!);
      // Named properties on an array are not looked at: JSON leaves them out, as zod's copy does.
      return element && ((value) => {
        if (!Array.isArray(value) || Object.getPrototypeOf(value) !== Array.prototype) return false;
        for (let i = 0; i < value.length; i++) if (!element(value[i])) return false;
        return true;
      });
    }
    case "object":
      return def.catchall === undefined ? compileObject(def.shape ?? {}) : null;
    case "record": {
      const key = compile(def.keyType!);
      const item = compile(def.valueType!);
      if (key === null || item === null) return null;
      return (value) => {
        if (!isPlainObject(value)) return false;
        // `__proto__` would set the prototype of zod's output object rather than copy a key
        // (zod takes an own function-valued `constructor` for a class instance.)
        for (const k in value) {
          if (k === "__proto__" || k === "constructor" || !key(k) || !item(value[k])) return false;
        }
        return true;
      };
    }
    case "union":
      return def.discriminator === undefined ? null : compileDiscriminated(def.discriminator, def.options ?? []);
    default:
      return null;
  }
}

function compileObject(shape: Readonly<Record<string, Schema>>): Check | null {
  const keys = Object.keys(shape);
  if (keys.includes("__proto__")) return null;
  const checks: Check[] = [];
  /** Keys zod requires present even though their schema accepts `undefined` (z.unknown()). */
  const mustBePresent: boolean[] = [];
  for (const key of keys) {
    const check = compile(shape[key]);
    if (check === null) return null;
    checks.push(check);
    mustBePresent.push(shape[key]._zod.optin === undefined && check(undefined));
  }
  const known = new Set(keys);
  return (value) => {
    if (!isPlainObject(value)) return false;
    let present = 0;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      if (!checks[i](value[key])) return false;
      if (key in value) present++;
      else if (mustBePresent[i]) return false;
    }
    // zod strips unknown keys: its output would differ, so let zod produce it. A shape key that is
    // present but not enumerated (inherited, or not enumerable) would not survive serialisation.
    let enumerated = 0;
    for (const key in value) {
      if (!known.has(key)) return false;
      enumerated++;
    }
    return enumerated === present;
  };
}

function compileDiscriminated(discriminator: string, options: readonly Schema[]): Check | null {
  const byValue = new Map<unknown, Check>();
  for (const option of options) {
    const def = option._zod.def;
    const tag = def.shape?.[discriminator]?._zod.def;
    if (def.type !== "object" || tag?.type !== "literal") return null;
    const check = compile(option);
    if (check === null) return null;
    for (const value of tag.values ?? []) {
      if (byValue.has(value)) return null;
      byValue.set(value, check);
    }
  }
  return (value) => {
    if (!isPlainObject(value)) return false;
    const check = byValue.get(value[discriminator]);
    return check !== undefined && check(value);
  };
}

function compileRefinement(def: CheckDef): Check | null {
  switch (def.check) {
    case "min_length": {
      // zod measures strings in code points: a surrogate pair is one. Fewer than twice the minimum in
      // UTF-16 units may be too few code points, so count those.
      const minimum = def.minimum!;
      return (value) => {
        const units = (value as { length: number }).length;
        if (units < minimum) return false;
        return typeof value !== "string" || units >= 2 * minimum || codePoints(value) >= minimum;
      };
    }
    case "max_length": {
      const maximum = def.maximum!;
      return (value) => (value as { length: number }).length <= maximum;
    }
    case "greater_than": {
      const bound = def.value!;
      return def.inclusive ? (value) => (value as number) >= bound : (value) => (value as number) > bound;
    }
    case "less_than": {
      const bound = def.value!;
      return def.inclusive ? (value) => (value as number) <= bound : (value) => (value as number) < bound;
    }
    case "multiple_of": {
      // zod allows for binary fractions here; integers divisible by an integer step are what this answers.
      const step = def.value!;
      if (!Number.isSafeInteger(step) || step === 0) return null;
      return (value) => Number.isSafeInteger(value) && (value as number) % step === 0;
    }
    case "number_format":
      return def.format === "safeint" ? (value) => Number.isSafeInteger(value) : null;
    case "string_format": {
      const pattern = patternOf(def.format, def.pattern);
      return pattern && ((value) => pattern.test(value as string));
    }
    case "custom": {
      // A refinement: zod passes when it returns a truthy value; anything but `true` goes to zod.
      const fn = def.fn;
      if (typeof fn !== "function") return null;
      return (value) => {
        try {
          return fn(value) === true;
        } catch {
          return false;
        }
      };
    }
    default:
      return null;
  }
}

/** A pattern safe to test repeatedly (no lastIndex state), for a format checked by its pattern alone. */
function patternOf(format: string | undefined, pattern: RegExp | undefined): RegExp | null {
  if (format === undefined || !PATTERN_FORMATS.has(format) || !(pattern instanceof RegExp)) return null;
  return pattern.global || pattern.sticky ? null : pattern;
}

/**
 * Plain data, as JSON.parse and object literals make: zod copies any other object (or, for records,
 * rejects it), and leaves symbol keys out of its copy.
 */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype &&
    Object.getOwnPropertySymbols(value).length === 0;
}

/** Code points in `text`, a surrogate pair counting once (as zod counts). */
function codePoints(text: string): number {
  let count = text.length;
  for (let i = 0; i < text.length - 1; i++) {
    if ((text.charCodeAt(i) & 0xfc00) === 0xd800 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      count--;
      i++;
    }
  }
  return count;
}
