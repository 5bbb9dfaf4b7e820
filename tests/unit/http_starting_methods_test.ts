/**
 * While the engine starts, a path and method the running engine refuses are refused alike: an unknown path is a 404,
 * a method the path does not take a 405 naming in `Allow` the methods it takes (not every method of any route), and
 * only what the running engine would serve is a 503 "starting" to retry.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../../engine/logger.ts";
import { startingRoutes } from "../../http/routes.ts";
import { createHandler } from "../../http/server.ts";
import { BASE, httpFixture } from "./http_fixture.ts";

const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

Deno.test("while starting, wrong methods are 405 with the path's own Allow and unknown paths 404, as once started", async () => {
  const { routes, handle: running } = await httpFixture();
  const operations = routes.filter((route) => route.path === "/readyz" || route.path === "/metrics");
  const starting = createHandler(startingRoutes(operations), silentLogger);
  const paths = [...new Set(routes.map((route) => route.path.replaceAll(":id", "a%2Fb"))), "/nope", "/v1/users/x/nope"];
  for (const path of paths) {
    for (const method of METHODS) {
      const init = {
        method,
        ...(method === "POST" ? { headers: { "content-type": "application/json" }, body: "[]" } : {}),
      };
      const ran = await running(new Request(`${BASE}${path}`, init));
      const began = await starting(new Request(`${BASE}${path}`, init));
      const what = `${method} ${path}: running ${ran.status} ${ran.headers.get("allow")}, starting ${began.status}`;
      // A 404 of no route (`about:blank`), not of an unknown id, which only the running engine can tell.
      const noRoute = ran.status === 404 && (await ran.json()).type === "about:blank";
      if (ran.bodyUsed === false) await ran.body?.cancel();
      const body = await began.text();
      if (noRoute || ran.status === 405) {
        assert.equal(began.status, ran.status, `${what} ${body}`);
        assert.equal(began.headers.get("allow"), ran.headers.get("allow"), what);
      } else if (began.status !== ran.status) {
        assert.equal(began.status, 503, `${what} ${body}`);
        assert.equal(JSON.parse(body).type, "urn:actor-engine:problem:starting", what);
      }
    }
  }
});
