/**
 * Start-up's database steps against a server that stops answering once connected (frozen, or its network path gone
 * silent): no timeout of PostgreSQL's own applies to a server that does not run, and TCP keepalives are answered by its
 * kernel, so start-up waited for good. While such a step runs, a probe (`select 1`, on another connection of the pool)
 * asks the server every DATABASE_PROBE_INTERVAL_MS whether it still answers; one left without an answer for
 * DATABASE_PROBE_TIMEOUT_MS (or twice the URL's connect_timeout, when longer), or failed without one (a new connection
 * timed out), stops start-up. A step that is only slow (a long migration) goes on: the server answers the probes
 * meanwhile.
 */
import type { Sql } from "./database.ts";
import { ConfigError } from "./errors.ts";

/** How often a step's probe asks the server whether it still answers. */
export const DATABASE_PROBE_INTERVAL_MS = 2_000;
/** Most a probe waits for the server's answer: twice the default connect_timeout (a longer one lengthens it). */
export const DATABASE_PROBE_TIMEOUT_MS = 10_000;

/** How a step is probed (tests shorten it). */
export interface ProbeTiming {
  readonly intervalMs: number;
  readonly timeoutMs: number;
}

const DEFAULT_TIMING: ProbeTiming = { intervalMs: DATABASE_PROBE_INTERVAL_MS, timeoutMs: DATABASE_PROBE_TIMEOUT_MS };

/**
 * `step`, or a ConfigError naming `service` and `what` once a probe of `sql` went unanswered. An error the server sent
 * (it has a SQLSTATE) is an answer: the step reports its own failures.
 */
export async function whileDatabaseAnswers<T>(
  sql: Sql,
  step: Promise<T>,
  service: string,
  what: string,
  timing: ProbeTiming = DEFAULT_TIMING,
): Promise<T> {
  // A probe may open a new connection, which may take up to connect_timeout: the URL's 30 s against a server slow to
  // accept used to stop a healthy start-up after 10 s.
  const timeoutMs = Math.max(timing.timeoutMs, 2 * sql.options.connect_timeout * 1_000);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let done = false;
  const silent = new Promise<never>((_, reject) => {
    const probe = async () => {
      let limit: ReturnType<typeof setTimeout> | undefined;
      const unanswered = await Promise.race([
        sql`select 1`.then(() => undefined, (error: unknown) => isServerError(error) ? undefined : message(error)),
        new Promise<string>((resolve) => {
          limit = setTimeout(() => resolve(`no answer within ${timeoutMs} ms`), timeoutMs);
        }),
      ]);
      clearTimeout(limit);
      if (done) return;
      if (unanswered === undefined) {
        timer = setTimeout(probe, timing.intervalMs);
        return;
      }
      reject(
        new ConfigError(
          `Cannot start: ${service} stopped answering during start-up (${what}): a probe of it failed: ${unanswered}`,
        ),
      );
    };
    timer = setTimeout(probe, timing.intervalMs);
  });
  silent.catch(() => {});
  try {
    return await Promise.race([step, silent]);
  } finally {
    done = true;
    clearTimeout(timer);
  }
}

/** Whether `error` came from the server (a PostgreSQL error has a severity), not from the connection. */
function isServerError(error: unknown): boolean {
  return typeof error === "object" && error !== null && "severity" in error;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
