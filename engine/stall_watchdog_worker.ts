/** The watchdog's thread (stall_watchdog.ts): reports a main thread whose heartbeat stopped. */
/// <reference lib="deno.worker" />
import { createLogger } from "./logger.ts";
import type { StallWatchdogStart } from "./stall_watchdog.ts";

self.onmessage = (message: MessageEvent<StallWatchdogStart>) => {
  const { beat, stallMs, beatMs, fields, level } = message.data;
  const view = new BigInt64Array(beat);
  const log = createLogger(level, undefined, { ...fields, component: "stall-watchdog" });
  let stalledSince: number | null = null;
  setInterval(() => {
    const last = Number(Atomics.load(view, 0));
    const silentMs = Date.now() - last;
    if (stalledSince === null && silentMs > stallMs) {
      stalledSince = last;
      log.error(
        "the engine's thread has not run for " + Math.round(silentMs / 1000) +
          " s: nothing is answered or processed. " +
          "In embedded mode PGlite spins this way when the disk under DATA_DIR is full; free space, then end the " +
          "engine with SIGKILL (it cannot act on SIGTERM while stuck) and start it again",
        { silentMs },
      );
    } else if (stalledSince !== null && silentMs <= stallMs) {
      log.warn("the engine's thread runs again", { stalledMs: last - stalledSince });
      stalledSince = null;
    }
  }, beatMs);
};
