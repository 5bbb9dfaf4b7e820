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

onlyOn("kafka", {
  name: "SIGTERM while PostgreSQL does not answer: the engine stops within its deadline, with exit code 0",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("kafka");
    const real = new URL(d.env.DATABASE_URL);
    const proxy = startTcpProxy({ hostname: real.hostname, port: Number(real.port) });
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
