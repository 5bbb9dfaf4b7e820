/**
 * Database reads a client waits for: bounded in time, since a frozen PostgreSQL (connections open, no answers) fails
 * no query, and shared while unanswered, since each read given up on stays queued on the pool until it answers.
 */
import { DatabaseUnavailableError } from "./errors.ts";

/**
 * `promise`'s value or failure, or a DatabaseUnavailableError saying `what` had no answer if it takes longer than `ms`
 * (the query itself is left in flight: PostgreSQL frozen does not fail it).
 */
export async function answeredWithin<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) =>
    timer = setTimeout(() => reject(new DatabaseUnavailableError(`${what}: no answer within ${ms} ms`)), ms)
  );
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `run` for `key`, or joins the run of `key` still unanswered. */
export type SharedRun = <T>(key: string, run: () => Promise<T>) => Promise<T>;

/** Runs keyed by what they read: one still in flight is joined rather than queued again on the pool. */
export function sharedRuns(): SharedRun {
  const running = new Map<string, Promise<unknown>>();
  return <T>(key: string, run: () => Promise<T>): Promise<T> => {
    const joined = running.get(key);
    if (joined) return joined as Promise<T>;
    // A run that throws at once (not in its promise) fails as one that rejects.
    const started = (async () => await run())();
    running.set(key, started);
    const done = () => void (running.get(key) === started && running.delete(key));
    started.then(done, done);
    return started;
  };
}
