import assert from "node:assert/strict";
import { createLogger } from "../../engine/logger.ts";
import { guardStrayNetworkErrors, isNetworkError } from "../../engine/stray_errors.ts";

Deno.test("a socket error no promise handles is logged, not fatal, while the guard is on", async () => {
  const lines: string[] = [];
  const unguard = guardStrayNetworkErrors(createLogger("warn", (line) => lines.push(line)));
  try {
    // As postgres.js lets one escape when a connect is refused during an outage. Unguarded, the test
    // runner (like the engine's process) fails on it.
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), {
      code: "ECONNREFUSED",
      syscall: "connect",
    });
    Promise.reject(refused);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(lines.length, 1);
    assert.match(lines[0], /"level":"warn".*a network error escaped its client.*ECONNREFUSED/);
  } finally {
    unguard();
  }
});

Deno.test("isNetworkError() takes socket errors only: other rejections stay fatal", () => {
  assert.equal(isNetworkError(Object.assign(new Error("x"), { code: "ECONNRESET", syscall: "read" })), true);
  assert.equal(isNetworkError(Object.assign(new Error("x"), { code: "ECONNREFUSED" })), false, "no system call");
  assert.equal(isNetworkError(Object.assign(new Error("x"), { code: "23505", syscall: "connect" })), false);
  assert.equal(isNetworkError(new TypeError("a bug")), false);
  assert.equal(isNetworkError(null), false);
  assert.equal(isNetworkError("ECONNREFUSED"), false);
});
