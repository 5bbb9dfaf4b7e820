/**
 * Assembles a running engine from a Config: backend (log + database) and migrations, the actor
 * runtime, and the HTTP server. `stop()` shuts down in the reverse order.
 */
import { createDomainLogics } from "../actors/domain.ts";
import { operationsRoutes, type ReadinessChecks } from "../http/operations_routes.ts";
import { queryRoutes, trendSettings } from "../http/query_routes.ts";
import { buildRoutes } from "../http/routes.ts";
import { createHandler } from "../http/server.ts";
import { migrate } from "../sql/migrations.ts";
import { otherStateOwners } from "../sql/checkpoints.ts";
import type { AnyActorLogic } from "./actor.ts";
import { guardStrayNetworkErrors } from "./stray_errors.ts";
import { advertisedUrl } from "./advertised_url.ts";
import { type Backend, openBackend } from "./backend.ts";
import { SqlCheckpointStore } from "./checkpoint.ts";
import type { Sql } from "./database.ts";
import { ConfigError } from "./errors.ts";
import { type Config, consumedTopics, topicNames } from "./config.ts";
import { InstanceRegistry } from "./instance_registry.ts";
import type { Instrumentation } from "./instrumentation.ts";
import type { Logger } from "./logger.ts";
import { Metrics } from "./metrics.ts";
import { ActorRuntime } from "./runtime.ts";
import { createStateReader, routedKinds } from "./state_reader.ts";

const MS_PER_DAY = 86_400_000;
/** How long a stop waits for requests in progress before it goes on to leave the group and checkpoint. */
const HTTP_DRAIN_MS = 3_000;

/** A started engine. */
export interface RunningEngine {
  /** Base URL of the HTTP server. */
  readonly url: string;
  /** This instance's id, recorded as the owner of its partitions. */
  readonly instanceId: string;
  readonly runtime: ActorRuntime;
  /** Prometheus metrics of this instance. */
  readonly metrics: Metrics;
  /** "embedded" or "production". */
  readonly mode: Config["mode"];
  /** Where the log and the state live, for the start-up banner. */
  readonly backend: string;
  /** The engine's own database and log clients, for code in the same process (tests, benchmarks). */
  readonly clients: Pick<Backend, "sql" | "producer" | "createConsumer">;
  /** Graceful shutdown: stop HTTP, leave the group, final checkpoints, close connections. */
  stop(): Promise<void>;
}

/** Optional collaborators of an engine (benchmarks and tests observe it through these). */
export interface EngineOptions {
  /** Receives every instrumentation event, in addition to the engine's own metrics. */
  readonly instrumentation?: Instrumentation;
}

/** Starts the engine described by `config`. */
export async function startEngine(config: Config, logger: Logger, options: EngineOptions = {}): Promise<RunningEngine> {
  const instanceId = `${Deno.hostname()}-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const log = logger.child({ instance: instanceId });
  const topics = topicNames(config);

  const metrics = new Metrics();
  const extra = options.instrumentation;
  const instrumentation: Instrumentation = extra
    ? { emit: (event) => (metrics.emit(event), extra.emit(event)) }
    : metrics;
  const backend = await openBackend(config, topics, log, { instrumentation });
  const applied = await migrate(backend.sql);
  log.info("database ready", { migrationsApplied: applied });
  if (config.ROLE === "all") await refuseAnotherGroupsState(backend.sql, config.GROUP_ID, consumedTopics(topics));

  let stopping = false;
  let stopped: Promise<void> | undefined;
  const store = new SqlCheckpointStore(backend.sql);
  const domain = createDomainLogics(config);
  // Records are checked against their key's partition, and facts are published to product-events and
  // analytics in bundles per partition (engine/fact_bundle.ts); an ingest-only instance owns no
  // partition, so it needs no counts.
  const partitionCounts = config.ROLE !== "all" ? undefined : new Map(
    await Promise.all(
      consumedTopics(topics).map(async (topic) => [topic, await backend.admin.partitionCount(topic)] as const),
    ),
  );
  const bundledTopics = partitionCounts &&
    new Map([topics.productEvents, topics.analytics].map((topic) => [topic, partitionCounts.get(topic)!] as const));
  const runtime = new ActorRuntime({
    store,
    producer: backend.producer,
    consumer: backend.consumer,
    topics,
    groupId: config.GROUP_ID,
    owner: instanceId,
    logger: log,
    logics: new Map<string, AnyActorLogic>([
      [topics.events, domain.user],
      [topics.productEvents, domain.product],
      [topics.analytics, domain.global],
    ]),
    checkpointIntervalMs: config.CHECKPOINT_INTERVAL_MS,
    checkpointMaxMessages: config.CHECKPOINT_MAX_MESSAGES,
    maxActors: config.MAX_ACTORS,
    actorIdleMs: config.ACTOR_IDLE_MS,
    actorPackMs: config.ACTOR_PACK_MS,
    bundledTopics,
    partitionCounts,
    stateTtlMs: config.STATE_TTL_DAYS * MS_PER_DAY,
    alertRetentionMs: config.ALERT_RETENTION_DAYS * MS_PER_DAY,
    idleClockMs: config.CLOCK_IDLE_MS,
    instrumentation,
  });
  // An ingest-only instance never joins the consumer group: it owns no partition, so every state
  // query it receives is forwarded to the owner (or answered from the checkpoint).
  if (config.ROLE === "all") {
    runtime.start();
    await backend.consumer.start(consumedTopics(topics), runtime);
  }

  const registry = new InstanceRegistry(backend.sql, config.GROUP_ID, instanceId, log);
  const reader = createStateReader(runtime, store, { registry, kinds: await routedKinds(topics, backend.admin) });
  const checks: ReadinessChecks = {
    database: async () => (await backend.sql`select 1`, { ok: true }),
    log: async () => (await backend.admin.partitionCount(topics.events), { ok: true }),
    consumer: () => Promise.resolve(stopping ? { ok: false, reason: "shutting down" } : { ok: true }),
  };
  const routes = buildRoutes({
    producer: backend.producer,
    topics,
    reader,
    instrumentation,
    extra: [
      ...queryRoutes({
        reader,
        sql: backend.sql,
        now: Date.now,
        trending: trendSettings(config),
      }),
      ...operationsRoutes({ checks, metrics: () => metrics.render() }),
    ],
    ingest: {
      rules: { maxFutureMs: config.MAX_EVENT_FUTURE_MS },
      maxEvents: config.MAX_BATCH_EVENTS,
      maxBodyBytes: config.MAX_BODY_BYTES,
    },
    now: Date.now,
  });
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve(
    { port: config.PORT, hostname: config.HOST, onListen: (addr) => listening.resolve(addr) },
    createHandler(routes, log, instrumentation),
  );
  const addr = await listening.promise;
  const host = addr.hostname === "0.0.0.0" ? "127.0.0.1" : addr.hostname === "::" ? "[::1]" : addr.hostname;
  const url = `http://${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${addr.port}`;
  const advertised = advertisedUrl({ configured: config.ADVERTISED_URL, bound: addr });
  await registry.register(advertised);
  log.info("engine started", { mode: config.mode, role: config.ROLE, url, advertised, backend: backend.describe });
  // Installed once started (a failed start leaves nothing behind), removed when the stop ends, however it ends.
  const unguard = guardStrayNetworkErrors(log);

  return {
    url,
    instanceId,
    runtime,
    metrics,
    mode: config.mode,
    backend: backend.describe,
    clients: {
      sql: backend.sql,
      producer: backend.producer,
      createConsumer: (groupId) => backend.createConsumer(groupId),
    },
    stop() {
      // Once: a second signal must not close the backend under the first stop's final checkpoints.
      stopped ??= (async () => {
        try {
          stopping = true;
          log.info("engine stopping");
          await registry.unregister();
          // A request still running (a client stalled mid-upload) must not hold the final checkpoints.
          let timer: ReturnType<typeof setTimeout> | undefined;
          const drained = await Promise.race([
            server.shutdown().then(() => true),
            new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), HTTP_DRAIN_MS)),
          ]);
          clearTimeout(timer);
          if (!drained) {
            log.warn("requests still running after the HTTP drain time; stopping anyway", { HTTP_DRAIN_MS });
          }
          await runtime.shutdown();
          await backend.close();
          log.info("engine stopped");
        } finally {
          unguard();
        }
      })();
      return stopped;
    },
  };
}

/**
 * Refuses to consume with a group that has no checkpoints where another group has some: actor states
 * carry no group, so the new group would replay the log from its start into the states already built.
 */
async function refuseAnotherGroupsState(sql: Sql, groupId: string, topics: readonly string[]): Promise<void> {
  const others = await otherStateOwners(sql, groupId, topics);
  if (others.length === 0) return;
  throw new ConfigError(
    `Cannot start with GROUP_ID="${groupId}": the database holds the state built by group ${
      others.map((g) => `"${g}"`).join(", ")
    } on these topics, and a new group would fold the whole log into it again; use that GROUP_ID, or a new database (and TOPIC_PREFIX)`,
  );
}
