/**
 * The context one handler call gets (engine/actor.ts ActorContext), as one object whose methods live on its class: built
 * per message, an object of seven closures and two more for its clock and ids cost nine allocations per event, which
 * the garbage collector then paid for (docs/performance.md, 2026-12-06).
 */
import type { ActorContext, Emitted, OutputTopic } from "./actor.ts";
import type { LogRecord } from "./log.ts";
import { outputId } from "./output_id.ts";
import type { TimerTable } from "./timer_table.ts";

/** A handler's timer changes, each with the deadline it replaced (undefined: none), to undo if it rejects its record. */
export type TimerUndo = [name: string, previous: number | undefined][];

/** The actor a handler call acts on: set dirty when its timers change. */
export interface HandlerTarget {
  dirty: boolean;
}

/** A handler call's effects: outputs collected in `emitted`, timers set on the partition's table. */
abstract class HandlerContext implements ActorContext {
  /** The outputs emitted so far, published by the caller once the handler returns. */
  readonly emitted: Emitted[] = [];

  constructor(
    protected readonly timers: TimerTable,
    protected readonly key: string,
    protected readonly cell: HandlerTarget,
    /** `ctx.now()`: the partition clock at the record, or the timer's deadline. */
    protected readonly at: number,
    private readonly sources: () => number,
  ) {}

  abstract outputId(rule: string): string;

  now(): number {
    return this.at;
  }

  emit(topic: OutputTopic, key: string, value: unknown): void {
    this.emitted.push({ topic, key, value });
  }

  setTimer(name: string, at: number): void {
    this.changing(name);
    this.timers.set(this.key, name, at);
    this.cell.dirty = true;
  }

  cancelTimer(name: string): void {
    this.changing(name);
    if (this.timers.delete(this.key, name)) this.cell.dirty = true;
  }

  timer(name: string): number | undefined {
    return this.timers.get(this.key, name);
  }

  sourcesWatermark(): number {
    return this.sources();
  }

  /** Before timer `name` changes. */
  protected changing(_name: string): void {}
}

/** A record handler's context: ids name the record's position; timer changes are kept to undo if it rejects the record. */
export class RecordContext extends HandlerContext {
  /** The timer changes so far, to undo if the handler rejects its record; undefined: none. */
  undo: TimerUndo | undefined;

  constructor(
    timers: TimerTable,
    key: string,
    cell: HandlerTarget,
    at: number,
    sources: () => number,
    private readonly record: LogRecord,
    private readonly generation: number,
  ) {
    super(timers, key, cell, at, sources);
  }

  outputId(rule: string): string {
    return outputId(this.record, rule, this.generation);
  }

  protected override changing(name: string): void {
    (this.undo ??= []).push([name, this.timers.get(this.key, name)]);
  }
}

/** A timer handler's context: ids name the actor kind, key, timer and deadline. */
export class TimerContext extends HandlerContext {
  constructor(
    timers: TimerTable,
    key: string,
    cell: HandlerTarget,
    at: number,
    sources: () => number,
    private readonly kind: string,
    private readonly name: string,
  ) {
    super(timers, key, cell, at, sources);
  }

  outputId(rule: string): string {
    return `timer-${this.kind}-${this.key}-${this.name}-${this.at}-${rule}`;
  }
}
