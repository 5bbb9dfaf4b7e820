/**
 * Assembles a running engine from a Config: the HTTP server (bound first, answering 503 until the
 * engine is ready), backend (log + database) and migrations, the actor runtime. `stop()` shuts
 * down, and a failed start-up closes what it opened, in the reverse order.
 */
import { createDomainLogics, logicsByTopic } from "../actors/domain.ts";
import { type CheckResult, operationsRoutes, type ReadinessChecks } from "../http/operations_routes.ts";
import { queryRoutes, trendSettings } from "../http/query_routes.ts";
import { buildRoutes, startingRoutes } from "../http/routes.ts";
import { createHandler } from "../http/server.ts";
import { migrate } from "../sql/migrations.ts";
import { claimedTopics } from "../sql/checkpoints.ts";
import { claimStateOwner, otherOwners } from "../sql/state_owner.ts";
import { guardStrayNetworkErrors } from "./stray_errors.ts";
import { advertisedUrl } from "./advertised_url.ts";
import { type Backend, openBackend } from "./backend.ts";
import { SqlCheckpointStore } from "./checkpoint.ts";
import type { Sql } from "./database.ts";
import { databaseReadiness } from "./database_readiness.ts";
import { ConfigError, EngineFailedError } from "./errors.ts";
import { type Config, consumedTopics, topicNames, type Topics } from "./config.ts";
import { StartAbortedError } from "./errors.ts";
import { listenHttp } from "./http_listener.ts";
import { warnOfIgnoredPartitions } from "./partition_count_warning.ts";
import { loadForwardSecret } from "./forward_secret.ts";
import { InstanceRegistry } from "./instance_registry.ts";
import type { Instrumentation } from "./instrumentation.ts";
import type { Logger } from "./logger.ts";
import { Metrics } from "./metrics.ts";
import { ActorRuntime } from "./runtime.ts";
import { BROKER_MIN_SESSION_TIMEOUT_MS, isSessionTimeoutRefusal, MAX_SESSION_TIMEOUT_MS } from "./kafka_session.ts";
import { createStateReader, ownerTrustedMs, routedKinds } from "./state_reader.ts";

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
  /**
   * Settles with an EngineFailedError once the engine can no longer work (its consumer stopped for good): it must then
   * be stopped, releasing what it holds, and started again (main.ts exits with code 1). Never settles otherwise.
   */
  readonly failed: Promise<EngineFailedError>;
  /** Graceful shutdown: stop HTTP, leave the group, final checkpoints, close connections. */
  stop(): Promise<void>;
}

/** Optional collaborators of an engine (benchmarks and tests observe it through these). */
export interface EngineOptions {
  /** Receives every instrumentation event, in addition to the engine's own metrics. */
  readonly instrumentation?: Instrumentation;
  /**
   * Stops the start-up (main.ts aborts it on SIGINT/SIGTERM): at the end of the step in progress, the
   * engine closes what it opened (leaving the consumer group if it joined) and rejects with a
   * StartAbortedError. Aborted after the engine started, it has no effect (call `stop`).
   */
  readonly signal?: AbortSignal;
}

const READY: CheckResult = { ok: true };

/**
 * Starts the engine described by `config`. The HTTP server is bound first (a HOST or PORT it cannot
 * have is a ConfigError, before anything else is opened); until the engine is ready it answers
 * /healthz, /readyz (503) and /metrics, and 503 to the rest. If a later step fails (or `options.signal`
 * is aborted), everything opened so far is closed in the reverse order before the error is thrown:
 * the instance's registry row, the consumer group (left) and the runtime's timers, the backend (and
 * with it the embedded DATA_DIR lock), and the HTTP server.
 */
export async function startEngine(config: Config, logger: Logger, options: EngineOptions = {}): Promise<RunningEngine> {
  const { signal } = options;
  const aborted = () => new StartAbortedError("start-up stopped before it completed", { cause: signal?.reason });
  /** Called between the steps of the start-up: an abort takes effect there, after the step in progress. */
  const stillWanted = () => {
    if (signal?.aborted) throw aborted();
  };
  stillWanted();
  const instanceId = `${Deno.hostname()}-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const log = logger.child({ instance: instanceId });
  const topics = topicNames(config);

  const metrics = new Metrics();
  const extra = options.instrumentation;
  const instrumentation: Instrumentation = extra
    ? { emit: (event) => (metrics.emit(event), extra.emit(event)) }
    : metrics;

  let backend: Backend | undefined;
  let phase: "starting" | "running" | "stopping" = "starting";
  const notOpen: CheckResult = { ok: false, reason: "not open yet (starting up)" };
  const checks: ReadinessChecks = {
    database: () => backend ? databaseReadiness(backend.sql) : Promise.resolve(notOpen),
    log: async () => backend ? (await backend.admin.partitionCount(topics.events), READY) : notOpen,
    consumer: () => {
      if (phase !== "running") {
        return Promise.resolve({ ok: false, reason: phase === "starting" ? "starting up" : "shutting down" });
      }
      // A consumer kafkajs gave up on consumes nothing again: the instance is no use until restarted.
      const failure = backend?.consumer.failure?.();
      return Promise.resolve(failure ? { ok: false, reason: `stopped consuming: ${failure.message}` } : READY);
    },
  };
  const operations = operationsRoutes({ checks, metrics: () => metrics.render() });
  let handle = createHandler(startingRoutes(operations), log, instrumentation);
  const server = listenHttp(config.HOST, config.PORT, (request) => handle(request));
  // What start-up has opened, each with how to close it; closed in the reverse order if a later step fails.
  const opened: { readonly what: string; readonly close: () => Promise<unknown> }[] = [
    { what: "HTTP server", close: () => drain(server, log) },
  ];
  try {
    // Opening the backend waits for PostgreSQL and Kafka (kafkajs retries a broker for half a minute), so an abort
    // does not wait for it: whatever it opens after that is closed at once.
    const opening = await abandonedOnAbort(
      openBackend(config, topics, log, { instrumentation, logFields: { instance: instanceId } }),
      signal,
      aborted,
    );
    backend = opening;
    opened.push({ what: "backend", close: () => opening.close() });
    stillWanted();
    const sql = backend.sql;
    // A signal cancels a wait for another session's lock (the migration lock, a table), which used to run into the
    // shutdown deadline; the embedded database has no other session to wait for.
    const applied = await opening.databaseStep(
      migrate(sql, undefined, {
        lockTimeoutMs: config.MIGRATION_LOCK_TIMEOUT_MS,
        signal: config.mode === "embedded" ? undefined : signal,
      }),
      "migrations",
    ).catch((error) => {
      stillWanted();
      throw error;
    });
    log.info("database ready", { migrationsApplied: applied });
    if (config.ROLE === "all") {
      await opening.databaseStep(refuseAnotherGroupsState(sql, config.GROUP_ID, consumedTopics(topics)), "state owner");
      await backend.registerGroup(config.GROUP_ID, consumedTopics(topics));
    } else {
      await opening.databaseStep(
        (async () => {
          await refuseIngestForAnotherGroup(sql, config.GROUP_ID, consumedTopics(topics));
          await refuseIngestOnOtherTopics(sql, config, topics);
        })(),
        "state owner",
      );
    }
    stillWanted();

    const store = new SqlCheckpointStore(backend.sql);
    const domain = createDomainLogics(config);
    // Records are checked against their key's partition, and facts are published to product-events and
    // analytics in bundles per partition (engine/fact_bundle.ts); an ingest-only instance owns no
    // partition, so it needs no counts.
    const admin = backend.admin;
    const partitionCounts = config.ROLE !== "all" ? undefined : new Map(
      await opening.startupStep(Promise.all(
        consumedTopics(topics).map(async (topic) => [topic, await admin.partitionCount(topic)] as const),
      )),
    );
    if (partitionCounts) warnOfIgnoredPartitions(log, config, topics, partitionCounts);
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
      logics: logicsByTopic(topics, domain),
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
    stillWanted();
    // An ingest-only instance never joins the consumer group: it owns no partition, so every state
    // query it receives is forwarded to the owner (or answered from the checkpoint).
    if (config.ROLE === "all") {
      runtime.start();
      // Also after a join that failed half-way: the consumer leaves (or never stays in) the group,
      // claimed partitions get their final checkpoint, and the housekeeping timer stops.
      opened.push({ what: "runtime and consumer", close: () => runtime.shutdown() });
      // Joining waits for every member of the group: one that stopped answering (a frozen process) holds the join
      // until its session times out (30 s by kafkajs's default), and a signal waited for it past main.ts's deadline.
      await abandonedOnAbort(backend.consumer.start(consumedTopics(topics), runtime), signal, aborted);
      stillWanted();
      refusedSessionTimeout(config, backend.consumer.failure?.());
    }

    const registry = new InstanceRegistry(backend.sql, config.GROUP_ID, instanceId, log);
    const forwardSecret = await opening.databaseStep(loadForwardSecret(backend.sql, config.GROUP_ID), "forward secret");
    const reader = createStateReader(runtime, store, {
      registry,
      forwardSecret,
      ownerTrustedMs: ownerTrustedMs(config.KAFKA_SESSION_TIMEOUT_MS),
      kinds: await opening.startupStep(routedKinds(topics, admin)),
      logger: log,
    });
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
          coBoughtWeight: config.RECS_CO_BOUGHT_WEIGHT,
          historyDays: config.ANALYTICS_HISTORY_DAYS,
          alertRetentionDays: config.ALERT_RETENTION_DAYS,
          router: reader,
        }),
        ...operations,
      ],
      ingest: {
        rules: { maxFutureMs: config.MAX_EVENT_FUTURE_MS },
        maxEvents: config.MAX_BATCH_EVENTS,
        maxBodyBytes: config.MAX_BODY_BYTES,
        maxPendingBytes: config.MAX_INGEST_PENDING_BYTES,
      },
      now: Date.now,
    });
    const addr = server.addr;
    const host = addr.hostname === "0.0.0.0" ? "127.0.0.1" : addr.hostname === "::" ? "[::1]" : addr.hostname;
    const url = `http://${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${addr.port}`;
    const advertised = advertisedUrl({ configured: config.ADVERTISED_URL, bound: addr });
    stillWanted();
    opened.push({ what: "instance registration", close: () => registry.unregister() });
    await registry.register(advertised);
    stillWanted();
    handle = createHandler(routes, log, instrumentation, forwardSecret);
    phase = "running";
    log.info("engine started", { mode: config.mode, role: config.ROLE, url, advertised, backend: backend.describe });
    // Installed once started, removed when the stop ends, however it ends (a start that failed never installed it).
    const unguard = guardStrayNetworkErrors(log);

    const started = backend;
    let stopped: Promise<void> | undefined;
    // Also a consumer that failed while joining the group, during start-up: it settles at once then.
    const consumerFailed = config.ROLE === "all" ? started.consumer.failed?.() : undefined;
    const failed = consumerFailed
      ? consumerFailed.then((error) =>
        new EngineFailedError(`the log's consumer stopped for good: ${error.message}`, { cause: error })
      )
      : new Promise<never>(() => {});
    return {
      url,
      instanceId,
      runtime,
      metrics,
      mode: config.mode,
      backend: started.describe,
      failed,
      clients: {
        sql: started.sql,
        producer: started.producer,
        createConsumer: (groupId) => started.createConsumer(groupId),
      },
      stop() {
        // Once: a second signal must not close the backend under the first stop's final checkpoints.
        stopped ??= (async () => {
          try {
            phase = "stopping";
            log.info("engine stopping");
            await registry.unregister();
            await drain(server, log);
            await runtime.shutdown();
            await started.close();
            log.info("engine stopped");
          } finally {
            unguard();
          }
        })();
        return stopped;
      },
    };
  } catch (error) {
    // A bad setting is reported, in plain text, by main.ts; a signal is no failure.
    const level = error instanceof ConfigError ? "debug" : error instanceof StartAbortedError ? "info" : "warn";
    log[level]("start-up failed; closing what it opened", {
      error,
      opened: opened.map((o) => o.what),
    });
    for (const { what, close } of opened.reverse()) {
      await close().catch((closeError) =>
        log.warn("closing after a failed start-up failed", { what, error: closeError })
      );
    }
    throw error;
  }
}

/**
 * Stops start-up as a bad setting does (exit code 2, plain text) when the broker refused to let the consumer join with
 * KAFKA_SESSION_TIMEOUT_MS: kafkajs gives such a join up, and the engine used to start and then fail (exit code 1)
 * with the broker's words, which name neither the setting nor its value.
 */
function refusedSessionTimeout(config: Config, failure: Error | undefined): void {
  if (!isSessionTimeoutRefusal(failure)) return;
  throw new ConfigError(
    `Cannot start: Kafka at KAFKA_BROKERS="${config.KAFKA_BROKERS}" refused ` +
      `KAFKA_SESSION_TIMEOUT_MS=${config.KAFKA_SESSION_TIMEOUT_MS}: ${
        failure!.message
      }; set KAFKA_SESSION_TIMEOUT_MS ` +
      `within the broker's range (${BROKER_MIN_SESSION_TIMEOUT_MS} to ${MAX_SESSION_TIMEOUT_MS} unless its settings ` +
      "change it)",
    { cause: failure },
  );
}

/**
 * `step`, or a rejection with `aborted()` as soon as `signal` is aborted; a backend the abandoned step
 * opens later is closed then (what else it started is closed by start-up's own clean-up).
 */
function abandonedOnAbort<T extends Backend | void>(
  step: Promise<T>,
  signal: AbortSignal | undefined,
  aborted: () => Error,
): Promise<T> {
  if (!signal) return step;
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      reject(aborted());
      step.then((late) => late?.close()).catch(() => {});
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    step.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Stops accepting requests and waits for those in progress, at most HTTP_DRAIN_MS: a request still
 * running (a client stalled mid-upload) must not hold the final checkpoints.
 */
async function drain(server: Deno.HttpServer, log: Logger): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const drained = await Promise.race([
    server.shutdown().then(() => true),
    new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), HTTP_DRAIN_MS)),
  ]);
  clearTimeout(timer);
  if (!drained) log.warn("requests still running after the HTTP drain time; stopping anyway", { HTTP_DRAIN_MS });
}

/**
 * Refuses to consume with a group other than the one that owns the database's state, and records `groupId` as its
 * owner if none does yet: actor states carry no group, so a second group would fold the whole log from its start
 * into the states already built. Recorded atomically, so that of two start-ups at once only one group passes.
 */
async function refuseAnotherGroupsState(sql: Sql, groupId: string, topics: readonly string[]): Promise<void> {
  const others = await claimStateOwner(sql, groupId, topics);
  if (others.length === 0) return;
  throw new ConfigError(
    `Cannot start with GROUP_ID="${groupId}": the database holds the state built by group ${
      others.map((g) => `"${g}"`).join(", ")
    }, and a new group would fold the whole log into it again; use that GROUP_ID, or a new database (and TOPIC_PREFIX)`,
  );
}

/**
 * Refuses an ingest-only instance whose GROUP_ID is not the group that owns the database's state: it finds the owners
 * of partitions under its own group, so under another one it found none and answered every query from the last
 * checkpoint instead of forwarding it. Records nothing: an ingest instance started first on a fresh database passes.
 */
async function refuseIngestForAnotherGroup(sql: Sql, groupId: string, topics: readonly string[]): Promise<void> {
  const others = await otherOwners(sql, groupId, topics);
  if (others.length === 0) return;
  throw new ConfigError(
    `Cannot start with ROLE="ingest" and GROUP_ID="${groupId}": the database holds the state built by group ${
      others.map((g) => `"${g}"`).join(", ")
    }, whose instances own the partitions; queries would never be forwarded to them. Use that GROUP_ID`,
  );
}

/**
 * Refuses an ingest-only instance whose TOPIC_PREFIX is not the one its group processes: it created topics of its own
 * and acknowledged events that no instance would ever read. Passes while the group has claimed no partition yet.
 */
async function refuseIngestOnOtherTopics(
  sql: Sql,
  config: Pick<Config, "GROUP_ID" | "TOPIC_PREFIX">,
  topics: Topics,
): Promise<void> {
  const processed = await claimedTopics(sql, config.GROUP_ID);
  if (processed.length === 0 || processed.includes(topics.events)) return;
  throw new ConfigError(
    `Cannot start with ROLE="ingest" and TOPIC_PREFIX="${config.TOPIC_PREFIX}": group "${config.GROUP_ID}" reads ${
      processed.map((topic) => `"${topic}"`).join(", ")
    }, not "${topics.events}"; events accepted here would never be processed. Use the processing instances' ` +
      "TOPIC_PREFIX (to move to new topics, start the processing instances with it first)",
  );
}
