/**
 * A maintenance task run on the engine's own database connection every so often (vacuum, WAL checkpoints): one run at
 * a time (a tick while the previous run goes on is skipped, so slow runs never pile up on the one connection), and a
 * stop that waits for the run in progress, so that nothing touches the database after it is closed.
 */

/** Runs `task` every `intervalMs` (never when it is 0 or less); returns the stop function. */
export function runPeriodically(intervalMs: number, task: () => Promise<void>): () => Promise<void> {
  if (intervalMs <= 0) return () => Promise.resolve();
  let running: Promise<void> | null = null;
  const timer = setInterval(() => {
    if (running) return;
    running = task().finally(() => {
      running = null;
    });
  }, intervalMs);
  return async () => {
    clearInterval(timer);
    await running;
  };
}
