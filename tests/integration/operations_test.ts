/** Readiness and metrics of a running engine: metrics on each log, readiness with PostgreSQL cut (Kafka only). */
import assert from "node:assert/strict";
import { startEngine } from "../../engine/engine.ts";
import { TOPIC_LEADERS_TIMEOUT_MS, waitForLeaders } from "../../engine/kafka_admin.ts";
import { Kafka, logLevel, type PartitionAssigner, PartitionAssigners } from "kafkajs";
import postgres from "postgres";
import { silentLogger } from "../../engine/logger.ts";
import { READINESS_CHECK_TIMEOUT_MS } from "../../http/operations_routes.ts";
import { forEachLog, onlyOn } from "../helpers/modes.ts";
import { eventually, freshDatabase, services, testConfig, uniqueName, within } from "../helpers/services.ts";
import { startTcpProxy } from "../helpers/tcp_proxy.ts";

/** The engine's /readyz answer: its status and its body. */
async function readiness(
  engineUrl: string,
): Promise<{ status: number; body: { status: string; checks: Record<string, string> } }> {
  const response = await fetch(`${engineUrl}/readyz`);
  return { status: response.status, body: await response.json() };
}

/** Posts a page view of `userId` (taken: 202) and waits until /metrics counts a failed checkpoint of the events. */
async function viewUntilCheckpointFails(engineUrl: string, userId: string): Promise<void> {
  const posted = await fetch(`${engineUrl}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ type: "page_viewed", userId, properties: { url: "/" } }),
  });
  assert.equal(posted.status, 202);
  await posted.body?.cancel();
  await eventually("a failed checkpoint counted", async () => {
    const body = await (await fetch(`${engineUrl}/metrics`)).text();
    return /engine_checkpoint_failures_total\{topic="[^"]*events"\} [1-9]/.test(body) ? true : undefined;
  });
}

onlyOn("kafka", {
  name:
    "/readyz is 503 naming the database while PostgreSQL is unreachable, and 200 again once it returns; the lag rises meanwhile",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const real = new URL(db.url);
    const proxy = startTcpProxy({ hostname: real.hostname, port: Number(real.port) });
    const viaProxy = new URL(db.url);
    viaProxy.port = String(proxy.port);
    const engine = await startEngine(testConfig(viaProxy.toString()), silentLogger);
    const ready = () => readiness(engine.url);
    try {
      assert.deepEqual(await ready(), {
        status: 200,
        body: { status: "ready", checks: { database: "ok", log: "ok", consumer: "ok" } },
      });
      // A user in memory before the outage (activating one needs the database).
      const first = await fetch(`${engine.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ type: "page_viewed", userId: "outage-user", properties: { url: "/" } }),
      });
      assert.equal(first.status, 202);
      await first.body?.cancel();
      await eventually("the user in memory", async () => {
        const response = await fetch(`${engine.url}/v1/users/outage-user`);
        const body = response.status === 200 ? await response.json() : (await response.body?.cancel(), undefined);
        return body?.source === "memory" ? true : undefined;
      });
      proxy.cut();
      const down = await eventually("503 from /readyz", async () => {
        const r = await ready();
        return r.status === 503 ? r : undefined;
      });
      assert.notEqual(down.body.checks.database, "ok");
      assert.equal(down.body.checks.log, "ok");
      // A user already in memory handles an event while the database is out: its periodic checkpoints fail, counted.
      await viewUntilCheckpointFails(engine.url, "outage-user");
      // Events of a user not in memory cannot be handled (its state is loaded): the consumer lag rises with each one.
      const eventsLag = async () => {
        const body = await (await fetch(`${engine.url}/metrics`)).text();
        return [...body.matchAll(/^engine_consumer_lag_records\{topic="[^"]*events",partition="\d+"\} (\d+)$/gm)]
          .reduce((sum, m) => sum + Number(m[1]), 0);
      };
      for (let n = 1; n <= 3; n++) {
        const lagging = await fetch(`${engine.url}/v1/events`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ type: "page_viewed", userId: "lagging-user", properties: { url: `/${n}` } }),
        });
        assert.equal(lagging.status, 202);
        await lagging.body?.cancel();
        await eventually(`a consumer lag of ${n}`, async () => (await eventsLag()) >= n ? true : undefined);
      }
      proxy.restore();
      await eventually("200 from /readyz", async () => ((await ready()).status === 200 ? true : undefined), 30_000);
      await eventually("the lag worked off", async () => (await eventsLag()) === 0 ? true : undefined, 30_000);
    } finally {
      proxy.restore();
      await engine.stop();
      proxy.close();
      await db.drop();
    }
  },
});

onlyOn("kafka", {
  name:
    "/readyz while PostgreSQL does not answer: each probe a 503 naming the database within the deadline, and one query for them all",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const real = new URL(db.url);
    // The readiness query's first parameter, as postgres.js binds it (once per execution, prepared or not): counts the
    // readiness queries the server runs.
    const marker = '{"partition_checkpoints","alerts","actor_states"';
    let readinessQueries = 0;
    const proxy = startTcpProxy({ hostname: real.hostname, port: Number(real.port) }, (chunk) => {
      readinessQueries += new TextDecoder().decode(chunk).split(marker).length - 1;
      return { action: "forward" };
    });
    const viaProxy = new URL(db.url);
    viaProxy.port = String(proxy.port);
    const engine = await startEngine(testConfig(viaProxy.toString()), silentLogger);
    let probes = 0;
    const ready = async () => {
      probes++;
      const response = await fetch(`${engine.url}/readyz`);
      return { status: response.status, body: await response.json() };
    };
    try {
      assert.equal((await ready()).status, 200);
      assert.ok(readinessQueries >= 1, "the readiness query is seen on its way to the server");
      // Every answer of PostgreSQL held back from now on: its queries neither succeed nor fail.
      proxy.freeze();
      const [queriesBefore, probesBefore] = [readinessQueries, probes];
      const frozenProbes = 4;
      for (let n = 1; n <= frozenProbes; n++) {
        const answer = await within(READINESS_CHECK_TIMEOUT_MS + 3_000, `probe ${n}`, ready());
        assert.equal(answer.status, 503, `probe ${n}: ${JSON.stringify(answer.body)}`);
        // The run a probe joins may also end first in the pool's connect timeout (5 s), when its query waited for a new
        // connection (the others held by checkpoints, frozen too): that failure is then the database's reason.
        assert.match(
          answer.body.checks.database,
          /^(no answer within \d+ ms|write CONNECT_TIMEOUT \S+)$/,
          `probe ${n}: ${JSON.stringify(answer.body)}`,
        );
        assert.equal(answer.body.checks.log, "ok");
      }
      proxy.thaw();
      await eventually("200 from /readyz", async () => ((await ready()).status === 200 ? true : undefined), 30_000);
      // Each probe used to queue a query of its own, every one of them waiting on the frozen server (on a pool whose
      // connections all waited, in front of the checkpoints) and run once it answered: a load balancer's probes piled
      // up. Now the frozen probes share one, and each later probe runs at most one.
      const laterProbes = probes - probesBefore - frozenProbes;
      assert.ok(
        readinessQueries - queriesBefore <= 1 + laterProbes,
        `${readinessQueries - queriesBefore} readiness queries run for ${frozenProbes} probes while frozen and ` +
          `${laterProbes} after`,
      );
    } finally {
      proxy.thaw();
      await engine.stop();
      proxy.close();
      await db.drop();
    }
  },
});

forEachLog("metrics count what a scripted workload did", { sanitizeOps: true, sanitizeResources: true }, async (d) => {
  const engine = await startEngine(d.config, silentLogger);
  try {
    const at = new Date(Date.now() - 60_000).toISOString();
    const events = [
      ...Array.from(
        { length: 7 },
        (_, i) => ({ type: "product_viewed", userId: `m${i % 3}`, occurredAt: at, properties: { productId: "x" } }),
      ),
      ...Array.from(
        { length: 4 },
        (_, i) => ({ type: "page_viewed", userId: `m${i}`, occurredAt: at, properties: { url: "/" } }),
      ),
    ];
    const response = await fetch(`${engine.url}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(events),
    });
    assert.equal(response.status, 202);
    await response.body?.cancel();
    const invalid = await fetch(`${engine.url}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify([{ type: "page_viewed", userId: "m1", properties: {} }, { type: "nope" }]),
    });
    assert.equal(invalid.status, 400);
    await invalid.body?.cancel();
    // Outputs are counted once checkpointed: the 7 views' product facts, under their topic's name and their kind.
    const productFacts = new RegExp(
      `engine_outputs_total\\{topic="${d.config.TOPIC_PREFIX.replaceAll(".", "\\.")}product-events",` +
        `subtype="product_viewed"\\} 7\\b`,
    );
    const text = await eventually("processed and output counts", async () => {
      const body = await (await fetch(`${engine.url}/metrics`)).text();
      return /engine_events_processed_total\{kind="user",type="page_viewed"\} 4/.test(body) && productFacts.test(body)
        ? body
        : undefined;
    });
    assert.match(text, /engine_events_processed_total\{kind="user",type="product_viewed"\} 7/);
    assert.match(text, /engine_events_ingested_total\{type="product_viewed",outcome="accepted"\} 7/);
    assert.match(text, /engine_events_ingested_total\{type="\(batch\)",outcome="rejected"\} 2/);
    assert.match(
      text,
      /engine_http_requests_total\{route="\/v1\/events",method="POST",status="202",source="client"\} 1/,
    );
    assert.match(
      text,
      /engine_http_requests_total\{route="\/v1\/events",method="POST",status="400",source="client"\} 1/,
    );
    assert.match(text, /engine_actors_total\{kind="user",change="activated"\} [1-9]/);
    assert.match(text, /engine_process_cpu_seconds_total/, "runtime default metrics");
  } finally {
    await engine.stop();
  }
});

onlyOn("kafka", {
  name: "/readyz is 503 naming the consumer once it stopped for good (a group it cannot join), not ready for ever",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const config = testConfig(db.url);
    // Another application already consumes with this group id under a partition assignor of its own:
    // the broker refuses the engine's join (INCONSISTENT_GROUP_PROTOCOL), an error kafkajs does not retry.
    const kafka = new Kafka({
      clientId: "foreign-app",
      brokers: services().kafkaBrokers.split(","),
      logLevel: logLevel.NOTHING,
    });
    const foreignAssigner: PartitionAssigner = (options) => {
      const roundRobin = PartitionAssigners.roundRobin(options);
      return {
        ...roundRobin,
        name: "ForeignAssigner",
        protocol: (s) => ({ ...roundRobin.protocol(s), name: "ForeignAssigner" }),
      };
    };
    const topic = `${config.TOPIC_PREFIX}foreign`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: false });
    await waitForLeaders(
      (topics) => admin.fetchTopicMetadata({ topics: [...topics] }),
      [topic],
      TOPIC_LEADERS_TIMEOUT_MS,
    );
    await admin.disconnect();
    const foreign = kafka.consumer({ groupId: config.GROUP_ID, partitionAssigners: [foreignAssigner] });
    const joined = Promise.withResolvers<void>();
    foreign.on(foreign.events.GROUP_JOIN, () => joined.resolve());
    await foreign.connect();
    await foreign.subscribe({ topics: [topic] });
    await foreign.run({ eachMessage: async () => {} });
    await joined.promise;
    const engine = await startEngine(config, silentLogger);
    try {
      const down = await eventually("503 from /readyz", async () => {
        const response = await fetch(`${engine.url}/readyz`);
        const body = await response.json();
        return response.status === 503 ? body : undefined;
      });
      assert.equal(down.checks.database, "ok");
      assert.equal(down.checks.log, "ok");
      assert.match(down.checks.consumer, /stopped.*incompatible/i);
    } finally {
      await engine.stop();
      await foreign.disconnect();
      await db.drop();
    }
  },
});

onlyOn("kafka", {
  name:
    "/readyz is 503 naming the database while PostgreSQL takes no writes (default_transaction_read_only), and 200 again once it does",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const name = new URL(db.url).pathname.slice(1);
    const admin = postgres(services().databaseUrl, { max: 1, onnotice: () => {} });
    // The setting applies to new sessions: the engine's are ended, and its pool connects again (a failover to a
    // standby, or an operator turning writes off, looks so to the engine).
    const reconnectEngine = () =>
      admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${name} and pid <> pg_backend_pid()`;
    const engine = await startEngine(testConfig(db.url), silentLogger);
    const ready = () => readiness(engine.url);
    try {
      assert.equal((await ready()).status, 200);
      await admin.unsafe(`alter database ${name} set default_transaction_read_only = on`);
      await reconnectEngine();
      // The server answers every read, but no checkpoint commits: the engine is of no use until writes come back.
      await viewUntilCheckpointFails(engine.url, "read-only-user");
      const down = await ready();
      assert.equal(down.status, 503, `/readyz while the database is read-only: ${JSON.stringify(down.body)}`);
      assert.match(down.body.checks.database, /read-only.*default_transaction_read_only/);
      assert.equal(down.body.checks.log, "ok");
      await admin.unsafe(`alter database ${name} reset default_transaction_read_only`);
      await reconnectEngine();
      await eventually("200 from /readyz", async () => ((await ready()).status === 200 ? true : undefined), 30_000);
    } finally {
      await engine.stop();
      await admin.unsafe(`alter database ${name} reset default_transaction_read_only`).catch(() => {});
      await admin.end();
      await db.drop();
    }
  },
});

/** What a readiness scenario does to the database under a running engine whose role owns it, and how it undoes it. */
interface RoleChange {
  /** The test's name: what /readyz is 503 naming, while what. */
  readonly name: string;
  /** Takes something a checkpoint needs away from `role` (`inDatabase`: the superuser in the engine's database). */
  readonly take: (inDatabase: postgres.Sql, role: string) => Promise<void>;
  /** What /readyz's database check says meanwhile. */
  readonly reason: RegExp;
  /** Gives it back. */
  readonly giveBack: (inDatabase: postgres.Sql, role: string) => Promise<void>;
}

/**
 * A running engine whose DATABASE_URL role owns its database and schema; `change` takes something a checkpoint needs
 * away from it: a posted event's checkpoint fails, /readyz is 503 with `change.reason`, then 200 once given back. Its
 * `select 1` answered ready meanwhile.
 */
function readinessWhileRoleLacks(change: RoleChange): void {
  onlyOn("kafka", {
    name: change.name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const db = await freshDatabase();
      const name = new URL(db.url).pathname.slice(1);
      const role = uniqueName("owner");
      const superuser = postgres(services().databaseUrl, { max: 1, onnotice: () => {} });
      await superuser.unsafe(`create role ${role} login`);
      await superuser.unsafe(`alter database ${name} owner to ${role}`);
      const inDatabase = postgres(db.url, { max: 1, onnotice: () => {} });
      await inDatabase.unsafe(`alter schema public owner to ${role}`);
      const url = new URL(db.url);
      url.username = role;
      const engine = await startEngine(testConfig(url.toString()), silentLogger);
      const ready = () => readiness(engine.url);
      try {
        assert.equal((await ready()).status, 200);
        await change.take(inDatabase, role);
        await viewUntilCheckpointFails(engine.url, "no-rights-user");
        const down = await ready();
        assert.equal(down.status, 503, `/readyz meanwhile: ${JSON.stringify(down.body)}`);
        assert.match(down.body.checks.database, change.reason);
        await change.giveBack(inDatabase, role);
        assert.equal((await ready()).status, 200);
      } finally {
        await engine.stop();
        await inDatabase.end();
        await db.drop();
        await superuser.unsafe(`drop role if exists ${role}`);
        await superuser.end();
      }
    },
  });
}

readinessWhileRoleLacks({
  name: "/readyz is 503 naming the database while DATABASE_URL's role may not write the checkpoint's tables",
  // Another role takes the table over (a DBA's change of owners): the engine's role may no longer write it.
  take: (db) => db.unsafe(`alter table partition_checkpoints owner to postgres`).then(() => {}),
  reason: /may not write.*partition_checkpoints/,
  giveBack: (db, role) => db.unsafe(`alter table partition_checkpoints owner to ${role}`).then(() => {}),
});

// A checkpoint upserts its states, recommendations and minutes (ON CONFLICT DO UPDATE: UPDATE) and deletes and updates
// rows it selects by key (SELECT): a role lacking either failed every checkpoint while /readyz said ready.
for (const [table, privilege] of [["actor_states", "UPDATE"], ["partition_checkpoints", "SELECT"]] as const) {
  readinessWhileRoleLacks({
    name: `/readyz is 503 naming ${table} (${privilege}) while DATABASE_URL's role may not ${privilege} it`,
    take: async (db, role) => {
      await db.unsafe(`alter table ${table} owner to ${role}`);
      await db.unsafe(`revoke ${privilege} on ${table} from ${role}`);
    },
    reason: new RegExp(`may not write.*${table} \\(${privilege}\\)`),
    giveBack: (db, role) => db.unsafe(`grant ${privilege} on ${table} to ${role}`).then(() => {}),
  });
}

readinessWhileRoleLacks({
  name: "/readyz is 503 naming the tables while DATABASE_URL's role may not use the schema that holds them",
  // The schema goes to another owner and is no one else's to use (a DBA's hardening): its tables still exist, but are
  // out of the role's search_path, and to_regclass finds none of them, as before their migrations.
  take: async (db) => {
    await db.unsafe(`alter schema public owner to postgres`);
    await db.unsafe(`revoke all on schema public from public`);
  },
  reason: /cannot reach .*partition_checkpoints/,
  giveBack: (db, role) => db.unsafe(`alter schema public owner to ${role}`).then(() => {}),
});
