import assert from "node:assert/strict";
import type { Sql } from "../../engine/database.ts";
import { InstanceRegistry } from "../../engine/instance_registry.ts";
import { silentLogger } from "../../engine/logger.ts";

Deno.test("unregister() waits for a heartbeat in flight, which then cannot bring the deleted row back", async () => {
  const rows = new Set<string>();
  const touchIssued = Promise.withResolvers<void>();
  const touchMayRun = Promise.withResolvers<void>();
  // A stand-in for the instances table; the heartbeat's UPDATE is slow to reach it.
  const sql = ((strings: TemplateStringsArray, ...values: unknown[]) => {
    const text = strings.join("?");
    const id = values[0] as string;
    if (text.includes("insert into instances")) return Promise.resolve(void rows.add(id)).then(() => []);
    if (text.includes("delete from instances")) return Promise.resolve(void rows.delete(id)).then(() => []);
    if (text.includes("update instances")) {
      touchIssued.resolve();
      return touchMayRun.promise.then(() => (rows.has(id) ? [1] : []));
    }
    throw new Error(`unexpected query ${text}`);
  }) as unknown as Sql;
  const registry = new InstanceRegistry(sql, "g", "me", silentLogger);
  await registry.register("http://me:8080");
  await touchIssued.promise; // the first heartbeat, INSTANCE_HEARTBEAT_MS after registering
  const unregistered = registry.unregister();
  await new Promise((resolve) => setTimeout(resolve, 10));
  touchMayRun.resolve();
  await unregistered;
  await new Promise((resolve) => setTimeout(resolve, 10));
  // The delete used to run at once; the heartbeat then found no row and inserted it again, so the
  // stopped instance kept attracting forwarded queries.
  assert.deepEqual([...rows], []);
});
