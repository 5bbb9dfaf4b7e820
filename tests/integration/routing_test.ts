/**
 * Query routing between two engine processes on real Kafka and PostgreSQL: a state query answered
 * by either instance is the owner's answer (forwarded once), and when the owner dies its keys are
 * answered from the checkpoint with `asOf` until the survivor takes the partitions over.
 */
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import postgres from "postgres";
import { parseConfig, topicNames } from "../../engine/config.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { type EngineProcess, freePort, startEngineProcess } from "../helpers/engine_process.ts";
import { eventually, FAILOVER_SESSION, freshDatabase, services, uniqueName } from "../helpers/services.ts";
import { onlyOn } from "../helpers/modes.ts";

const PARTITIONS = 6;
const USERS = 30;
// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

/** The state without the fields saying where and by whom it was read. */
const stateOf = ({ source: _s, instance: _i, asOf: _a, ...state }: Json) => state;

async function post(engine: EngineProcess, events: Record<string, unknown>[]): Promise<void> {
  const response = await fetch(`${engine.url}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(events),
  });
  assert.equal(response.status, 202, await response.text());
}

async function getUser(engine: EngineProcess, userId: string): Promise<{ status: number; body: Json }> {
  const response = await fetch(`${engine.url}/v1/users/${encodeURIComponent(userId)}`);
  const body = await response.json();
  if (response.status === 200) assert.equal(response.headers.get("x-engine-instance"), body.instance);
  return { status: response.status, body };
}

/** The settings both instances of a test share: a group and topics of their own, checkpoints every 200 ms, no idle clock. */
function groupEnv(id: string, dbUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    KAFKA_BROKERS: services().kafkaBrokers,
    DATABASE_URL: dbUrl,
    TOPIC_PREFIX: `${id}.`,
    GROUP_ID: `${id}-group`,
    PARTITIONS: String(PARTITIONS),
    CHECKPOINT_INTERVAL_MS: "200",
    CLOCK_IDLE_MS: String(86_400_000),
    // The stalls and kills wait for the session to time out.
    ...FAILOVER_SESSION,
    ...extra,
  };
}

/**
 * `read`'s answer once it gives the same twice, two seconds apart: two members joining one after the other may take the
 * group through more than one rebalance, so the owners are those that stay put.
 */
function settled<T>(label: string, read: () => Promise<T | undefined>, same: (a: T, b: T) => boolean): Promise<T> {
  return eventually(
    label,
    async () => {
      const first = await read();
      if (first === undefined) return undefined;
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      const second = await read();
      return second !== undefined && same(first, second) ? second : undefined;
    },
    60_000,
    200,
  );
}

/** The registry's instance id of each engine (by its URL), once every one has registered. */
function registeredIds(sql: postgres.Sql, engines: readonly EngineProcess[]): Promise<string[]> {
  return eventually(`${engines.length} instances registered`, async () => {
    const rows = await sql<{ instance_id: string; http_url: string }[]>`select instance_id, http_url from instances`;
    const byUrl = new Map(rows.map((r) => [r.http_url, r.instance_id]));
    const found = engines.map((e) => byUrl.get(e.url));
    return found.every((i) => i !== undefined) ? found as string[] : undefined;
  });
}

/** Whether two partition → owner maps agree on every partition of the first. */
const sameOwners = <K>(first: Map<K, string>, second: Map<K, string>) =>
  [...first].every(([p, o]) => second.get(p) === o);

/** `error` with the last lines of each instance's log. */
function withLogs(error: unknown, a?: EngineProcess, b?: EngineProcess): Error {
  const tail = (e?: EngineProcess) => e?.logs().split("\n").slice(-20).join("\n") ?? "";
  return new Error(`${(error as Error).message}\nA logs:\n${tail(a)}\nB logs:\n${tail(b)}`, { cause: error });
}

/** Two instances of one group, B stopped (SIGSTOP) after holding a user's first view, its partition claimed by A. */
interface StalledOwner {
  readonly a: EngineProcess;
  readonly b: EngineProcess;
  readonly ids: { readonly a: string; readonly b: string };
  readonly userId: string;
  readonly env: Record<string, string>;
  readonly sql: postgres.Sql;
  readonly view: (userId: string) => Record<string, unknown>;
  /** Resumes B (SIGCONT), once. */
  wake(): void;
}

/**
 * Runs `body` on two instances where B answered a user's first view from its memory, then stalled past the session
 * timeout until A claimed its partition: what B answers on waking is what the caller checks. Cleans everything up.
 */
async function withStalledOwner(prefix: string, body: (setup: StalledOwner) => Promise<void>): Promise<void> {
  const db = await freshDatabase();
  const id = uniqueName(prefix);
  const env = groupEnv(id, db.url);
  const topics = topicNames(parseConfig(env));
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  const ownerOf = async (partition: number) => {
    const [row] = await sql<{ owner: string }[]>`
      select owner from partition_checkpoints
       where group_id = ${env.GROUP_ID} and topic = ${topics.events} and partition = ${partition}`;
    return row?.owner;
  };
  const view = (userId: string) => ({ type: "product_viewed", userId, properties: { productId: "p1" } });
  let a: EngineProcess | undefined;
  let b: EngineProcess | undefined;
  let stopped = false;
  try {
    [a, b] = await Promise.all(
      [0, 1].map(async () => startEngineProcess({ dataDir: await Deno.makeTempDir(), env })),
    );
    const [idA, idB] = await registeredIds(sql, [a, b]);
    const userId = await settled(
      "a user whose partition B owns",
      async () => {
        for (let i = 0; i < 50; i++) {
          const u = `${prefix}-user-${i}`;
          if (await ownerOf(partitionForKey(u, PARTITIONS)) === idB) return u;
        }
        return undefined;
      },
      (first, second) => first === second,
    );
    const partition = partitionForKey(userId, PARTITIONS);
    await post(a, [view(userId)]);
    // B answers from its memory (and so has looked the partition's owner up: itself).
    await eventually(
      "B holds the first view in memory",
      async () => {
        const { status, body } = await getUser(b!, userId);
        return status === 200 && body.source === "memory" && body.instance === idB && body.productViews === 1
          ? true
          : undefined;
      },
      30_000,
      100,
    );

    // B stalls past the session timeout: A claims B's partitions.
    Deno.kill(b.pid, "SIGSTOP");
    stopped = true;
    await eventually(
      "A claimed B's partition",
      async () => await ownerOf(partition) === idA ? true : undefined,
      60_000,
      200,
    );
    const stalledB = b;
    await body({
      a,
      b,
      ids: { a: idA, b: idB },
      userId,
      env,
      sql,
      view,
      wake: () => {
        if (!stopped) return;
        Deno.kill(stalledB.pid, "SIGCONT");
        stopped = false;
      },
    });
  } catch (error) {
    throw withLogs(error, a, b);
  } finally {
    if (stopped && b) Deno.kill(b.pid, "SIGCONT");
    await a?.kill("SIGKILL");
    await b?.kill("SIGKILL");
    await sql.end();
    await db.drop();
  }
}

onlyOn("kafka", {
  name: "routing: either instance answers with the owner's state; a dead owner's keys fall back to the checkpoint",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const id = uniqueName("rt");
    const env = groupEnv(id, db.url);
    const topics = topicNames(parseConfig(env));
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    let a: EngineProcess | undefined;
    let b: EngineProcess | undefined;
    try {
      a = await startEngineProcess({ dataDir: await Deno.makeTempDir(), env });
      b = await startEngineProcess({ dataDir: await Deno.makeTempDir(), env });
      const [idA, idB] = await registeredIds(sql, [a, b]);
      const ids = { a: idA, b: idB };
      const claims = async () => {
        const rows = await sql<{ partition: number; owner: string }[]>`
          select partition, owner from partition_checkpoints where group_id = ${env.GROUP_ID} and topic = ${topics.events}`;
        const found = new Set(rows.map((r) => r.owner));
        return rows.length === PARTITIONS && found.has(ids.a) && found.has(ids.b)
          ? new Map(rows.map((r) => [r.partition, r.owner]))
          : undefined;
      };
      const owners = await settled("both instances own partitions of the events topic", claims, sameOwners);

      const users = Array.from({ length: USERS }, (_, i) => `rt-user-${i}`);
      const at = Date.now() - 60_000;
      await post(
        a,
        users.flatMap((userId, i) => [
          { type: "page_viewed", userId, occurredAt: new Date(at + i).toISOString(), properties: { url: "/" } },
          {
            type: "product_added_to_cart",
            userId,
            occurredAt: new Date(at + 1000 + i).toISOString(),
            properties: { productId: `p${i % 5}`, price: 10 + i, quantity: 1 + (i % 3) },
          },
        ]),
      );
      await eventually(
        "every event checkpointed",
        async () => {
          const [row] = await sql`
          select coalesce(sum(next_offset), 0) as done from partition_checkpoints
           where group_id = ${env.GROUP_ID} and topic = ${topics.events}`;
          return Number(row.done) === 2 * USERS ? true : undefined;
        },
        30_000,
        200,
      );

      const ownerOf = (userId: string) => owners.get(partitionForKey(userId, PARTITIONS))!;
      const before = new Map<string, Json>();
      let forwardedByA = 0;
      let forwardedByB = 0;
      for (const userId of users) {
        const onA = await getUser(a, userId);
        const onB = await getUser(b, userId);
        assert.equal(onA.status, 200, JSON.stringify(onA.body));
        assert.equal(onB.status, 200, JSON.stringify(onB.body));
        assert.deepEqual(stateOf(onA.body), stateOf(onB.body), `same state of ${userId} on A and B`);
        assert.equal(onA.body.instance, ownerOf(userId), `A's answer for ${userId} comes from its owner`);
        assert.equal(onB.body.instance, ownerOf(userId), `B's answer for ${userId} comes from its owner`);
        if (onA.body.instance !== ids.a) forwardedByA++;
        if (onB.body.instance !== ids.b) forwardedByB++;
        before.set(userId, stateOf(onA.body));
      }
      assert.ok(forwardedByA > 0 && forwardedByB > 0, `forwarded: A ${forwardedByA}, B ${forwardedByB}`);

      // Products too: the same answer on both instances, once their facts are handled.
      for (const productId of ["p0", "p1", "p2", "p3", "p4"]) {
        await eventually(
          `${productId} answered alike by A and B`,
          async () => {
            const [onA, onB] = await Promise.all(
              [a!, b!].map(async (engine) => {
                const response = await fetch(`${engine.url}/v1/products/${productId}`);
                return { status: response.status, body: await response.json() };
              }),
            );
            if (onA.status !== 200 || onB.status !== 200) return undefined;
            return isDeepStrictEqual(stateOf(onA.body), stateOf(onB.body)) ? true : undefined;
          },
          20_000,
          200,
        );
      }

      await b.kill("SIGKILL");
      const orphans = users.filter((u) => ownerOf(u) === ids.b);
      for (const userId of orphans) {
        const { status, body } = await getUser(a, userId);
        assert.equal(status, 200);
        // Until the rebalance nobody has it in memory: A answers from the checkpoint.
        assert.equal(body.source, "checkpoint", `${userId} answered from the checkpoint`);
        assert.equal(typeof body.asOf, "string");
        assert.equal(body.instance, ids.a);
        assert.deepEqual(stateOf(body), before.get(userId));
      }

      const revived = orphans[0];
      await post(a, [{
        type: "page_viewed",
        userId: revived,
        occurredAt: new Date().toISOString(),
        properties: { url: "/x" },
      }]);
      const live = await eventually(
        "A serves B's former key from memory",
        async () => {
          const { status, body } = await getUser(a!, revived);
          return status === 200 && body.source === "memory" ? body : undefined;
        },
        40_000,
        250,
      );
      assert.equal(live.instance, ids.a);
      assert.notDeepEqual(stateOf(live), before.get(revived), "the new event is in the live state");
      const [row] = await sql`
        select owner from partition_checkpoints
         where group_id = ${env.GROUP_ID} and topic = ${topics.events}
           and partition = ${partitionForKey(revived, PARTITIONS)}`;
      assert.equal(row.owner, ids.a, "A now owns the partition");
    } catch (error) {
      throw withLogs(error, a, b);
    } finally {
      await a?.kill("SIGTERM");
      await b?.kill("SIGKILL");
      await sql.end();
      await db.drop();
    }
  },
});

/** Prometheus gauge `name` (no labels) as an instance reports it, or undefined if absent. */
async function gauge(engine: EngineProcess, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${engine.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

onlyOn("kafka", {
  name:
    "routing: an instance woken after the group gave its partitions away answers with the newer state, not its memory",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const id = uniqueName("zb");
    const env = groupEnv(id, db.url);
    const topics = topicNames(parseConfig(env));
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    const owners = async () =>
      new Map(
        (await sql<{ partition: number; owner: string }[]>`
          select partition, owner from partition_checkpoints where group_id = ${env.GROUP_ID} and topic = ${topics.events}`)
          .map((r) => [r.partition, r.owner]),
      );
    const views = async (engine: EngineProcess, userId: string) => {
      const { status, body } = await getUser(engine, userId);
      return status === 200 ? body : undefined;
    };
    const view = (userId: string) => ({ type: "product_viewed", userId, properties: { productId: "p1" } });
    let a: EngineProcess | undefined;
    let b: EngineProcess | undefined;
    try {
      a = await startEngineProcess({ dataDir: await Deno.makeTempDir(), env });
      b = await startEngineProcess({ dataDir: await Deno.makeTempDir(), env });
      const bId = await eventually("B registered", async () => {
        const [row] = await sql<{ instance_id: string }[]>`select instance_id from instances where http_url = ${
          b!.url
        }`;
        return row?.instance_id;
      });
      // A user of a partition B owns, its first view handled by B and held in B's memory.
      const userId = await eventually(
        "a user whose partition B owns",
        async () => {
          const claimed = await owners();
          if (claimed.size !== PARTITIONS) return undefined;
          return Array.from({ length: 50 }, (_, i) => `zb-user-${i}`)
            .find((u) => claimed.get(partitionForKey(u, PARTITIONS)) === bId);
        },
        60_000,
        200,
      );
      const partition = partitionForKey(userId, PARTITIONS);
      await post(a, [view(userId)]);
      await eventually(
        "B holds the first view in memory",
        async () => {
          const body = await views(b!, userId);
          return body?.source === "memory" && body.instance === bId && body.productViews === 1 ? true : undefined;
        },
        30_000,
        100,
      );
      // Checkpointed before B stalls: a state still dirty when it wakes would make its checkpoint find the fence.
      await eventually(
        "B checkpointed the first view",
        async () => {
          const [row] = await sql<{ next_offset: string; owner: string }[]>`
          select next_offset, owner from partition_checkpoints
           where group_id = ${env.GROUP_ID} and topic = ${topics.events} and partition = ${partition}`;
          return row && Number(row.next_offset) === 1 && row.owner === bId ? true : undefined;
        },
        30_000,
        100,
      );

      // B stalls past the session timeout: the group hands its partitions to A, which handles two more views.
      Deno.kill(b.pid, "SIGSTOP");
      try {
        await eventually(
          "A owns every partition, B's included",
          async () =>
            (await gauge(a!, "engine_partitions_owned")) === 2 * PARTITIONS + 1 &&
              (await owners()).get(partition) !== bId
              ? true
              : undefined,
          60_000,
          200,
        );
        await post(a, [view(userId), view(userId)]);
        await eventually(
          "A handled the views",
          async () => {
            const body = await views(a!, userId);
            return body?.source === "memory" && body.productViews === 3 ? true : undefined;
          },
          30_000,
          100,
        );
        // A leaves with its final checkpoints; B, once awake, is the group's only member and gets every partition.
        assert.equal((await a.kill("SIGTERM")).code, 0);
      } finally {
        Deno.kill(b.pid, "SIGCONT");
      }
      await eventually(
        "B rejoined and owns every partition",
        async () => (await gauge(b!, "engine_partitions_owned")) === 2 * PARTITIONS + 1 ? true : undefined,
        60_000,
        200,
      );
      const answer = await views(b, userId);
      assert.equal(answer?.productViews, 3, `B answers with the 3 views A checkpointed: ${JSON.stringify(answer)}`);
      assert.equal(answer?.instance, bId);

      // And B goes on from there.
      await post(b, [view(userId)]);
      await eventually(
        "B counts the fourth view",
        async () => {
          const body = await views(b!, userId);
          return body?.source === "memory" && body.productViews === 4 ? true : undefined;
        },
        30_000,
        100,
      );
    } catch (error) {
      throw withLogs(error, a, b);
    } finally {
      await a?.kill("SIGKILL");
      await b?.kill("SIGTERM");
      await sql.end();
      await db.drop();
    }
  },
});

onlyOn("kafka", {
  name:
    "routing: the first query an instance answers once woken from a stall past the session timeout is the new owner's, not its memory",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withStalledOwner("wq", async ({ a, b, ids, userId, view, wake }) => {
      await post(a, [view(userId), view(userId)]);
      await eventually(
        "A handled the views",
        async () => {
          const { status, body } = await getUser(a, userId);
          return status === 200 && body.source === "memory" && body.productViews === 3 ? true : undefined;
        },
        30_000,
        100,
      );

      // A query reaches B while it is stopped (the kernel accepts the connection) and is the first thing B reads on
      // waking, before it hears of the rebalance: PostgreSQL names A as the owner, so B's memory is no answer.
      const first = getUser(b, userId);
      wake();
      const { status, body } = await first;
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.productViews, 3, `B's first answer once woken has A's 3 views: ${JSON.stringify(body)}`);
      assert.equal(body.instance, ids.a, JSON.stringify(body));
    }),
});

onlyOn("kafka", {
  name:
    "routing: an owner that cannot be reached at its registered address is named in a warning, not silently skipped",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const id = uniqueName("ua");
    const env = groupEnv(id, db.url);
    const topics = topicNames(parseConfig(env));
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    // B advertises an address nothing listens on (an ADVERTISED_URL set wrong).
    const wrongUrl = `http://127.0.0.1:${freePort()}`;
    let a: EngineProcess | undefined;
    let b: EngineProcess | undefined;
    try {
      a = await startEngineProcess({ dataDir: await Deno.makeTempDir(), env });
      b = await startEngineProcess({ dataDir: await Deno.makeTempDir(), env: { ...env, ADVERTISED_URL: wrongUrl } });
      const bId = await eventually("B registered", async () => {
        const [row] = await sql<
          { instance_id: string }[]
        >`select instance_id from instances where http_url = ${wrongUrl}`;
        return row?.instance_id;
      });
      const users = Array.from({ length: 50 }, (_, i) => `ua-user-${i}`);
      const owned = async () => {
        const rows = await sql<{ partition: number; owner: string }[]>`
          select partition, owner from partition_checkpoints where group_id = ${env.GROUP_ID} and topic = ${topics.events}`;
        return rows.length === PARTITIONS
          ? users.find((u) => rows.find((r) => r.partition === partitionForKey(u, PARTITIONS))?.owner === bId)
          : undefined;
      };
      const userId = await settled("a user whose partition B owns", owned, (first, second) => first === second);
      await post(a, [{ type: "product_viewed", userId, properties: { productId: "p1" } }]);
      await eventually(
        "B checkpointed the view",
        async () => {
          const [row] = await sql<{ n: string }[]>`
          select coalesce(sum(next_offset), 0) as n from partition_checkpoints
           where group_id = ${env.GROUP_ID} and topic = ${topics.events}`;
          return Number(row.n) === 1 ? true : undefined;
        },
        30_000,
        100,
      );

      const queries = 5;
      for (let i = 0; i < queries; i++) {
        const { status, body } = await getUser(a, userId);
        assert.equal(status, 200);
        assert.equal(body.source, "checkpoint", "A answers from the checkpoint");
        assert.equal(body.productViews, 1);
      }
      const warnings = a.logs().split("\n").filter((line) => line.includes(wrongUrl)).map((line) => JSON.parse(line));
      assert.ok(warnings.length >= 1, `A logged why it answered from the checkpoint:\n${a.logs()}`);
      assert.ok(warnings.length < queries, `one warning per unreachable owner, not per query: ${warnings.length}`);
      assert.equal(warnings[0].level, "warn");
      assert.equal(warnings[0].owner, bId);
    } catch (error) {
      throw withLogs(error, a, b);
    } finally {
      await a?.kill("SIGTERM");
      await b?.kill("SIGTERM");
      await sql.end();
      await db.drop();
    }
  },
});

/** GET `path` of `engine`: status, JSON body and the instance header. */
async function getJson(engine: EngineProcess, path: string): Promise<{ status: number; body: Json; header: string }> {
  const response = await fetch(`${engine.url}${path}`);
  return { status: response.status, body: await response.json(), header: response.headers.get("x-engine-instance")! };
}

/** Analytics queries whose answer depends on the global actor's memory (the window's end at least). */
const LIVE_ANALYTICS = [
  "/v1/analytics/realtime",
  "/v1/analytics/funnel",
  "/v1/analytics/funnel?window=7d",
  "/v1/analytics/top-products?window=1h",
  "/v1/analytics/top-products?by=trending&window=all",
  "/v1/analytics/top-categories?window=15m",
];

onlyOn("kafka", {
  name:
    "routing: analytics asked of a non-owner or a ROLE=ingest instance are the analytics owner's live answer; a dead owner's fall back to the checkpoint",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const id = uniqueName("an");
    // Checkpoints only every 10 messages of a partition (never by time): the global actor's checkpoint
    // then stays behind its memory, deterministically, once it has handled fewer than 10 facts since.
    const env = groupEnv(id, db.url, { CHECKPOINT_INTERVAL_MS: "3600000", CHECKPOINT_MAX_MESSAGES: "10" });
    const topics = topicNames(parseConfig(env));
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    let a: EngineProcess | undefined;
    let b: EngineProcess | undefined;
    let c: EngineProcess | undefined;
    try {
      [a, b, c] = await Promise.all([
        startEngineProcess({ dataDir: await Deno.makeTempDir(), env }),
        startEngineProcess({ dataDir: await Deno.makeTempDir(), env }),
        startEngineProcess({ dataDir: await Deno.makeTempDir(), env: { ...env, ROLE: "ingest" } }),
      ]);
      const engines = [a, b, c];
      const ids = await registeredIds(sql, engines);
      const claims = async () => {
        const rows = await sql<{ topic: string; partition: number; owner: string }[]>`
          select topic, partition, owner from partition_checkpoints where group_id = ${env.GROUP_ID}`;
        const found = new Set(rows.map((r) => r.owner));
        return rows.length === 2 * PARTITIONS + 1 && found.has(ids[0]) && found.has(ids[1])
          ? new Map(rows.map((r) => [`${r.topic}:${r.partition}`, r.owner]))
          : undefined;
      };
      const owners = await settled("both processing instances own partitions", claims, sameOwners);
      const ownerId = owners.get(`${topics.analytics}:0`)!;
      const [owner, other] = ownerId === ids[0] ? [a, b] : [b, a];
      const otherId = ownerId === ids[0] ? ids[1] : ids[0];
      const ingest = c;
      const ingestId = ids[2];

      // Users of one partition of `events`: each event there is a message of that partition and a fact for the
      // global actor, except a duplicate, which is a message but no fact.
      const candidates = Array.from({ length: 200 }, (_, i) => `an-user-${i}`);
      const partition = partitionForKey(candidates[0], PARTITIONS);
      const users = candidates.filter((u) => partitionForKey(u, PARTITIONS) === partition).slice(0, 10);
      assert.equal(users.length, 10);
      const view = (userId: string, at: number) => ({
        eventId: crypto.randomUUID(),
        type: "page_viewed",
        userId,
        occurredAt: new Date(at).toISOString(),
        properties: { url: "/" },
      });
      const firstAt = Date.now() - 10 * 60_000;
      const first = users.map((u, i) => view(u, firstAt + i));
      await post(ingest, first);
      const pageViews = (body: Json) => body.last15?.eventsByType?.page_viewed;
      await eventually(
        "the global actor checkpointed the first 10 views",
        async () => {
          const [row] = await sql<{ views: string | null }[]>`
            select state #>> '{realtime,last15,events,page_viewed}' as views from actor_states
             where kind = 'global' and key = 'global'`;
          return row && Number(row.views) === 10 ? true : undefined;
        },
        30_000,
        200,
      );

      // Ten more messages in that partition, so that it checkpoints and publishes their facts: five
      // repeats and five new views, a minute later. The global actor's 5 new facts stay below its checkpoint's 10.
      const laterAt = Date.now() - 2 * 60_000;
      await post(ingest, [...first.slice(0, 5), ...users.slice(0, 5).map((u, i) => view(u, laterAt + i))]);
      await eventually(
        "the owner's live analytics count 15 views",
        async () => {
          const { status, body } = await getJson(owner, "/v1/analytics/realtime");
          return status === 200 && body.source === "memory" && pageViews(body) === 15 ? true : undefined;
        },
        30_000,
        200,
      );
      const [stored] = await sql<{ views: string; last: string }[]>`
        select state #>> '{realtime,last15,events,page_viewed}' as views, state ->> 'lastEventAt' as last
          from actor_states where kind = 'global' and key = 'global'`;
      assert.equal(Number(stored.views), 10, "the checkpoint is behind the owner's memory");
      assert.equal(Number(stored.last), firstAt + 9);

      for (const path of LIVE_ANALYTICS) {
        const live = await getJson(owner, path);
        assert.equal(live.status, 200, `${path}: ${JSON.stringify(live.body)}`);
        assert.equal(live.body.source, "memory", `${path} on the owner: ${JSON.stringify(live.body)}`);
        for (
          const [engine, name] of [[other, "the other processing instance"], [ingest, "the ingest instance"]] as const
        ) {
          const answer = await getJson(engine, path);
          assert.equal(answer.status, 200, `${path} on ${name}: ${JSON.stringify(answer.body)}`);
          assert.deepEqual(answer.body, live.body, `${path} on ${name} is the owner's live answer`);
          assert.equal(answer.header, ownerId, `${path} on ${name}: answered by the owner`);
        }
        assert.equal(live.body.instance, ownerId, path);
      }
      const realtime = (await getJson(ingest, "/v1/analytics/realtime")).body;
      assert.equal(pageViews(realtime), 15);
      const ranked = (await getJson(other, "/v1/analytics/top-products?window=1h")).body;
      assert.equal(ranked.to, new Date(Math.floor((laterAt + 4) / 60_000) * 60_000 + 60_000).toISOString());

      // The owner dies: until the group gives its partition away, the others answer from the checkpoint.
      await owner.kill("SIGKILL");
      for (const [engine, engineId] of [[other, otherId], [ingest, ingestId]] as const) {
        const { status, body, header } = await getJson(engine, "/v1/analytics/realtime");
        assert.equal(status, 200, JSON.stringify(body));
        assert.equal(body.source, "checkpoint", JSON.stringify(body));
        assert.equal(typeof body.asOf, "string");
        assert.equal(body.instance, engineId);
        assert.equal(header, engineId);
        assert.equal(pageViews(body), 10, "the checkpoint's figures");
        const top = (await getJson(engine, "/v1/analytics/top-products?window=1h")).body;
        assert.equal(top.source, "checkpoint", JSON.stringify(top));
        assert.equal(typeof top.asOf, "string");
        assert.equal(top.instance, engineId);
        assert.equal(top.to, new Date(Math.floor((firstAt + 9) / 60_000) * 60_000 + 60_000).toISOString());
      }
    } catch (error) {
      const tail = (e?: EngineProcess) => e?.logs().split("\n").slice(-20).join("\n") ?? "";
      throw new Error(`${(error as Error).message}\nA logs:\n${tail(a)}\nB logs:\n${tail(b)}\nC logs:\n${tail(c)}`, {
        cause: error,
      });
    } finally {
      await c?.kill("SIGTERM");
      await a?.kill("SIGKILL");
      await b?.kill("SIGKILL");
      await sql.end();
      await db.drop();
    }
  },
});

onlyOn("kafka", {
  name:
    "routing: analytics asked of an instance woken from a stall, whose analytics partition the group gave away, are not its stale memory",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const id = uniqueName("wa");
    const env = groupEnv(id, db.url);
    const topics = topicNames(parseConfig(env));
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    const analyticsOwner = async () => {
      const [row] = await sql<{ owner: string }[]>`
        select owner from partition_checkpoints
         where group_id = ${env.GROUP_ID} and topic = ${topics.analytics} and partition = 0`;
      return row?.owner;
    };
    const checkpointedViews = async () => {
      const [row] = await sql<{ views: string | null }[]>`
        select state #>> '{realtime,last15,events,page_viewed}' as views from actor_states
         where kind = 'global' and key = 'global'`;
      return row ? Number(row.views) : undefined;
    };
    const views = (n: number, at: number) =>
      Array.from({ length: n }, (_, i) => ({
        type: "page_viewed",
        userId: `wa-user-${i}`,
        occurredAt: new Date(at + i).toISOString(),
        properties: { url: "/" },
      }));
    const pageViews = (body: Json) => body.last15?.eventsByType?.page_viewed;
    let engines: EngineProcess[] = [];
    let stopped: EngineProcess | undefined;
    try {
      engines = await Promise.all(
        [0, 1].map(async () => startEngineProcess({ dataDir: await Deno.makeTempDir(), env })),
      );
      const ids = await registeredIds(sql, engines);
      const claims = await settled(
        "both instances own partitions, the analytics one included",
        async () => {
          const rows = await sql<{ topic: string; partition: number; owner: string }[]>`
            select topic, partition, owner from partition_checkpoints where group_id = ${env.GROUP_ID}`;
          const owners = new Map(rows.map((r) => [`${r.topic}:${r.partition}`, r.owner]));
          return rows.length === 2 * PARTITIONS + 1 && new Set(owners.values()).size === 2 ? owners : undefined;
        },
        sameOwners,
      );
      const ownerId = claims.get(`${topics.analytics}:0`)!;
      const [owner, other] = ownerId === ids[0] ? engines : [engines[1], engines[0]];
      const otherId = ownerId === ids[0] ? ids[1] : ids[0];

      await post(other, views(10, Date.now() - 5 * 60_000));
      await eventually(
        "the owner's live analytics count 10 views",
        async () => {
          const { status, body } = await getJson(owner, "/v1/analytics/realtime");
          return status === 200 && body.source === "memory" && pageViews(body) === 10 ? true : undefined;
        },
        30_000,
        200,
      );
      await eventually(
        "the owner checkpointed the 10 views",
        async () => await checkpointedViews() === 10 ? true : undefined,
        30_000,
        200,
      );

      // The owner stalls past the session timeout: the other instance claims the analytics partition, then dies (its
      // registry row still fresh, nothing listening at its address).
      Deno.kill(owner.pid, "SIGSTOP");
      stopped = owner;
      await eventually(
        "the other instance claimed the analytics partition",
        async () => await analyticsOwner() === otherId ? true : undefined,
        60_000,
        200,
      );
      await other.kill("SIGKILL");

      // Asked while stopped, answered first thing on waking, before the woken instance hears of the rebalance: the
      // owner PostgreSQL names cannot be reached, so the answer is the last checkpoint's (`asOf`), as on any instance
      // but the owner, not the memory of a partition the woken instance no longer owns.
      const first = getJson(owner, "/v1/analytics/realtime");
      Deno.kill(owner.pid, "SIGCONT");
      stopped = undefined;
      const { status, body } = await first;
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.source, "checkpoint", `answered from the checkpoint: ${JSON.stringify(body)}`);
      assert.equal(typeof body.asOf, "string");
      assert.equal(pageViews(body), 10, JSON.stringify(body));
      assert.equal(body.instance, ownerId);
    } catch (error) {
      throw withLogs(error, engines[0], engines[1]);
    } finally {
      if (stopped) Deno.kill(stopped.pid, "SIGCONT");
      for (const engine of engines) await engine.kill("SIGKILL");
      await sql.end();
      await db.drop();
    }
  },
});

onlyOn("kafka", {
  name:
    "routing: a client's query carrying x-engine-forwarded is routed to the owner and answered in the documented view",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const id = uniqueName("sf");
    const env = groupEnv(id, db.url);
    const topics = topicNames(parseConfig(env));
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    let a: EngineProcess | undefined;
    let b: EngineProcess | undefined;
    try {
      [a, b] = await Promise.all(
        [0, 1].map(async () => startEngineProcess({ dataDir: await Deno.makeTempDir(), env })),
      );
      const ids = await registeredIds(sql, [a, b]);
      const claims = await settled(
        "both instances own partitions, the analytics one included",
        async () => {
          const rows = await sql<{ topic: string; partition: number; owner: string }[]>`
            select topic, partition, owner from partition_checkpoints where group_id = ${env.GROUP_ID}`;
          const owners = new Map(rows.map((r) => [`${r.topic}:${r.partition}`, r.owner]));
          return rows.length === 2 * PARTITIONS + 1 && new Set(owners.values()).size === 2 ? owners : undefined;
        },
        sameOwners,
      );
      // A user B owns, asked of A: A must forward it.
      const userId = Array.from({ length: 50 }, (_, i) => `sf-user-${i}`)
        .find((u) => claims.get(`${topics.events}:${partitionForKey(u, PARTITIONS)}`) === ids[1])!;
      await post(a, [{ type: "product_viewed", userId, properties: { productId: "p1" } }]);
      const direct = await eventually(
        "B holds the view in memory, and A forwards a client's query to it",
        async () => {
          const { status, body } = await getUser(a!, userId);
          return status === 200 && body.source === "memory" && body.instance === ids[1] && body.productViews === 1
            ? body
            : undefined;
        },
        30_000,
        100,
      );
      // A client sending the header itself (any value but the group's secret) is a client: its query is routed to the
      // owner and answered in the view. It used to be answered by A from its checkpoint, in the stored form.
      for (const value of ["1", "true", ""]) {
        const response: Response = await fetch(`${a!.url}/v1/users/${encodeURIComponent(userId)}`, {
          headers: { "x-engine-forwarded": value },
        });
        const body: Json = await response.json();
        assert.equal(response.status, 200, JSON.stringify(body));
        assert.equal(body.instance, ids[1], `header ${JSON.stringify(value)}: answered by the owner`);
        assert.equal(body.source, "memory", JSON.stringify(body));
        assert.equal("seenEventHashes" in body, false, `the view, not the stored state: ${JSON.stringify(body)}`);
        assert.deepEqual(body, direct, `header ${JSON.stringify(value)}: the answer a client gets without it`);
      }
      // Analytics alike: asked of the instance not owning the analytics partition, answered by its owner.
      const ownerId = claims.get(`${topics.analytics}:0`)!;
      const other = ownerId === ids[0] ? b : a;
      const analytics = await fetch(`${other.url}/v1/analytics/realtime`, { headers: { "x-engine-forwarded": "1" } });
      const figures: Json = await analytics.json();
      assert.equal(analytics.status, 200, JSON.stringify(figures));
      assert.equal(
        analytics.headers.get("x-engine-instance"),
        ownerId,
        `the owner answers: ${JSON.stringify(figures)}`,
      );
      assert.equal(figures.source, "memory", JSON.stringify(figures));
    } catch (error) {
      throw withLogs(error, a, b);
    } finally {
      await a?.kill("SIGKILL");
      await b?.kill("SIGKILL");
      await sql.end();
      await db.drop();
    }
  },
});

onlyOn("kafka", {
  name:
    "routing: a query forwarded to an instance that lost the key's partition while stalled is not answered from its stale memory",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withStalledOwner("fs", async ({ a, b, ids, userId, env, sql, view, wake }) => {
      await post(a, [view(userId), view(userId)]);
      await eventually(
        "A checkpointed the three views",
        async () => {
          const [row] = await sql<{ views: string | null }[]>`
            select state ->> 'productViews' as views from actor_states where kind = 'user' and key = ${userId}`;
          return row && Number(row.views) === 3 ? true : undefined;
        },
        30_000,
        100,
      );

      // A query forwarded to B by an instance whose owner cache (OWNER_CACHE_MS) still names B, carrying the group's
      // secret as any instance's forward does, read first thing on waking: B no longer owns the partition, so its
      // memory (one view) is no answer; it used to be, as `source: memory`, since a forwarded query skipped the check.
      const [{ secret }] = await sql<{ secret: string }[]>`
        select secret from forward_secrets where group_id = ${env.GROUP_ID}`;
      const forwarded = fetch(`${b.url}/v1/users/${encodeURIComponent(userId)}`, {
        headers: { "x-engine-forwarded": secret },
      });
      wake();
      const response = await forwarded;
      const body: Json = await response.json();
      assert.equal(response.status, 200, JSON.stringify(body));
      assert.equal(body.source, "checkpoint", `not B's stale memory: ${JSON.stringify(body)}`);
      assert.equal(typeof body.asOf, "string", JSON.stringify(body));
      assert.equal(body.productViews, 3, `the checkpoint A wrote: ${JSON.stringify(body)}`);
      assert.equal(body.instance, ids.b);
    }),
});
