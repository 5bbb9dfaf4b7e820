/**
 * What the engine does with HTTP before it is ready: a bind failure is a ConfigError naming HOST and
 * PORT, and the start-up route table answers liveness, readiness and metrics, and 503 to the rest.
 */
import assert from "node:assert/strict";
import { ConfigError } from "../../engine/errors.ts";
import { hostPort, listenError, listenHttp } from "../../engine/http_listener.ts";
import { silentLogger } from "../../engine/logger.ts";
import { operationsRoutes } from "../../http/operations_routes.ts";
import { startingRoutes } from "../../http/routes.ts";
import { createHandler } from "../../http/server.ts";

const ok = () => Promise.resolve(new Response("ok"));

Deno.test("listenHttp: a port in use is a ConfigError naming HOST and PORT", () => {
  const holder = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const { port } = holder.addr as Deno.NetAddr;
    assert.throws(() => listenHttp("127.0.0.1", port, ok), (error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(
        error.message,
        new RegExp(`^Cannot listen on 127\\.0\\.0\\.1:${port} \\(HOST, PORT\\): address in use`),
      );
      assert.ok(error.cause instanceof Deno.errors.AddrInUse);
      return true;
    });
  } finally {
    holder.close();
  }
});

Deno.test("listenHttp: a host name that does not resolve is a ConfigError naming HOST and PORT", () => {
  assert.throws(
    () => listenHttp("nonexistent.invalid", 0, ok),
    (error) =>
      error instanceof ConfigError && /^Cannot listen on nonexistent\.invalid:0 \(HOST, PORT\): /.test(error.message),
  );
});

Deno.test("listenHttp: a free address serves", async () => {
  const server = listenHttp("127.0.0.1", 0, ok);
  try {
    const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
    assert.equal(await response.text(), "ok");
  } finally {
    await server.shutdown();
  }
});

Deno.test("listenError words an address that is not this machine's, and brackets an IPv6 host", () => {
  assert.equal(hostPort("::", 8080), "[::]:8080");
  assert.match(
    listenError("10.255.255.1", 8080, new Deno.errors.AddrNotAvailable("Cannot assign requested address")).message,
    /^Cannot listen on 10\.255\.255\.1:8080 \(HOST, PORT\): address not available \(HOST is not an address/,
  );
  assert.match(
    listenError("::1", 80, new Deno.errors.PermissionDenied("denied")).message,
    /^Cannot listen on \[::1\]:80 /,
  );
});

Deno.test("while starting: /healthz 200, /readyz as its checks say, 503 with Retry-After for the API", async () => {
  const checks = { consumer: () => Promise.resolve({ ok: false as const, reason: "starting up" }) };
  const handle = createHandler(
    startingRoutes(
      operationsRoutes({ checks, metrics: () => Promise.resolve({ body: "", contentType: "text/plain" }) }),
    ),
    silentLogger,
  );
  const health = await handle(new Request("http://engine/healthz"));
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: "ok" });
  const ready = await handle(new Request("http://engine/readyz"));
  assert.equal(ready.status, 503);
  assert.deepEqual(await ready.json(), { status: "not ready", checks: { consumer: "starting up" } });
  assert.equal((await handle(new Request("http://engine/metrics"))).status, 200);
  for (
    const request of [
      new Request("http://engine/v1/users/u1"),
      new Request("http://engine/openapi.json"),
      new Request("http://engine/v1/events", { method: "POST", body: "[]" }),
    ]
  ) {
    const response = await handle(request);
    assert.equal(response.status, 503, request.url);
    assert.equal(response.headers.get("retry-after"), "5");
    assert.equal((await response.json()).type, "urn:actor-engine:problem:starting");
  }
});

Deno.test("/readyz is ready only when every check is: one failing check is a 503 with Retry-After naming it", async () => {
  const pass = () => Promise.resolve({ ok: true as const });
  const fail = () => Promise.resolve({ ok: false as const, reason: "connection refused" });
  const readiness = async (checks: Record<string, () => Promise<{ ok: true } | { ok: false; reason: string }>>) => {
    const metrics = () => Promise.resolve({ body: "", contentType: "text/plain" });
    const handle = createHandler(operationsRoutes({ checks, metrics }), silentLogger);
    const response = await handle(new Request("http://engine/readyz"));
    return { status: response.status, retryAfter: response.headers.get("retry-after"), body: await response.json() };
  };
  assert.deepEqual(await readiness({ database: pass, log: pass }), {
    status: 200,
    retryAfter: null,
    body: { status: "ready", checks: { database: "ok", log: "ok" } },
  });
  assert.deepEqual(await readiness({ database: pass, log: fail }), {
    status: 503,
    retryAfter: "5",
    body: { status: "not ready", checks: { database: "ok", log: "connection refused" } },
  });
});
