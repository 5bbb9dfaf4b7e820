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
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      logger.info("signal received; shutting down", { signal });
      if (signalled.signal.aborted) return;
      setTimeout(() => {
        logger.error("shutdown deadline passed; exiting", { deadlineMs: SHUTDOWN_DEADLINE_MS });
        Deno.exit(1);
      }, SHUTDOWN_DEADLINE_MS);
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
  await new Promise((resolve) => {
    if (signalled.signal.aborted) resolve(undefined);
    signalled.signal.addEventListener("abort", resolve, { once: true });
  });
  try {
    await engine.stop();
    return 0;
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
