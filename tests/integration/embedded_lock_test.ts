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

onlyOn(
  "embedded",
  "an engine killed with SIGKILL leaves no socket directory behind once the next one starts",
  async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "embedded-lock-" });
    let engine: EngineProcess | undefined;
    try {
      engine = await startEngineProcess({ dataDir });
      const killed = (await Deno.readTextFile(`${dataDir}/socket-dir`)).trim();
      assert.ok(
        (await Deno.lstat(`${killed}/.s.PGSQL.5432`)).isSocket,
        "the record names the serving socket's directory",
      );
      await engine.kill("SIGKILL");
      assert.ok((await Deno.stat(killed)).isDirectory, "SIGKILL leaves the directory (nothing could remove it)");

      engine = await startEngineProcess({ dataDir });
      await assert.rejects(Deno.stat(killed), Deno.errors.NotFound, "the next start removes it");
      const own = (await Deno.readTextFile(`${dataDir}/socket-dir`)).trim();
      assert.notEqual(own, killed);
      assert.equal((await engine.kill("SIGTERM")).code, 0, engine.logs());
      await assert.rejects(Deno.stat(own), Deno.errors.NotFound, "a graceful stop removes its own");
      engine = undefined;
    } finally {
      await engine?.kill("SIGKILL");
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);
