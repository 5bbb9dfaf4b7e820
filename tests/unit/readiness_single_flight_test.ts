/**
 * /readyz runs each check once at a time: probes arriving while a check is still unanswered (PostgreSQL frozen) share
 * it and answer 503 within the check's deadline, instead of each queueing one more query on the pool.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../../engine/logger.ts";
import { type CheckResult, operationsRoutes } from "../../http/operations_routes.ts";
import { createHandler } from "../../http/server.ts";

/** Every pending promise callback run (a task later). */
const settled = () => new Promise((resolve) => setTimeout(resolve, 0));

const metrics = () => Promise.resolve({ body: "", contentType: "text/plain" });

Deno.test("/readyz: probes while a check is unanswered share it (one query on a frozen database), each a 503 in time", async () => {
  let now = 1_000_000;
  const asked: PromiseWithResolvers<CheckResult>[] = [];
  const database = () => {
    const answer = Promise.withResolvers<CheckResult>();
    asked.push(answer);
    return answer.promise;
  };
  const handle = createHandler(
    operationsRoutes({ checks: { database }, metrics, checkTiming: { timeoutMs: 10, now: () => now } }),
    silentLogger,
  );
  const probe = async () => {
    const response = await handle(new Request("http://engine/readyz"));
    return { status: response.status, body: await response.json() };
  };
  assert.deepEqual(await probe(), {
    status: 503,
    body: { status: "not ready", checks: { database: "no answer within 10 ms" } },
  });
  now += 1_000;
  const second = await probe();
  now += 1_000;
  const third = await probe();
  assert.equal(asked.length, 1, "one check in flight, whatever the number of probes");
  // Each probe waited at most the deadline, and says how long the check in flight has gone unanswered.
  assert.deepEqual(second, {
    status: 503,
    body: { status: "not ready", checks: { database: "no answer within 1000 ms" } },
  });
  assert.deepEqual(third, {
    status: 503,
    body: { status: "not ready", checks: { database: "no answer within 2000 ms" } },
  });
  // Once the check answers, the next probe asks again.
  asked[0].resolve({ ok: true });
  await settled();
  const fourth = probe();
  await settled();
  assert.equal(asked.length, 2);
  asked[1].resolve({ ok: true });
  assert.deepEqual(await fourth, { status: 200, body: { status: "ready", checks: { database: "ok" } } });
});

Deno.test("/readyz: probes arriving while a check runs answer with that check's outcome", async () => {
  let calls = 0;
  const gate = Promise.withResolvers<CheckResult>();
  const log = () => (calls++, gate.promise);
  const handle = createHandler(operationsRoutes({ checks: { log }, metrics }), silentLogger);
  const both = Promise.all([handle(new Request("http://engine/readyz")), handle(new Request("http://engine/readyz"))]);
  await Promise.resolve();
  gate.resolve({ ok: false, reason: "broker down" });
  const answers = await Promise.all((await both).map((response) => response.json()));
  assert.equal(calls, 1);
  assert.deepEqual(answers, [
    { status: "not ready", checks: { log: "broker down" } },
    { status: "not ready", checks: { log: "broker down" } },
  ]);
});
