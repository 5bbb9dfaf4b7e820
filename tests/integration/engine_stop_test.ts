/**
 * Stopping an in-process engine (what main.ts does on SIGINT/SIGTERM) on the embedded log: a second
 * signal, a client stalled mid-upload, and the URL an engine reports. One log is enough: these are
 * about the engine's own shutdown, not the log's.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../engine/config.ts";
import { type RunningEngine, startEngine } from "../../engine/engine.ts";
import { silentLogger } from "../../engine/logger.ts";
import { deploy, type Deployment, onlyOn } from "../helpers/modes.ts";
import { eventually } from "../helpers/services.ts";

/** Final checkpoints only: periodic ones would hide a stop that skipped them. */
const FINAL_ONLY = { CHECKPOINT_INTERVAL_MS: "3600000" };

/** Posts `n` product views of `userId` and waits until the engine has handled them. */
async function viewed(engine: RunningEngine, userId: string, n: number): Promise<void> {
  const events = Array.from(
    { length: n },
    (_, i) => ({ type: "product_viewed", userId, properties: { productId: `p${i}` } }),
  );
  const posted = await fetch(`${engine.url}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(events),
  });
  assert.equal(posted.status, 202);
  await posted.body?.cancel();
  await eventually(`${userId}'s ${n} views`, async () => {
    const response = await fetch(`${engine.url}/v1/users/${userId}`);
    const body = response.status === 200 ? await response.json() : (await response.body?.cancel(), {});
    return body.productViews === n ? true : undefined;
  });
}

/** Records of `events` covered by the stored checkpoints (the engine must be stopped). */
function checkpointed(d: Deployment): Promise<number> {
  return d.inspect(async ({ sql }) => {
    const [row] = await sql<{ n: number }[]>`
      select coalesce(sum(next_offset), 0)::int as n from partition_checkpoints where topic = ${d.topics.events}`;
    return row.n;
  });
}

onlyOn(
  "embedded",
  "a second stop (a second signal) settles only with the first one, after its final checkpoints",
  async () => {
    const { deployment, remove } = await deploy("embedded", FINAL_ONLY);
    try {
      const engine = await startEngine(deployment.config, silentLogger);
      await viewed(engine, "alice", 5);
      // Two signals at once (Ctrl-C pressed twice). main.ts exits when the stop of the last one settles,
      // which used to close the backend under the first stop's final checkpoints and settle first.
      const first = engine.stop();
      await engine.stop();
      assert.equal(await checkpointed(deployment), 5);
      await first;
    } finally {
      await remove();
    }
  },
);

onlyOn("embedded", "a client stalled mid-upload does not hold a stop past main.ts's deadline", async () => {
  const { deployment, remove } = await deploy("embedded", FINAL_ONLY);
  let connection: Deno.Conn | undefined;
  try {
    const engine = await startEngine(deployment.config, silentLogger);
    await viewed(engine, "bob", 3);
    connection = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(engine.url).port) });
    await connection.write(new TextEncoder().encode(
      'POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n[{"type":',
    ));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = performance.now();
    await engine.stop(); // it used to wait for that request for ever
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds < 10, `stop took ${seconds.toFixed(1)} s; main.ts gives up after 10 s`);
    assert.equal(await checkpointed(deployment), 3, "the final checkpoint was written");
  } finally {
    connection?.close();
    await remove();
  }
});

onlyOn("embedded", "an engine bound to an IPv6 address reports a URL that reaches it", async () => {
  const { deployment, remove } = await deploy("embedded");
  try {
    const config = parseConfig({ ...deployment.env, DATA_DIR: deployment.dataDir, PORT: "0", HOST: "::1" });
    const engine = await startEngine(config, silentLogger);
    try {
      // It was http://::1:PORT, which is not a URL.
      assert.match(engine.url, /^http:\/\/\[::1\]:\d+$/);
      const response = await fetch(`${engine.url}/healthz`);
      assert.equal(response.status, 200);
      await response.body?.cancel();
    } finally {
      await engine.stop();
    }
  } finally {
    await remove();
  }
});
