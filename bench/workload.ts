/** The benchmarks' input and flags, shared so that the engine and domain benchmarks measure the same events. */
import { uuidv7 } from "../engine/uuid.ts";

const BASE_TIME = Date.UTC(2026, 10, 1);

/**
 * Products viewed. Event n views product n · 7919 mod products, so with the default 5,000 and a number of users that
 * 5,000 divides, each user views one product over and over: no co-viewing, so no co-occurrence facts and no
 * recommendations. A product count prime to the users' (4,999) gives each user different products.
 */
export const DEFAULT_PRODUCTS = 5_000;

/** `--name N` from the arguments, or `fallback`. */
export function flag(args: string[], name: string, fallback: number): number {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
}

/** A product view as the benchmarks post it. */
export interface BenchEvent {
  readonly eventId: string;
  readonly type: "product_viewed";
  readonly userId: string;
  readonly occurredAt: string;
  readonly receivedAt: string;
  readonly properties: { readonly productId: string; readonly price: number; readonly category: string };
}

/**
 * Event time between two consecutive events of the benchmarks' input, by default: 100 events per second of event time,
 * so a run replays a quiet shop's backlog and nearly every product view falls in a product-minute of its own.
 */
export const DEFAULT_SPACING_MS = 10;

/** Event `n` of the benchmarks' input: product views, round-robin over the users, `spacingMs` of event time apart. */
export function benchEvent(n: number, users: number, products: number, spacingMs = DEFAULT_SPACING_MS): BenchEvent {
  const at = new Date(BASE_TIME + Math.round(n * spacingMs)).toISOString();
  return {
    eventId: uuidv7(BASE_TIME + n),
    type: "product_viewed",
    userId: `user-${n % users}`,
    occurredAt: at,
    receivedAt: at,
    properties: { productId: `sku-${(n * 7919) % products}`, price: 19.99, category: "shoes" },
  };
}

/** What every benchmark prints as its machine: cores, CPU model, memory, Deno. */
export async function machine(): Promise<string> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const model = cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1] ?? "unknown CPU";
  const memory = Math.round(Deno.systemMemoryInfo().total / 2 ** 30);
  return `${navigator.hardwareConcurrency} CPUs (nproc), ${model}, ${memory} GiB; Deno ${Deno.version.deno}`;
}
