/** The instance registry: its row and heartbeat, against a stand-in and on PGlite. */
import assert from "node:assert/strict";
import type { Sql } from "../../engine/database.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { INSTANCE_HEARTBEAT_MS, InstanceRegistry } from "../../engine/instance_registry.ts";
import { createLogger, silentLogger } from "../../engine/logger.ts";
import { migrate } from "../../sql/migrations.ts";
import { eventually } from "../helpers/services.ts";

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

Deno.test("a heartbeat that finds its row gone registers the instance again, and unregister() waits for that", async () => {
  const rows = new Map<string, string>();
  /** While set, an insert waits for it before it lands; `issued` hears of each insert. */
  let gate: Promise<void> | undefined;
  let issued = Promise.withResolvers<void>();
  // A stand-in for the instances table.
  const sql = ((strings: TemplateStringsArray, ...values: unknown[]) => {
    const text = strings.join("?");
    const id = values[0] as string;
    if (text.includes("insert into instances")) {
      issued.resolve();
      return Promise.resolve(gate).then(() => void rows.set(id, values[1] as string)).then(() => []);
    }
    if (text.includes("delete from instances") && text.includes("updated_at")) return Promise.resolve([]);
    if (text.includes("delete from instances")) return Promise.resolve(void rows.delete(id)).then(() => []);
    if (text.includes("update instances")) return Promise.resolve(rows.has(id) ? [1] : []);
    throw new Error(`unexpected query ${text}`);
  }) as unknown as Sql;
  const registry = new InstanceRegistry(sql, "g", "me", silentLogger);
  await registry.register("http://me:8080");
  const slow = Promise.withResolvers<void>();
  try {
    // A live instance forgot this row (this one was frozen for over INSTANCE_FORGET_MS, say).
    rows.delete("me");
    const url = await eventually("the row back", () => Promise.resolve(rows.get("me")), 5 * INSTANCE_HEARTBEAT_MS);
    // Without it, no query was forwarded to this instance again until it restarted.
    assert.equal(url, "http://me:8080");
    // Lost again; the heartbeat's insert is slow to land, and the instance stops meanwhile.
    gate = slow.promise;
    issued = Promise.withResolvers<void>();
    rows.delete("me");
    await issued.promise;
  } finally {
    const unregistered = registry.unregister();
    await new Promise((resolve) => setTimeout(resolve, 10));
    slow.resolve();
    await unregistered;
  }
  // The delete used to run before that insert landed, and the stopped instance's row came back.
  assert.deepEqual([...rows.keys()], []);
});

Deno.test("a heartbeat still running when the next is due is not overlapped, so unregister() waits for all of it", async () => {
  const rows = new Map<string, string>();
  const updates: string[] = [];
  const secondTouch = Promise.withResolvers<void>();
  const skipped = Promise.withResolvers<void>();
  const firstInsertIssued = Promise.withResolvers<void>();
  const slow = Promise.withResolvers<void>();
  let inserts = 0;
  // A stand-in for the instances table; the first heartbeat's re-insert is slow to land (a slow database).
  const sql = ((strings: TemplateStringsArray, ...values: unknown[]) => {
    const text = strings.join("?");
    const id = values[0] as string;
    if (text.includes("insert into instances")) {
      const gate = ++inserts === 2 ? (firstInsertIssued.resolve(), slow.promise) : undefined;
      return Promise.resolve(gate).then(() => void rows.set(id, values[1] as string)).then(() => []);
    }
    if (text.includes("delete from instances") && text.includes("updated_at")) return Promise.resolve([]);
    if (text.includes("delete from instances")) return Promise.resolve(void rows.delete(id)).then(() => []);
    if (text.includes("update instances")) {
      updates.push(id);
      if (updates.length === 2) secondTouch.resolve();
      return Promise.resolve(rows.has(id) ? [1] : []);
    }
    throw new Error(`unexpected query ${text}`);
  }) as unknown as Sql;
  const logger = createLogger("debug", (line) => {
    if (JSON.parse(line).msg.includes("still running")) skipped.resolve();
  });
  const registry = new InstanceRegistry(sql, "g", "me", logger);
  await registry.register("http://me:8080");
  // Lost (forgotten by a live instance): the first heartbeat re-inserts it, slowly.
  rows.delete("me");
  await firstInsertIssued.promise;
  // The next heartbeat is due while the first still runs: it either overlaps it or is skipped.
  await Promise.race([secondTouch.promise, skipped.promise]);
  const unregistered = registry.unregister();
  await new Promise((resolve) => setTimeout(resolve, 10));
  slow.resolve();
  await unregistered;
  await new Promise((resolve) => setTimeout(resolve, 10));
  // The second heartbeat used to run beside the first and replace it as the one unregister() waits for: the delete
  // ran before the first one's insert landed, and the stopped instance's row came back.
  assert.deepEqual([...rows.keys()], []);
  assert.deepEqual(updates, ["me"], "one heartbeat at a time");
});

Deno.test("a live instance's heartbeat deletes the rows of instances dead for over an hour, and only those", async () => {
  const dir = await Deno.makeTempDir({ prefix: "instance-rows-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  const registry = new InstanceRegistry(db.sql, "g", "alive", silentLogger);
  try {
    await migrate(db.sql);
    // Killed with SIGKILL (or stopped past the shutdown deadline): their rows were never deleted.
    await db.sql`
      insert into instances (instance_id, http_url, updated_at) values
        ('killed-yesterday', 'http://a:8080', now() - interval '1 day'),
        ('killed-2h-ago', 'http://b:8080', now() - interval '2 hours'),
        ('killed-10min-ago', 'http://c:8080', now() - interval '10 minutes')`;
    await registry.register("http://alive:8080");
    const ids = async () =>
      (await db.sql<{ instance_id: string }[]>`select instance_id from instances order by instance_id`)
        .map((r) => r.instance_id);
    // Each restart of a container under a new instance id used to add a row for ever.
    const left = await eventually(
      "the long-dead instances' rows to go",
      async () => {
        const now = await ids();
        return now.includes("killed-yesterday") || now.includes("killed-2h-ago") ? undefined : now;
      },
      10 * INSTANCE_HEARTBEAT_MS,
    );
    // Recently stale (not routed to, but possibly a frozen instance coming back) and live rows stay.
    assert.deepEqual(left, ["alive", "killed-10min-ago"]);
  } finally {
    await registry.unregister();
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
