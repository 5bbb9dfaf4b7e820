/**
 * What a checkpoint writes of a state with a parts field (engine/actor.ts PersistedParts): the persisted form without
 * the field, and of its elements only those that are not the very objects the last checkpoint wrote, with the keys of
 * those gone since. A state whose stored elements are not known (restored, or new) replaces them all.
 */
import type { PersistedParts } from "./actor.ts";
import type { StoredParts } from "../sql/checkpoints.ts";

/** The elements of a parts field by key, as a checkpoint wrote them (compared by identity with the next ones). */
export type WrittenParts = ReadonlyMap<number, unknown>;

/** A persisted form split for a checkpoint: its rest, the parts to write, and the elements written once it commits. */
export interface SplitState {
  readonly state: unknown;
  readonly parts: StoredParts;
  readonly written: WrittenParts;
}

/** Splits `persisted` by `spec`, writing what changed since `written` (undefined: not known, so all of it). */
export function splitParts(spec: PersistedParts, persisted: unknown, written: WrittenParts | undefined): SplitState {
  const { [spec.field]: elements, ...state } = persisted as Record<string, unknown>;
  if (!Array.isArray(elements)) throw new Error(`persisted parts field "${spec.field}" is not an array`);
  const now = new Map<number, unknown>();
  const upserts: { key: number; data: unknown }[] = [];
  for (const element of elements) {
    const key = (element as Record<string, unknown>)[spec.key];
    if (typeof key !== "number" || now.has(key)) {
      throw new Error(`persisted parts field "${spec.field}": element key ${String(key)} is not a unique number`);
    }
    now.set(key, element);
    if (written?.get(key) !== element) upserts.push({ key, data: element });
  }
  const deletes = written ? [...written.keys()].filter((key) => !now.has(key)) : [];
  return { state, parts: { field: spec.field, upserts, deletes, replace: written === undefined }, written: now };
}
