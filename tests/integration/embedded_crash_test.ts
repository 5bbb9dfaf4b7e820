/**
 * Embedded mode survives kill -9: the engine runs as a separate process on a temporary DATA_DIR,
 * is killed with SIGKILL at three different moments, restarted on the same DATA_DIR, and every
 * acknowledged event is counted exactly once. Events whose POST never completed may be counted
 * or not, but never twice.
 */
import assert from "node:assert/strict";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import { type EngineProcess, startEngineProcess } from "../helpers/engine_process.ts";
import { eventually } from "../helpers/services.ts";

const USERS = Array.from({ length: 20 }, (_, i) => `crash-user-${String(i).padStart(2, "0")}`);
const EVENTS_PER_POST = 20;

/** What the test knows about the events it posted. */
class Ledger {
  /** Views per user in POSTs answered 202. */
  readonly acked = new Map<string, number>(USERS.map((u) => [u, 0]));
  /** Views per user in POSTs that got no answer (the process died under them). */
  readonly unknown = new Map<string, number>(USERS.map((u) => [u, 0]));
  readonly ackedIds = new Set<string>();
  #next = 0;

  /** A batch of product views spread over the users. */
  batch(): { userId: string; body: unknown }[] {
    return Array.from({ length: EVENTS_PER_POST }, () => {
      const n = this.#next++;
      const userId = USERS[(n * 7 + Math.floor(n / 20)) % USERS.length];
      return {
        userId,
        body: {
          type: "product_viewed",
          userId,
          occurredAt: new Date(Date.UTC(2026, 10, 1, 10, 0, 0) + n * 1000).toISOString(),
          properties: { productId: `sku-${n % 13}`, price: 10 },
        },
      };
    });
  }

  add(into: Map<string, number>, events: readonly { userId: string }[]): void {
    for (const e of events) into.set(e.userId, into.get(e.userId)! + 1);
  }
}

/**
 * Posts `posts` batches with `concurrency` requests at a time. If `killAfter` is set, SIGKILLs
 * the engine the moment that many POSTs were acknowledged, with others still in flight.
 */
async function burst(
  engine: EngineProcess,
  ledger: Ledger,
  posts: number,
  options: { concurrency: number; killAfter?: number },
): Promise<void> {
  let started = 0;
  let acked = 0;
  let killed: Promise<unknown> | undefined;
  const worker = async () => {
    while (started < posts && !killed) {
      started++;
      const events = ledger.batch();
      let response: Response;
      try {
        response = await fetch(`${engine.url}/v1/events`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(events.map((e) => e.body)),
        });
      } catch {
        assert.ok(killed, "a POST failed although the engine was not killed");
        ledger.add(ledger.unknown, events);
        continue;
      }
      if (response.status !== 202) {
        throw new Error(`POST answered ${response.status}: ${await response.text()}\n${engine.logs()}`);
      }
      const body = await response.json() as { eventIds: string[] };
      ledger.add(ledger.acked, events);
      for (const id of body.eventIds) ledger.ackedIds.add(id);
      if (++acked === options.killAfter) killed = engine.kill("SIGKILL");
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  await killed;
}

async function views(engine: EngineProcess, userId: string): Promise<number> {
  const response = await fetch(`${engine.url}/v1/users/${userId}`);
  if (response.status === 404) {
    await response.body?.cancel();
    return 0;
  }
  const body = await response.json();
  return body.productViews;
}

/** Waits until every user shows at least its acknowledged views, then checks none shows too many. */
async function assertCountedOnce(engine: EngineProcess, ledger: Ledger): Promise<void> {
  await eventually(
    "every acknowledged view to be counted",
    async () => {
      for (const user of USERS) if (await views(engine, user) < ledger.acked.get(user)!) return undefined;
      return true;
    },
    30_000,
    50,
  );
  // Give a replay time to over-count, if it were going to.
  await new Promise((resolve) => setTimeout(resolve, 500));
  for (const user of USERS) {
    const counted = await views(engine, user);
    const acked = ledger.acked.get(user)!;
    assert.ok(
      counted >= acked && counted <= acked + ledger.unknown.get(user)!,
      `${user}: ${counted} views, ${acked} acknowledged, ${ledger.unknown.get(user)} unknown`,
    );
  }
}

Deno.test("embedded mode counts every acknowledged event exactly once across kill -9 at three moments", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "embedded-crash-" });
  const ledger = new Ledger();
  let engine: EngineProcess | undefined;
  try {
    // 1. Killed right after the last 202 of a burst, before a checkpoint could cover it.
    engine = await startEngineProcess({ dataDir });
    await burst(engine, ledger, 15, { concurrency: 3 });
    await engine.kill("SIGKILL");

    // 2. Killed mid-burst, with POSTs still in flight.
    engine = await startEngineProcess({ dataDir });
    await burst(engine, ledger, 24, { concurrency: 4, killAfter: 10 });

    // 3. Killed while catching up after the restart.
    engine = await startEngineProcess({ dataDir });
    await burst(engine, ledger, 4, { concurrency: 2 });
    await engine.kill("SIGKILL");

    engine = await startEngineProcess({ dataDir });
    await assertCountedOnce(engine, ledger);
    assert.ok([...ledger.acked.values()].reduce((a, b) => a + b) >= 15 * EVENTS_PER_POST + 10 * EVENTS_PER_POST);

    const stopped = await engine.kill("SIGTERM");
    assert.equal(stopped.code, 0, engine.logs());
    engine = undefined;

    // The log itself holds each acknowledged event exactly once.
    const db = await openEmbeddedDatabase(dataDir, { logger: silentLogger });
    try {
      const rows = await db.sql<{ id: string; n: string }[]>`
        select convert_from(value, 'UTF8')::jsonb ->> 'eventId' as id, count(*) as n
          from embedded_log_records where topic = 'events' group by 1`;
      const inLog = new Map(rows.map((r) => [r.id, Number(r.n)]));
      assert.ok(rows.every((r) => Number(r.n) === 1), "no event is in the log twice");
      for (const id of ledger.ackedIds) assert.equal(inLog.get(id), 1, `acknowledged event ${id} is in the log`);
    } finally {
      await db.close();
    }
  } finally {
    await engine?.kill("SIGKILL");
    await Deno.remove(dataDir, { recursive: true });
  }
});
