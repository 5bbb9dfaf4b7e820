/**
 * Plain-object maps keyed by client-supplied strings (product ids, categories). Assignment with a
 * key such as `__proto__` would change the prototype instead of adding an entry, so entries are
 * always defined as own properties.
 */

/** Sets `record[key] = value` as an own, enumerable property (also for `__proto__`). */
export function put<V>(record: Record<string, V>, key: string, value: V): void {
  // `__proto__` is the only accessor plain objects inherit (Object.prototype's other properties are
  // writable data, which assignment shadows with an own one); defining costs ten times an assignment.
  // Deno's `__proto__` setter does not change prototypes, but the actors must not depend on that.
  if (key === "__proto__") {
    Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    record[key] = value;
  }
}

/** The own value of `record[key]`, never an inherited one. */
export function get<V>(record: Readonly<Record<string, V>>, key: string): V | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** A copy of `record` with `key` set to `value`. */
export function withEntry<V>(record: Readonly<Record<string, V>>, key: string, value: V): Record<string, V> {
  const next = { ...record };
  put(next, key, value);
  return next;
}

/** Adds `amount` to the number at `key` (in place). */
export function addTo(record: Record<string, number>, key: string, amount: number): void {
  put(record, key, (get(record, key) ?? 0) + amount);
}
