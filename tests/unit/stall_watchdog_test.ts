/**
 * A blocked engine thread (PGlite spinning in its WAL flush on a full disk) is reported in the logs
 * by the watchdog's own thread, and its return too. A child process blocks its main thread
 * synchronously until the test, having read the report, creates a file.
 */
import assert from "node:assert/strict";

const WATCHDOG = new URL("../../engine/stall_watchdog.ts", import.meta.url).href;

Deno.test("a main thread that stops running is reported from the watchdog's thread, and its return", async () => {
  const dir = await Deno.makeTempDir({ prefix: "stall-watchdog-" });
  try {
    const release = `${dir}/release`;
    await Deno.writeTextFile(
      `${dir}/blocked.ts`,
      `import { startStallWatchdog } from ${JSON.stringify(WATCHDOG)};
const stop = startStallWatchdog({ fields: { instance: "test" }, level: "info", stallMs: 200, beatMs: 20 });
await new Promise((resolve) => setTimeout(resolve, 100));
// Blocked like PGlite in XLogFlush: no await, no timer, until the file exists.
for (;;) { try { Deno.statSync(${JSON.stringify(release)}); break; } catch { /* still blocked */ } }
await new Promise((resolve) => setTimeout(resolve, 200));
stop();
`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", `${dir}/blocked.ts`],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const lines: Record<string, unknown>[] = [];
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    let released = false;
    // A safety net, not a measurement: a watchdog that never reports would leave the child blocked forever.
    const giveUp = setTimeout(() => child.kill("SIGKILL"), 30_000);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        lines.push(JSON.parse(buffered.slice(0, newline)));
        buffered = buffered.slice(newline + 1);
      }
      if (!released && lines.some((l) => l.level === "error")) {
        released = true;
        await Deno.writeTextFile(release, "");
      }
    }
    const status = await child.status;
    clearTimeout(giveUp);
    assert.ok(released, "no report within 30 s of a thread blocked for good");
    assert.equal(status.code, 0);
    const [stall, back, ...rest] = lines;
    assert.equal(stall.level, "error");
    assert.equal(stall.component, "stall-watchdog");
    assert.equal(stall.instance, "test");
    assert.match(String(stall.msg), /the engine's thread has not run for \d+ s/);
    assert.match(String(stall.msg), /disk under DATA_DIR is full/);
    assert.ok(Number(stall.silentMs) > 200);
    assert.equal(back.msg, "the engine's thread runs again");
    assert.ok(Number(back.stalledMs) > 0);
    assert.deepEqual(rest, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
