/**
 * The one adapter from instrumentation events to Prometheus metrics, on an explicit registry
 * (no global default registry), served at GET /metrics.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { LocalHistogram, TalliedCounter } from "./hot_metrics.ts";
import type { EngineEvent, Instrumentation } from "./instrumentation.ts";

const PREFIX = "engine_";
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const LAG_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600];

/** Prometheus metrics fed by instrumentation events. */
export class Metrics implements Instrumentation {
  readonly registry = new Registry();
  readonly #httpRequests = new Counter({
    name: `${PREFIX}http_requests_total`,
    help: "HTTP requests by route, method, status and source (client, or instance: forwarded by another instance)",
    labelNames: ["route", "method", "status", "source"],
    registers: [this.registry],
  });
  readonly #httpSeconds = new Histogram({
    name: `${PREFIX}http_request_duration_seconds`,
    help: "HTTP request latency by route and source (client, or instance: forwarded by another instance)",
    labelNames: ["route", "method", "source"],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly #ingested = new Counter({
    name: `${PREFIX}events_ingested_total`,
    help: "Events received for ingestion, by type and outcome",
    labelNames: ["type", "outcome"],
    registers: [this.registry],
  });
  readonly #refused = new Counter({
    name: `${PREFIX}ingest_refused_requests_total`,
    help: "Ingestion requests refused (429) because their events would pass MAX_INGEST_PENDING_BYTES",
    registers: [this.registry],
  });
  readonly #processed = new TalliedCounter({
    name: `${PREFIX}events_processed_total`,
    help: "Messages handled by actors, by actor kind and message type",
    labelNames: ["kind", "type"],
    registry: this.registry,
  });
  readonly #lag = new LocalHistogram({
    name: `${PREFIX}processing_lag_seconds`,
    help: "Event time to handling time",
    labelName: "kind",
    buckets: LAG_BUCKETS,
    registry: this.registry,
  });
  readonly #consumerLag = new Gauge({
    name: `${PREFIX}consumer_lag_records`,
    help: "Records between a partition's end and the next record to handle",
    labelNames: ["topic", "partition"],
    registers: [this.registry],
  });
  readonly #checkpointSeconds = new Histogram({
    name: `${PREFIX}checkpoint_duration_seconds`,
    help: "Checkpoint duration (outputs acknowledged + transaction)",
    labelNames: ["topic"],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly #checkpointPhaseSeconds = new Histogram({
    name: `${PREFIX}checkpoint_phase_seconds`,
    help:
      "Checkpoint time by step: publish (outputs acknowledged), persist (states built), commit (JSON + transaction)",
    labelNames: ["topic", "phase"],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly #checkpointStates = new Histogram({
    name: `${PREFIX}checkpoint_states`,
    help: "Actor states written per checkpoint",
    labelNames: ["topic"],
    buckets: [0, 1, 10, 100, 1000, 10000, 100000],
    registers: [this.registry],
  });
  readonly #checkpointFailures = new Counter({
    name: `${PREFIX}checkpoint_failures_total`,
    help: "Checkpoints that failed (retried)",
    labelNames: ["topic"],
    registers: [this.registry],
  });
  readonly #actors = new Counter({
    name: `${PREFIX}actors_total`,
    help: "Actor lifecycle changes: activated, passivated, expired, packed (idle), unpacked",
    labelNames: ["kind", "change"],
    registers: [this.registry],
  });
  readonly #actorsInMemory = new Gauge({
    name: `${PREFIX}actors_in_memory`,
    help: "Actors currently in memory, packed ones included",
    registers: [this.registry],
  });
  readonly #actorsPacked = new Gauge({
    name: `${PREFIX}actors_packed`,
    help: "Idle actors in memory in their packed form",
    registers: [this.registry],
  });
  readonly #timersFired = new Counter({
    name: `${PREFIX}timers_fired_total`,
    help: "Timers fired",
    labelNames: ["kind"],
    registers: [this.registry],
  });
  readonly #timersPending = new Gauge({
    name: `${PREFIX}timers_pending`,
    help: "Timers armed, per partition",
    labelNames: ["topic", "partition"],
    registers: [this.registry],
  });
  readonly #deadLettered = new Counter({
    name: `${PREFIX}dlq_records_total`,
    help: "Records sent to the dead-letter topic, by source topic and error code",
    labelNames: ["topic", "code"],
    registers: [this.registry],
  });
  readonly #outputs = new TalliedCounter({
    name: `${PREFIX}outputs_total`,
    help: "Messages emitted by actors, counted as the log acknowledged them, by topic and subtype (alert type, ...)",
    labelNames: ["topic", "subtype"],
    registry: this.registry,
  });
  readonly #purged = new Counter({
    name: `${PREFIX}log_records_purged_total`,
    help: "Embedded log records deleted by retention, by topic",
    labelNames: ["topic"],
    registers: [this.registry],
  });
  readonly #skipped = new Counter({
    name: `${PREFIX}log_records_skipped_total`,
    help: "Records deleted from the log by retention before they were handled, by topic",
    labelNames: ["topic"],
    registers: [this.registry],
  });
  readonly #partitions = new Gauge({
    name: `${PREFIX}partitions_owned`,
    help: "Partitions this instance owns",
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
  }

  emit(e: EngineEvent): void {
    switch (e.type) {
      case "http_request":
        this.#httpRequests.inc({ route: e.route, method: e.method, status: String(e.status), source: e.source });
        this.#httpSeconds.observe({ route: e.route, method: e.method, source: e.source }, e.seconds);
        return;
      case "events_ingested":
        this.#ingested.inc({ type: e.eventType, outcome: e.outcome }, e.count);
        return;
      case "ingest_refused":
        this.#refused.inc();
        return;
      case "message_processed":
        this.#processed.inc(e.kind, e.label);
        // Not a message without an event time (NaN), nor one dated ahead of this clock.
        if (e.lagSeconds >= 0) this.#lag.observe(e.kind, e.lagSeconds);
        return;
      case "consumer_lag":
        this.#consumerLag.set({ topic: e.topic, partition: String(e.partition) }, e.lag);
        return;
      case "checkpoint":
        if (!e.ok) {
          this.#checkpointFailures.inc({ topic: e.topic });
          return;
        }
        this.#checkpointSeconds.observe({ topic: e.topic }, e.seconds);
        for (const [phase, seconds] of Object.entries(e.phases ?? {})) {
          this.#checkpointPhaseSeconds.observe({ topic: e.topic, phase }, seconds);
        }
        this.#checkpointStates.observe({ topic: e.topic }, e.states);
        return;
      case "actors":
        this.#actors.inc({ kind: e.kind, change: e.change }, e.count);
        return;
      case "actors_in_memory":
        this.#actorsInMemory.set(e.count);
        this.#actorsPacked.set(e.packed);
        return;
      case "timers":
        if (e.fired > 0) this.#timersFired.inc({ kind: e.kind }, e.fired);
        this.#timersPending.set({ topic: e.topic, partition: String(e.partition) }, e.pending);
        return;
      case "dead_lettered":
        this.#deadLettered.inc({ topic: e.topic, code: e.code }, e.count);
        return;
      case "output":
        this.#outputs.inc(e.topic, e.subtype, e.count);
        return;
      case "log_records_purged":
        this.#purged.inc({ topic: e.topic }, e.count);
        return;
      case "records_skipped":
        this.#skipped.inc({ topic: e.topic }, e.count);
        return;
      case "partitions_owned":
        this.#partitions.set(e.count);
        return;
      case "partition_released": {
        // Another instance reports this partition now; stale values here would double count.
        const labels = { topic: e.topic, partition: String(e.partition) };
        this.#consumerLag.remove(labels);
        this.#timersPending.remove(labels);
        return;
      }
    }
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
