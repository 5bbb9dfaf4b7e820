/**
 * A graceful stop (SIGTERM) while the Kafka broker is down ends within main.ts's 10 s deadline, with
 * exit code 0. It used to wait on the broker three ways, and the deadline ended the process with exit
 * code 1: a checkpoint's append of its outputs (answered at its one-minute deadline), kafkajs's
 * disconnect of the consumer (it waits for the fetch in flight, which retries the broker for about
 * 25 s) and the housekeeping round's end-offset read (retried as long; the stop waits for the round).
 */
import assert from "node:assert/strict";
import { postPageViewsHandled, startEngineProcess } from "../helpers/engine_process.ts";
import { startPrivateBroker } from "../helpers/kafka_broker.ts";
import { deployOnServers, onlyOn } from "../helpers/modes.ts";
import { eventually, freshDatabase } from "../helpers/services.ts";

onlyOn("kafka", {
  name: "SIGTERM while the broker is down: the engine stops within its deadline, with exit code 0",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const broker = await startPrivateBroker();
    const database = await freshDatabase();
    // Idle partitions after a second: every housekeeping round then reads their end offsets from the broker.
    const { deployment: d, remove } = await deployOnServers(
      { kafkaBrokers: broker.brokers, databaseUrl: database.url },
      { CLOCK_IDLE_MS: "1000" },
    );
    const engine = await startEngineProcess({ dataDir: await Deno.makeTempDir(), env: d.env });
    try {
      await postPageViewsHandled(engine);

      await broker.stop("SIGKILL");
      // The engine's clients are retrying the unreachable broker (kafkajs logs each refused connection).
      await eventually(
        "the engine to meet the refused broker",
        () => Promise.resolve(engine.logs().includes("ECONNREFUSED") || undefined),
      );
      const status = await engine.kill("SIGTERM");
      const logs = engine.logs();
      const own = logs.split("\n").filter((line) => !line.includes('"component":"kafkajs"')).join("\n");
      assert.doesNotMatch(logs, /shutdown deadline passed/, `the stop passed main.ts's deadline:\n${own}`);
      assert.equal(status.code, 0, "a graceful stop");
    } finally {
      await engine.kill("SIGKILL");
      await remove();
      await database.drop();
      await broker.destroy();
    }
  },
});
