/** Read-only access to actor state for queries: live memory first, then the last checkpoint. */
import type { CheckpointStore } from "./checkpoint.ts";
import type { ActorRuntime } from "./runtime.ts";
import { DatabaseUnavailableError } from "./errors.ts";

/** A state as a query sees it. */
export interface ReadState {
  readonly state: unknown;
  /** `memory` when live; `checkpoint` when read from PostgreSQL, with `asOf` its time. */
  readonly source: "memory" | "checkpoint";
  readonly asOf?: string;
}

/** What query routes use to see actor state; there is no path from it back into actors. */
export interface StateReader {
  read(kind: string, key: string): Promise<ReadState | null>;
}

/** Reads live state from the runtime, falling back to the checkpoint table. */
export function createStateReader(runtime: ActorRuntime, store: CheckpointStore): StateReader {
  return {
    async read(kind, key) {
      const live = runtime.lookup(kind, key);
      if (live) return { state: live.state, source: "memory" };
      let stored;
      try {
        stored = await store.read(kind, key);
      } catch (error) {
        throw new DatabaseUnavailableError("cannot read the checkpoint", { cause: error });
      }
      return stored ? { state: stored.state, source: "checkpoint", asOf: stored.updatedAt.toISOString() } : null;
    },
  };
}
