/** Entry point: `deno task start`. Reads the configuration, starts the engine, stops it on SIGINT/SIGTERM. */
import { loadConfig, reportConfigError } from "./engine/config.ts";
import { type RunningEngine, startEngine } from "./engine/engine.ts";
import { ConfigError, StartAbortedError } from "./engine/errors.ts";
import { createLogger } from "./engine/logger.ts";

/** Longest a graceful shutdown may take before the process exits anyway. */
const SHUTDOWN_DEADLINE_MS = 10_000;

/** Exit code of a bad setting, found in the configuration or when the engine starts (README, Configuration). */
async function main(): Promise<number> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) return await reportConfigError(error);
    throw error;
  }
  const logger = createLogger(config.LOG_LEVEL);
  // Listening from before start-up: a signal while starting aborts it (the engine closes what it opened and leaves
  // the consumer group if it joined); once started, it stops the engine. The deadline covers both.
  const signalled = new AbortController();
  let deadline: ReturnType<typeof setTimeout> | undefined;
  const armDeadline = () => {
    deadline ??= setTimeout(() => {
      logger.error("shutdown deadline passed; exiting", { deadlineMs: SHUTDOWN_DEADLINE_MS });
      Deno.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      logger.info("signal received; shutting down", { signal });
      if (signalled.signal.aborted) return;
      armDeadline();
      signalled.abort(signal);
    });
  }
  let engine;
  try {
    engine = await startEngine(config, logger, { signal: signalled.signal });
  } catch (error) {
    if (error instanceof StartAbortedError) {
      logger.info("start-up stopped by the signal; what it had opened is closed");
      return 0;
    }
    // A setting found unusable only when used (DATA_DIR a file, or in use by another engine).
    if (error instanceof ConfigError) return await reportConfigError(error);
    logger.error(error instanceof Error ? error.message : String(error), { error });
    return 1;
  }
  Deno.stdout.writeSync(new TextEncoder().encode(banner(engine) + "\n"));
  // Stopped by a signal, or by a failure it cannot recover from: then it releases what it holds (its partitions, to
  // their new owners) and exits 1 naming the cause, for a supervisor to restart it; it used to stay up, unready.
  const failure = await Promise.race([
    new Promise<undefined>((resolve) => {
      if (signalled.signal.aborted) resolve(undefined);
      signalled.signal.addEventListener("abort", () => resolve(undefined), { once: true });
    }),
    engine.failed,
  ]);
  if (failure) {
    logger.error(`${failure.message}; stopping, to be restarted`, { error: failure });
    armDeadline();
  }
  try {
    await engine.stop();
    return failure ? 1 : 0;
  } catch (error) {
    logger.error("shutdown failed", { error });
    return 1;
  }
}

/** Human-readable start-up banner on stdout (the JSON logs go to stderr). */
function banner(engine: RunningEngine): string {
  const lines = [`actor-engine in ${engine.mode} mode at ${engine.url}`, `  data: ${engine.backend}`];
  if (engine.mode === "embedded") {
    lines.push(
      `  try:  curl -X POST ${engine.url}/v1/events -H 'content-type: application/json' \\`,
      `          -d '{"type":"product_viewed","userId":"u1","properties":{"productId":"p1","price":9.5}}'`,
      `        curl ${engine.url}/v1/users/u1`,
      "  production: set KAFKA_BROKERS and DATABASE_URL to run on Apache Kafka and PostgreSQL (see README)",
    );
  }
  return lines.join("\n");
}

Deno.exit(await main());
