/**
 * Typed instrumentation events. The engine reports what happens through `Instrumentation.emit`;
 * one adapter (metrics.ts) maps events to Prometheus metrics. Components never touch prom-client.
 */

/** Everything the engine reports. */
export type EngineEvent =
  | {
    readonly type: "http_request";
    readonly route: string;
    readonly method: string;
    readonly status: number;
    readonly seconds: number;
    /** `instance`: forwarded by another instance (which counts it as its client's), so sums over instances can omit it. */
    readonly source: "client" | "instance";
  }
  | {
    readonly type: "events_ingested";
    readonly eventType: string;
    readonly outcome: "accepted" | "rejected" | "refused" | "unavailable";
    readonly count: number;
  }
  /** A request refused (HTTP 429) because its events would pass MAX_INGEST_PENDING_BYTES. */
  | { readonly type: "ingest_refused"; readonly events: number }
  | {
    readonly type: "message_processed";
    readonly kind: string;
    readonly label: string;
    /** Event time to handling time; NaN for a message without an event time (a watermark), which has no lag. */
    readonly lagSeconds: number;
  }
  | { readonly type: "consumer_lag"; readonly topic: string; readonly partition: number; readonly lag: number }
  | {
    readonly type: "checkpoint";
    readonly topic: string;
    readonly seconds: number;
    readonly states: number;
    readonly ok: boolean;
    /** Where a successful checkpoint's time went, for telling a slow broker from a slow database. */
    readonly phases?: CheckpointPhases;
  }
  | {
    readonly type: "actors";
    readonly kind: string;
    readonly change: "activated" | "passivated" | "expired" | "packed" | "unpacked";
    readonly count: number;
  }
  | { readonly type: "actors_in_memory"; readonly count: number; readonly packed: number }
  | {
    readonly type: "timers";
    readonly kind: string;
    readonly fired: number;
    readonly pending: number;
    readonly topic: string;
    readonly partition: number;
  }
  /** Records dead-lettered, counted when the log acknowledges them (a replay after a rewind appends them again). */
  | { readonly type: "dead_lettered"; readonly topic: string; readonly code: string; readonly count: number }
  /** Outputs published, counted when the log acknowledges them (a replay after a rewind appends them again). */
  | { readonly type: "output"; readonly topic: string; readonly subtype: string; readonly count: number }
  | { readonly type: "partitions_owned"; readonly count: number }
  | { readonly type: "partition_released"; readonly topic: string; readonly partition: number }
  | { readonly type: "log_records_purged"; readonly topic: string; readonly count: number }
  /** Records deleted from the log (retention) before this group handled them: lost to the actors. */
  | { readonly type: "records_skipped"; readonly topic: string; readonly partition: number; readonly count: number };

/** The reporting surface components receive. */
export interface Instrumentation {
  emit(event: EngineEvent): void;
}

/** Discards every event; the default where nothing listens. */
export const noInstrumentation: Instrumentation = Object.freeze({ emit: () => {} });

/** Seconds a checkpoint spent on each step, in order. */
export interface CheckpointPhases {
  /** The epoch check and the outputs' append, until the log acknowledged them. */
  readonly publish: number;
  /** Building the dirty actors' persisted forms. */
  readonly persist: number;
  /** The transaction: states (serialised to JSON here), timers, offset, projections. */
  readonly commit: number;
}
