/**
 * A graceful stop (SIGTERM) while PostgreSQL has stopped answering (frozen, or its network path gone silent) ends
 * within main.ts's 10 s deadline with exit code 0, having left the consumer group. It used to wait on the database at
 * its first step (deleting the instance's row) and every later one, and the deadline ended it with exit code 1 without
 * draining HTTP or leaving the group, whose partitions then waited for the session timeout.
 */
import assert from "node:assert/strict";
import { postPageViewsHandled, startEngineProcess } from "../helpers/engine_process.ts";
import { deploy, onlyOn } from "../helpers/modes.ts";
import { startTcpProxy } from "../helpers/tcp_proxy.ts";

/** Users first seen after the database froze. */
const LATE_USER = "late-user-";
/** Longest wait for their batch to be fetched when their states' query is not seen (it is queued in the engine). */
const BATCH_FETCHED_MS = 5_000;

for (const batchInFlight of [false, true]) {
  onlyOn("kafka", {
    name: `SIGTERM while PostgreSQL does not answer${
      batchInFlight ? ", a batch waiting on it" : ""
    }: the engine stops within its deadline, having left the group, with exit code 0`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const { deployment: d, remove } = await deploy("kafka");
      const real = new URL(d.env.DATABASE_URL);
      // The late users' states asked for: their batch waits on the database (their keys are the query's parameters).
      const lateAsked = Promise.withResolvers<void>();
      const proxy = startTcpProxy({ hostname: real.hostname, port: Number(real.port) }, (chunk) => {
        if (new TextDecoder().decode(chunk).includes(LATE_USER)) lateAsked.resolve();
        return { action: "forward" };
      });
      const viaProxy = new URL(d.env.DATABASE_URL);
      viaProxy.port = String(proxy.port);
      const engine = await startEngineProcess({
        dataDir: d.dataDir,
        env: { ...d.env, DATABASE_URL: viaProxy.toString(), LOG_LEVEL: "info" },
      });
      try {
        await postPageViewsHandled(engine);
        // Every answer of PostgreSQL held back from now on: its queries neither succeed nor fail.
        proxy.freeze();
        if (batchInFlight) {
          // New users' events: their batch waits in its lane on loading their states from the frozen database.
          const posted = await fetch(`${engine.url}/v1/events`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(
              Array.from(
                { length: 30 },
                (_, i) => ({ type: "page_viewed", userId: `${LATE_USER}${i}`, properties: { url: "/" } }),
              ),
            ),
          });
          assert.equal(posted.status, 202);
          await posted.body?.cancel();
          // Fetched within a consumer poll: their states' query is seen going to the database, or, when every pooled
          // connection already waits on it, queued in the engine, the batch waiting all the same.
          await Promise.race([lateAsked.promise, new Promise((resolve) => setTimeout(resolve, BATCH_FETCHED_MS))]);
        }
        const status = await engine.kill("SIGTERM");
        const logs = engine.logs();
        const own = logs.split("\n").filter((line) => !line.includes('"component":"kafkajs"')).join("\n");
        assert.doesNotMatch(logs, /shutdown deadline passed/, `the stop passed main.ts's deadline:\n${own}`);
        assert.doesNotMatch(logs, /leaving the group did not finish/, `the group was not left:\n${own}`);
        assert.match(logs, /"engine stopped"/);
        assert.equal(status.code, 0, "a graceful stop");
      } finally {
        proxy.thaw();
        await engine.kill("SIGKILL");
        proxy.close();
        await remove();
      }
    },
  });
}
