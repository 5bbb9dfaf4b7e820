/**
 * Read-only access to actor state for queries: live memory first; then, for a key whose partition
 * another instance owns, that instance's answer (the query is forwarded once); else the last checkpoint.
 */
import type { CheckpointStore } from "./checkpoint.ts";
import { DatabaseUnavailableError } from "./errors.ts";
import { parseJson } from "./json_parse.ts";
import type { InstanceRegistry } from "./instance_registry.ts";
import { type LogAdmin, tpKey } from "./log.ts";
import type { Logger } from "./logger.ts";
import type { Topics } from "./config.ts";
import { partitionForKey } from "./partitioner.ts";
import type { ActorRuntime } from "./runtime.ts";

/**
 * Request header marking a query forwarded by another instance: such a query is never forwarded again, and is
 * answered with the stored state (the asking instance makes the public view of it).
 */
export const FORWARDED_HEADER = "x-engine-forwarded";
/** Response header naming the instance that answered a state query. */
export const INSTANCE_HEADER = "x-engine-instance";
/** A forwarded query slower than this is answered from the checkpoint instead. */
export const FORWARD_TIMEOUT_MS = 1_000;
/**
 * How long a partition's owner, once looked up, is reused before asking PostgreSQL again. Saves a
 * database round trip per routed query; after a rebalance a query may reach the previous owner
 * for this long, which then answers from the checkpoint (with `asOf`), never with stale live state.
 */
export const OWNER_CACHE_MS = 1_000;
/**
 * Forwarded queries in flight at most; beyond it a query is answered from the checkpoint. Each
 * forward holds a connection to the owner, so a slow owner must not pile up connections until
 * the process runs out of file descriptors.
 */
export const MAX_FORWARDS_IN_FLIGHT = 64;
/**
 * A failed forward is logged at most once per owner in this long: queries to an owner that is down
 * or registered at a wrong ADVERTISED_URL would otherwise write a line each.
 */
export const FORWARD_FAILURE_LOG_MS = 10_000;

/** A state as a query sees it. */
export interface ReadState {
  readonly state: unknown;
  /** `memory` when live; `checkpoint` when read from PostgreSQL, with `asOf` its time. */
  readonly source: "memory" | "checkpoint";
  readonly asOf?: string;
  /** The instance that answered: this one, or the owner the query was forwarded to. */
  readonly instance?: string;
}

/** How a state route asks: `forwarded` when the request came from another instance. */
export interface ReadOptions {
  readonly forwarded: boolean;
}

/** What query routes use to see actor state; there is no path from it back into actors. */
export interface StateReader {
  /** Without `options` the read is local (memory, then checkpoint); with them it may be forwarded. */
  read(kind: string, key: string, options?: ReadOptions): Promise<ReadState | null>;
}

/** Where a routable kind's keys live and where its owner serves them over HTTP. */
export interface RoutedKind {
  /** The topic feeding the kind. */
  readonly topic: string;
  /** The topic's partition count as the log has it (not as configured: an existing topic keeps its own). */
  readonly partitions: number;
  /** The GET path of a key's state on any instance. */
  readonly path: (key: string) => string;
}

/**
 * The kinds a query is forwarded for, users and products, each with the partition count the log has for its topic: a
 * key's owner is found by the partition the log puts it in, and an existing topic keeps its count whatever
 * PARTITIONS says now (the configured count sent queries to the owner of another partition, or to none).
 */
export async function routedKinds(
  topics: Pick<Topics, "events" | "productEvents">,
  admin: Pick<LogAdmin, "partitionCount">,
): Promise<Record<string, RoutedKind>> {
  const [users, products] = await Promise.all(
    [topics.events, topics.productEvents].map((t) => admin.partitionCount(t)),
  );
  return {
    user: { topic: topics.events, partitions: users, path: (key) => `/v1/users/${encodeURIComponent(key)}` },
    product: {
      topic: topics.productEvents,
      partitions: products,
      path: (key) => `/v1/products/${encodeURIComponent(key)}`,
    },
  };
}

/** What forwarding needs: the registry and the routable kinds. */
export interface StateRouting {
  readonly registry: Pick<InstanceRegistry, "instanceId" | "owner">;
  readonly kinds: Readonly<Record<string, RoutedKind>>;
  readonly timeoutMs?: number;
  /** Defaults to OWNER_CACHE_MS; 0 looks the owner up for every query. */
  readonly ownerCacheMs?: number;
  /** Defaults to MAX_FORWARDS_IN_FLIGHT. */
  readonly maxForwards?: number;
  /** Injected in unit tests. */
  readonly fetch?: typeof fetch;
  /** Where a forward that failed is reported (answered from the checkpoint instead). */
  readonly logger?: Logger;
}

/** Reads live state from the runtime, asks the owning instance if routing is given, else the checkpoint. */
export function createStateReader(
  runtime: ActorRuntime,
  store: CheckpointStore,
  routing?: StateRouting,
): StateReader {
  const self = routing?.registry.instanceId;
  const owners = routing ? ownerCache(routing) : undefined;
  const failures = routing ? failureLog(routing) : undefined;
  const maxForwards = routing?.maxForwards ?? MAX_FORWARDS_IN_FLIGHT;
  let forwarding = 0;
  return {
    async read(kind, key, options) {
      const live = runtime.lookup(kind, key);
      if (live) return { state: live.state, source: "memory", instance: self };
      const routed = routing?.kinds[kind];
      if (routing && routed && options && !options.forwarded) {
        const partition = partitionForKey(key, routed.partitions);
        if (!runtime.owned().includes(tpKey({ topic: routed.topic, partition })) && forwarding < maxForwards) {
          forwarding++;
          try {
            const answer = await forward(routing, owners!, failures!, routed, partition, key);
            if (answer !== undefined) return answer;
          } finally {
            forwarding--;
          }
        }
      }
      let stored;
      try {
        stored = await store.read(kind, key);
      } catch (error) {
        throw new DatabaseUnavailableError("cannot read the checkpoint", { cause: error });
      }
      return stored
        ? { state: stored.state, source: "checkpoint", asOf: stored.updatedAt.toISOString(), instance: self }
        : null;
    },
  };
}

/** Partition owners looked up in PostgreSQL, each reused for `ownerCacheMs`. */
interface OwnerCache {
  get(topic: string, partition: number): Promise<PartitionOwnerRow | null>;
  /** Forgets an owner that could not be reached, so the next query looks again. */
  forget(topic: string, partition: number): void;
}

type PartitionOwnerRow = Awaited<ReturnType<InstanceRegistry["owner"]>>;
type PartitionOwner = NonNullable<PartitionOwnerRow>;

function ownerCache(routing: StateRouting): OwnerCache {
  const ttl = routing.ownerCacheMs ?? OWNER_CACHE_MS;
  const entries = new Map<string, { owner: Promise<PartitionOwnerRow | null>; at: number }>();
  return {
    get(topic, partition) {
      const k = tpKey({ topic, partition });
      const now = performance.now();
      const hit = entries.get(k);
      if (hit && now - hit.at < ttl) return hit.owner;
      const owner = routing.registry.owner(topic, partition);
      entries.set(k, { owner, at: now });
      owner.catch(() => entries.delete(k));
      return owner;
    },
    forget(topic, partition) {
      entries.delete(tpKey({ topic, partition }));
    },
  };
}

/** Reports a forward that failed, at most once per owner per FORWARD_FAILURE_LOG_MS. */
type FailureLog = (owner: PartitionOwner, topic: string, partition: number, reason: unknown) => void;

function failureLog(routing: StateRouting): FailureLog {
  const loggedAt = new Map<string, number>();
  return (owner, topic, partition, reason) => {
    const now = performance.now();
    const last = loggedAt.get(owner.instanceId);
    if (!routing.logger || (last !== undefined && now - last < FORWARD_FAILURE_LOG_MS)) return;
    loggedAt.set(owner.instanceId, now);
    routing.logger.warn("cannot forward a state query to the partition's owner; answering from the checkpoint", {
      owner: owner.instanceId,
      url: owner.httpUrl,
      topic,
      partition,
      error: reason,
      quietForMs: FORWARD_FAILURE_LOG_MS,
    });
  };
}

/** The owner's answer (null: it has no such key), or undefined when it cannot be asked or failed. */
async function forward(
  routing: StateRouting,
  owners: OwnerCache,
  failed: FailureLog,
  routed: RoutedKind,
  partition: number,
  key: string,
): Promise<ReadState | null | undefined> {
  let owner: PartitionOwner | null;
  try {
    owner = await owners.get(routed.topic, partition);
  } catch {
    // The database is unavailable: so is the checkpoint, whose read reports it.
    return undefined;
  }
  if (!owner?.httpUrl || owner.instanceId === routing.registry.instanceId) return undefined;
  try {
    const response = await (routing.fetch ?? fetch)(new URL(routed.path(key), owner.httpUrl), {
      headers: { [FORWARDED_HEADER]: "1", accept: "application/json" },
      signal: AbortSignal.timeout(routing.timeoutMs ?? FORWARD_TIMEOUT_MS),
    });
    if (response.status === 404) return (await response.body?.cancel(), null);
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new Error(`answered ${response.status}`);
    }
    const { source, asOf, instance, ...state } = parseJson(await response.text()) as Record<string, unknown>;
    if (source !== "memory" && source !== "checkpoint") throw new Error("answered without a state source");
    return {
      state,
      source,
      ...(typeof asOf === "string" ? { asOf } : {}),
      instance: typeof instance === "string" ? instance : owner.instanceId,
    };
  } catch (error) {
    // Unreachable, timed out, failing, or not JSON: the checkpoint answers instead.
    owners.forget(routed.topic, partition);
    failed(owner, routed.topic, partition, error);
    return undefined;
  }
}
