/**
 * The pending timers of one partition's actors (in memory or not): key → name → deadline. Keeps
 * a count and a lower bound of the earliest deadline, so that checking for due timers after every
 * batch, and reporting how many are pending after every firing, cost nothing while none is due,
 * however many actors wait on a timer.
 */
export class TimerTable {
  readonly #byKey = new Map<string, Map<string, number>>();
  #count = 0;
  /** No deadline is earlier than this (it may be earlier than the true minimum, never later). */
  #earliest = Infinity;

  /** Replaces every timer with `entries` (key → name → deadline). */
  load(entries: Iterable<readonly [string, Readonly<Record<string, number>>]>): void {
    this.clear();
    for (const [key, timers] of entries) for (const [name, at] of Object.entries(timers)) this.set(key, name, at);
  }

  clear(): void {
    this.#byKey.clear();
    this.#count = 0;
    this.#earliest = Infinity;
  }

  /** Pending timers across the partition. */
  get count(): number {
    return this.#count;
  }

  has(key: string): boolean {
    return this.#byKey.has(key);
  }

  /** Deadline of `key`'s timer `name`. */
  get(key: string, name: string): number | undefined {
    return this.#byKey.get(key)?.get(name);
  }

  /** `key`'s timers as a plain object, for its checkpoint row. */
  of(key: string): Record<string, number> {
    return Object.fromEntries(this.#byKey.get(key) ?? []);
  }

  /** Sets (or moves) `key`'s timer `name`. */
  set(key: string, name: string, at: number): void {
    let timers = this.#byKey.get(key);
    if (!timers) this.#byKey.set(key, timers = new Map());
    if (!timers.has(name)) this.#count++;
    timers.set(name, at);
    if (at < this.#earliest) this.#earliest = at;
  }

  /** Removes `key`'s timer `name`; false if it was not set. */
  delete(key: string, name: string): boolean {
    const timers = this.#byKey.get(key);
    if (!timers?.delete(name)) return false;
    if (timers.size === 0) this.#byKey.delete(key);
    this.#count--;
    return true;
  }

  /** `key`'s earliest timer due at `clock` (a timer is due once the clock has passed its deadline), if any. */
  nextDue(key: string, clock: number): [name: string, at: number] | undefined {
    const timers = this.#byKey.get(key);
    if (!timers || clock <= this.#earliest) return undefined;
    let next: [string, number] | undefined;
    for (const entry of timers) if (entry[1] < clock && (!next || firesBefore(entry, next))) next = entry;
    return next;
  }

  /** Keys with a timer due at `clock`; also tightens the earliest-deadline bound. */
  keysDue(clock: number): string[] {
    if (clock <= this.#earliest) return [];
    const due: string[] = [];
    let earliest = Infinity;
    for (const [key, timers] of this.#byKey) {
      let isDue = false;
      for (const at of timers.values()) {
        if (at < clock) isDue = true;
        if (at < earliest) earliest = at;
      }
      if (isDue) due.push(key);
    }
    // Exact now; stays a lower bound as the due timers fire (the next scan tightens it again).
    this.#earliest = earliest;
    return due;
  }
}

/**
 * Firing order of one key's due timers: earliest deadline first, ties by name. Not by insertion:
 * timers round-trip through a jsonb column, which does not keep the order they were set in.
 */
export function firesBefore(a: readonly [string, number], b: readonly [string, number]): boolean {
  return a[1] < b[1] || (a[1] === b[1] && a[0] < b[0]);
}
