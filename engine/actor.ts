/**
 * What an actor is to the runtime: a value describing its logic, with no I/O in it.
 * `handle` is `(state, message, ctx) => state`; every effect goes through `ctx`, so the same
 * logic runs in the engine, in unit tests, and as the reference model of the exactly-once tests.
 */
import type { LogRecord } from "./log.ts";

/**
 * Logical output topics an actor may emit to; the runtime maps them to prefixed names.
 * `productEvents` repartitions product-side facts to their product's owner; `analytics` feeds
 * the single global actor (a one-partition internal topic).
 */
export type LogTopic = "alerts" | "recommendations" | "productEvents" | "analytics";

/**
 * Outputs that are not published but stored in PostgreSQL by the checkpoint covering their input:
 * `analyticsHistory`, finished minutes of the global analytics; `productMinutes`, a product's
 * per-minute counts, added up by the checkpoint for windowed rankings (engine/outputs.ts).
 */
export type StoredOutput = "analyticsHistory" | "productMinutes";

/** Everything an actor may emit to. */
export type OutputTopic = LogTopic | StoredOutput;

/** A message an actor asks the runtime to publish (or store) with the checkpoint covering its input. */
export interface Emitted {
  readonly topic: OutputTopic;
  readonly key: string;
  readonly value: unknown;
}

/** The effects available to a handler. */
export interface ActorContext {
  /** The partition clock (event time) in epoch milliseconds. */
  now(): number;
  /** Publishes a message before the checkpoint that covers the input commits (stored outputs: within it). */
  emit(topic: OutputTopic, key: string, value: unknown): void;
  /** An id derived from the input message (or fired timer) and `rule`, identical when replayed. */
  outputId(rule: string): string;
  /** Schedules (or moves) this actor's timer `name` to fire when the partition clock reaches `at`. */
  setTimer(name: string, at: number): void;
  /** Cancels this actor's timer `name`, if set. */
  cancelTimer(name: string): void;
  /** Deadline of this actor's timer `name`, if set. */
  timer(name: string): number | undefined;
  /**
   * For a partition fed through other partitions' checkpoints: how far they are known to have published, the clock
   * of its latest idle advance (engine/source_watermark.ts), as checkpointed with its clock; -Infinity if none.
   */
  sourcesWatermark?(): number;
}

/** An actor type: how to create, update, persist and restore the state of one key. */
export interface ActorLogic<S, M> {
  /** Actor type name, used as the key namespace in storage. */
  readonly kind: string;
  /** The state of a key that has never been seen. */
  initial(key: string): S;
  /** Turns a log record into a message; throws ValidationError for records that can never be handled. */
  decode(record: LogRecord): M;
  /** Event time of a message in epoch milliseconds; drives the partition clock. */
  eventTime(message: M): number;
  /** Applies one message. May await (lookups); the runtime never runs two messages of one key at once. */
  handle(state: S, message: M, ctx: ActorContext): S | Promise<S>;
  /** Handles a timer that came due (timers are durable and part of the checkpointed state). */
  onTimer?(state: S, name: string, ctx: ActorContext): S | Promise<S>;
  /** A short type name of a message for metrics (e.g. the event type); defaults to the kind. */
  label?(message: M): string;
  /**
   * JSON-serialisable form of the state for checkpoints. PostgreSQL's jsonb does not keep object
   * key order, so logic must never let the order of an object's keys reach its outputs or
   * decisions (sort them): a restored state has to behave exactly like the one before it.
   */
  persist(state: S): unknown;
  /** Inverse of `persist`. */
  restore(data: unknown): S;
  /**
   * Optional: a field of the persisted form stored as rows of its own, so that a checkpoint writes only its elements that
   * changed (a large state, most of which no longer changes). Read back whole: `restore` and readers never see parts.
   */
  readonly persistedParts?: PersistedParts;
}

/**
 * A field of the persisted form that is an array of objects ascending by a numeric field, `key`, unique among them. An
 * element is written when `persist` returns another object for its key than at the last checkpoint (so `persist` must
 * return the very same object for an element that did not change, or every checkpoint writes them all again), and its
 * row deleted when its key is gone from the array.
 */
export interface PersistedParts {
  readonly field: string;
  readonly key: string;
}

/** An ActorLogic with its type parameters erased, for registries. */
// deno-lint-ignore no-explicit-any
export type AnyActorLogic = ActorLogic<any, any>;
