/**
 * One DATA_DIR, one engine: a second engine process on a DATA_DIR in use exits at once with a
 * message naming the directory, and the first one keeps serving.
 */
import assert from "node:assert/strict";
import { type EngineProcess, spawnEngine, startEngineProcess } from "../helpers/engine_process.ts";
import { eventually } from "../helpers/services.ts";
import { onlyOn } from "../helpers/modes.ts";

onlyOn("embedded", "a second engine on a DATA_DIR in use exits non-zero at once, naming the directory", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "embedded-lock-" });
  let first: EngineProcess | undefined;
  try {
    first = await startEngineProcess({ dataDir });

    const started = performance.now();
    const second = spawnEngine({ dataDir });
    const status = await second.exited;
    const elapsed = performance.now() - started;
    assert.notEqual(status.code, 0);
    assert.ok(elapsed < 5_000, `the second engine took ${Math.round(elapsed)} ms to give up`);
    assert.match(second.logs(), new RegExp(`DATA_DIR ${await Deno.realPath(dataDir)} is in use by another engine`));

    // The first engine still ingests and answers.
    const posted = await fetch(`${first.url}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "product_viewed", userId: "lock-user", properties: { productId: "sku-1" } }),
    });
    assert.equal(posted.status, 202);
    await posted.body?.cancel();
    await eventually("the first engine to count the view", async () => {
      const response = await fetch(`${first!.url}/v1/users/lock-user`);
      const body = await response.json();
      return body.productViews === 1 ? true : undefined;
    });

    // Stopping the first engine releases the directory.
    assert.equal((await first.kill("SIGTERM")).code, 0, first.logs());
    first = await startEngineProcess({ dataDir });
  } finally {
    await first?.kill("SIGKILL");
    await Deno.remove(dataDir, { recursive: true });
  }
});
