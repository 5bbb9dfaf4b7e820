// deno-lint-ignore-file no-console
/**
 * `deno task loadgen [--url URL] [--rate 50] [--users 200] [--duration 30] [--seed N] [--batch 50] [--timeout 30]`:
 * a shopper simulator that posts realistic storefront traffic to a running engine over HTTP.
 * Shoppers browse in sessions (page views, searches, product views in a catalog of 200 products),
 * add and remove cart items, drop off, start checkouts (some abandoned) and place orders (now and
 * then a fraudster's, followed by two more with other cards, the last far too large); the store
 * posts `inventory_updated` every few seconds. Events go out in batches (JSON arrays) at about
 * `--rate` events/s; the run stops after `--duration` seconds and prints what was sent, accepted
 * and rejected. Several batches may be in flight at once, but a shopper's events always go
 * through one lane whose batches are posted one after another, so they reach the log in the order
 * the shopper made them. A batch answered 429 or 503 is posted again in its lane after the
 * answer's Retry-After; one not answered within --timeout is given up (counted as failed). Ctrl-C
 * (or SIGTERM) stops the run and waits for the requests in flight; a second one gives them up.
 */
import { optionNumber, optionParts } from "./cli_option.ts";
import { badUrlMessage, engineBaseUrl } from "./engine_url.ts";
import { prng } from "./prng.ts";
import { escapeControls } from "./terminal_text.ts";

const USAGE = `usage: deno task loadgen [--url URL] [--rate N] [--users N] [--duration S] [--seed N] [--batch N]
                          [--timeout S]

  --url URL       the running engine (default http://127.0.0.1:8080)
  --rate N        events per second, 0.1..100000 (default 50)
  --users N       simulated shoppers, 1..1000000 (default 200)
  --duration S    seconds to run, 0.1..86400 (default 30)
  --seed N        PRNG seed (integer) for a reproducible run (default: random)
  --batch N       maximum events per POST, 1..1000 (default 50)
  --timeout S     seconds to wait for each POST's answer before giving it up, 1..3600 (default 30)`;

function fail(message: string): never {
  console.error(`loadgen: ${message}\n${USAGE}`);
  Deno.exit(2);
}

interface Options {
  url: string;
  rate: number;
  users: number;
  duration: number;
  seed: number;
  batch: number;
  /** A request the engine never answers used to hold loadgen for good, Ctrl-C included. */
  timeoutMs: number;
}

function parseArgs(args: readonly string[]): Options {
  const options: Options = {
    url: "http://127.0.0.1:8080",
    rate: 50,
    users: 200,
    duration: 30,
    seed: Math.floor(Math.random() * 2 ** 31),
    batch: 50,
    timeoutMs: 30_000, // well above the engine's PUBLISH_TIMEOUT_MS (5 s), after which it answers 503
  };
  const number = (name: string, value: string, min: number, max: number, integer: boolean): number => {
    const n = optionNumber(value);
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      fail(`${name} must be ${integer ? "an integer" : "a number"} in ${min}..${max}, got ${JSON.stringify(value)}`);
    }
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      Deno.exit(0);
    }
    if (!arg.startsWith("--")) fail(`unexpected argument ${JSON.stringify(arg)}`);
    const [name, inline] = optionParts(arg);
    const value = inline ?? args[++i];
    if (value === undefined) fail(`${name} needs a value`);
    switch (name) {
      case "--url":
        options.url = engineBaseUrl(value) ?? fail(badUrlMessage(value));
        break;
      case "--rate":
        options.rate = number(name, value, 0.1, 100_000, false);
        break;
      case "--users":
        options.users = number(name, value, 1, 1_000_000, true);
        break;
      case "--duration":
        options.duration = number(name, value, 0.1, 86_400, false);
        break;
      case "--seed":
        options.seed = number(name, value, -(2 ** 31), 2 ** 32, true);
        break;
      case "--batch":
        options.batch = number(name, value, 1, 1000, true);
        break;
      case "--timeout":
        options.timeoutMs = number(name, value, 1, 3600, false) * 1000;
        break;
      default:
        fail(`unknown option ${name}`);
    }
  }
  return options;
}

interface Product {
  readonly productId: string;
  readonly category: string;
  readonly brand: string;
  readonly price: number;
  readonly name: string;
}

const CATEGORIES: readonly { code: string; brands: string[]; min: number; max: number; nouns: string[] }[] = [
  { code: "electronics.smartphone", brands: ["samsung", "apple", "xiaomi"], min: 120, max: 1300, nouns: ["phone"] },
  { code: "electronics.audio.headphone", brands: ["sony", "jbl", "apple"], min: 20, max: 400, nouns: ["headphones"] },
  { code: "appliances.kitchen.kettle", brands: ["bosch", "tefal", "philips"], min: 15, max: 120, nouns: ["kettle"] },
  { code: "apparel.shoes", brands: ["nike", "adidas", "puma"], min: 40, max: 220, nouns: ["sneakers", "boots"] },
  { code: "furniture.living_room.sofa", brands: ["ikea", "hoff"], min: 250, max: 1800, nouns: ["sofa"] },
  { code: "computers.notebook", brands: ["lenovo", "asus", "hp"], min: 350, max: 2500, nouns: ["laptop"] },
];

function catalog(random: () => number): Product[] {
  return Array.from({ length: 200 }, (_, i) => {
    const c = CATEGORIES[i % CATEGORIES.length];
    const brand = c.brands[Math.floor(random() * c.brands.length)];
    const noun = c.nouns[Math.floor(random() * c.nouns.length)];
    const price = Math.round((c.min + (c.max - c.min) * random() ** 2) * 100) / 100;
    return { productId: `sku-${String(1000 + i)}`, category: c.code, brand, price, name: `${brand} ${noun} ${i}` };
  });
}

type Event = {
  eventId?: string;
  type: string;
  userId?: string;
  sessionId?: string;
  properties: Record<string, unknown>;
};

interface Shopper {
  readonly userId: string;
  session?: string;
  viewed: Product[];
  cart: Map<string, { product: Product; quantity: number }>;
  checkingOut: boolean;
  sessions: number;
  /** Events already decided, given out before any other (a fraudster's orders after the first). */
  queued: Event[];
}

/** The simulation: `next()` gives the next event of a random shopper. */
export class Store {
  readonly #random: () => number;
  readonly #products: Product[];
  readonly #shoppers: Shopper[];
  #orders = 0;

  constructor(random: () => number, users: number) {
    this.#random = random;
    this.#products = catalog(random);
    this.#shoppers = Array.from({ length: users }, (_, i) => ({
      userId: `loadgen-user-${String(i + 1).padStart(5, "0")}`,
      viewed: [],
      cart: new Map(),
      checkingOut: false,
      sessions: 0,
      queued: [],
    }));
  }

  #pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.#random() * items.length)];
  }

  /** Popular products are viewed more (a skewed pick). */
  #product(): Product {
    return this.#products[Math.floor(this.#products.length * this.#random() ** 2)];
  }

  inventory(): Event {
    const product = this.#product();
    return {
      eventId: crypto.randomUUID(),
      type: "inventory_updated",
      properties: { productId: product.productId, stock: Math.floor(this.#random() * 40) },
    };
  }

  /**
   * The next event, with an eventId of its own: a batch answered 503 may have landed in part, and posting it again
   * must not count its events twice (random, not from the seed: a second run with one seed is not a repeat).
   */
  next(): Event {
    return { eventId: crypto.randomUUID(), ...this.#draw() };
  }

  #draw(): Event {
    const shopper = this.#pick(this.#shoppers);
    const queued = shopper.queued.shift();
    if (queued) return queued;
    const base = () => ({ userId: shopper.userId, sessionId: shopper.session! });
    if (shopper.session === undefined) {
      shopper.sessions++;
      shopper.session = `${shopper.userId}-s${shopper.sessions}`;
      shopper.viewed = [];
      shopper.checkingOut = false;
      const landing = this.#pick(["/", "/", "/deals", `/c/${this.#pick(CATEGORIES).code}`]);
      return {
        ...base(),
        type: "page_viewed",
        properties: {
          url: `https://shop.example${landing}`,
          referrer: this.#pick(["https://www.google.com/", "https://instagram.com/", ""]) || undefined,
          loadTime: Math.round(200 + this.#random() * 1800) / 1000, // seconds (SPEC): 0.2–2 s
        },
      };
    }
    const r = this.#random();
    if (shopper.checkingOut) {
      shopper.checkingOut = false;
      if (r < 0.7) return this.#order(shopper);
      // abandoned checkout: the shopper leaves
      shopper.session = undefined;
      return { ...base(), type: "page_viewed", properties: { url: "https://shop.example/checkout/shipping" } };
    }
    if (r < 0.04) {
      // drop-off: the session ends (the cart, if any, stays and may be reported abandoned later)
      shopper.session = undefined;
      return this.#draw();
    }
    if (r < 0.2) {
      const product = this.#product();
      return {
        ...base(),
        type: "search_performed",
        properties: {
          query: `${product.brand} ${product.name.split(" ")[1]}`,
          resultsCount: Math.floor(this.#random() * 60),
        },
      };
    }
    if (r < 0.3) {
      return {
        ...base(),
        type: "page_viewed",
        properties: { url: `https://shop.example/c/${this.#pick(CATEGORIES).code}` },
      };
    }
    if (r < 0.7 || shopper.viewed.length === 0) {
      const product = this.#product();
      shopper.viewed.push(product);
      const { productId, price, category, brand } = product;
      return { ...base(), type: "product_viewed", properties: { productId, price, category, brand } };
    }
    if (r < 0.86) {
      const product = this.#pick(shopper.viewed);
      const quantity = this.#random() < 0.85 ? 1 : 2;
      const line = shopper.cart.get(product.productId);
      shopper.cart.set(product.productId, { product, quantity: (line?.quantity ?? 0) + quantity });
      const { productId, price, category, brand } = product;
      return { ...base(), type: "product_added_to_cart", properties: { productId, quantity, price, category, brand } };
    }
    if (r < 0.91 && shopper.cart.size > 0) {
      const line = this.#pick([...shopper.cart.values()]);
      shopper.cart.delete(line.product.productId);
      return {
        ...base(),
        type: "product_removed_from_cart",
        properties: { productId: line.product.productId, quantity: line.quantity },
      };
    }
    if (shopper.cart.size > 0) {
      shopper.checkingOut = true;
      return { ...base(), type: "checkout_started", properties: { cartValue: cartValue(shopper) } };
    }
    const product = this.#product();
    shopper.viewed.push(product);
    const { productId, price, category, brand } = product;
    return { ...base(), type: "product_viewed", properties: { productId, price, category, brand } };
  }

  #order(shopper: Shopper): Event {
    const items = [...shopper.cart.values()].map(({ product, quantity }) => ({
      productId: product.productId,
      quantity,
      price: product.price,
      category: product.category,
    }));
    shopper.cart.clear();
    const session = shopper.session;
    shopper.session = undefined;
    if (this.#random() >= 0.03) {
      return this.#orderEvent(
        shopper,
        session,
        items,
        this.#pick(["card", "card", "paypal", "gift_card"]),
        this.#pick(["US", "GB", "DE", "FR", "PL"]),
      );
    }
    // Now and then a fraudster: this order, then a small one in a session of its own, then one far too large in a
    // third, each with another payment method and shipping country. The three within FRAUD_DISTINCT_HOURS and the
    // large total score 0.7 under the default rules, at any hour; a large order alone scored 0.6 at most (a first
    // order), and so raised nothing by day.
    const methods = this.#shuffled(["card", "paypal", "gift_card"]);
    const countries = this.#shuffled(["US", "GB", "DE", "FR", "PL"]);
    const cheapest = this.#products.reduce((a, b) => (a.price < b.price ? a : b));
    const dearest = this.#products.reduce((a, b) => (a.price > b.price ? a : b));
    const line = (product: Product, quantity: number) => ({
      productId: product.productId,
      quantity,
      price: product.price,
      category: product.category,
    });
    const visit = (lines: ReturnType<typeof line>[], i: number): Event[] => {
      shopper.sessions++;
      const sessionId = `${shopper.userId}-s${shopper.sessions}`;
      const base = { userId: shopper.userId, sessionId };
      const products = lines.map((l) => this.#products.find((p) => p.productId === l.productId)!);
      return [
        { ...base, type: "page_viewed", properties: { url: "https://shop.example/" } },
        ...lines.flatMap((l, j): Event[] => {
          const { productId, price, category, brand } = products[j];
          return [
            { ...base, type: "product_viewed", properties: { productId, price, category, brand } },
            {
              ...base,
              type: "product_added_to_cart",
              properties: { productId, quantity: l.quantity, price, category, brand },
            },
          ];
        }),
        { ...base, type: "checkout_started", properties: { cartValue: total(lines) } },
        this.#orderEvent(shopper, sessionId, lines, methods[i], countries[i]),
      ];
    };
    shopper.queued.push(
      ...visit([line(cheapest, 1)], 1),
      ...visit([line(dearest, 5 + Math.floor(this.#random() * 10))], 2),
    );
    return this.#orderEvent(shopper, session, items, methods[0], countries[0]);
  }

  #orderEvent(
    shopper: Shopper,
    session: string | undefined,
    items: { productId: string; quantity: number; price: number; category: string }[],
    paymentMethod: string,
    shippingCountry: string,
  ): Event {
    this.#orders++;
    return {
      userId: shopper.userId,
      sessionId: session,
      type: "order_completed",
      properties: {
        orderId: `loadgen-${shopper.userId}-${Date.now().toString(36)}-${this.#orders}`,
        items,
        total: total(items),
        currency: "USD",
        paymentMethod,
        shippingCountry,
      },
    };
  }

  /** The items in a random order (Fisher–Yates). */
  #shuffled<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }
}

/** The value of order lines, to the cent. */
function total(lines: readonly { quantity: number; price: number }[]): number {
  return Math.round(lines.reduce((sum, l) => sum + l.quantity * l.price, 0) * 100) / 100;
}

function cartValue(shopper: Shopper): number {
  let value = 0;
  for (const { product, quantity } of shopper.cart.values()) value += product.price * quantity;
  return Math.round(value * 100) / 100;
}

interface Stats {
  generated: Record<string, number>;
  sent: number;
  accepted: number;
  requests: number;
  rejected: Record<string, number>;
  /** Posts answered 429 or 503 and posted again. */
  retried: number;
  failed: number;
  /** Events of the requests a second Ctrl-C gave up before they were posted. */
  notPosted: number;
  lastProblem?: string;
}

/** Most times one batch is posted again after a 429 or 503, as `deno task import` does. */
const MAX_RETRIES = 8;

/**
 * Milliseconds to wait before posting a batch answered 429 or 503 again: its Retry-After (at most
 * 60 s), else a backoff from 1 s; posting it at once, or dropping it, lost a shopper's events.
 */
function retryDelayMs(retryAfter: string | null, attempt: number): number {
  const seconds = retryAfter === null || retryAfter.trim() === "" ? NaN : Number(retryAfter);
  return Number.isFinite(seconds) && seconds >= 0
    ? Math.min(seconds, 60) * 1000
    : Math.min(1000 * 2 ** attempt, 60_000);
}

/** Waits `ms`, or less if `signal` aborts first. */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/**
 * Posts one batch; a 429 or 503 is retried in its lane (so the shopper's order holds) after Retry-After. A request
 * not answered within `timeoutMs` is given up, not posted again (it may still land, after later ones),
 * and so is every request once `abandon` aborts (a second Ctrl-C).
 */
async function send(
  url: string,
  events: readonly Event[],
  stats: Stats,
  timeoutMs: number,
  abandon: AbortSignal,
): Promise<void> {
  if (abandon.aborted) {
    stats.notPosted += events.length;
    return;
  }
  stats.requests++;
  try {
    const body = JSON.stringify(events);
    let response: Response;
    let text: string;
    for (let attempt = 0;; attempt++) {
      response = await fetch(`${url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.any([abandon, AbortSignal.timeout(timeoutMs)]),
      });
      text = await response.text();
      if ((response.status !== 429 && response.status !== 503) || attempt >= MAX_RETRIES) break;
      stats.retried++;
      await delay(retryDelayMs(response.headers.get("retry-after"), attempt), abandon);
    }
    stats.sent += events.length;
    if (response.status === 202) {
      const accepted = (JSON.parse(text) as { accepted?: number }).accepted;
      stats.accepted += typeof accepted === "number" ? accepted : events.length;
    } else {
      stats.rejected[response.status] = (stats.rejected[response.status] ?? 0) + 1;
      stats.lastProblem = `${response.status}: ${text.slice(0, 500)}`;
    }
  } catch (error) {
    stats.failed++;
    const reason = abandon.aborted
      ? "given up (Ctrl-C twice)"
      : (error as Error).name === "TimeoutError"
      ? `no answer within ${timeoutMs / 1000} s (--timeout)`
      : (error as Error).message;
    stats.lastProblem = `request failed: ${reason}`;
  }
}

/** The lane of an event among `lanes`: one per shopper (by userId); the store's inventory updates share lane 0. */
export function laneOf(event: { userId?: string }, lanes: number): number {
  const id = event.userId;
  if (lanes === 1 || id === undefined) return 0;
  let hash = 0;
  for (let i = 0; i < id.length; i++) hash = (Math.imul(hash, 31) + id.charCodeAt(i)) | 0;
  return (hash >>> 0) % lanes;
}

async function main(): Promise<void> {
  const options = parseArgs(Deno.args);
  try {
    const health = await fetch(`${options.url}/healthz`, { signal: AbortSignal.timeout(options.timeoutMs) });
    await health.body?.cancel();
  } catch (error) {
    const within = (error as Error).name === "TimeoutError" ? ` within ${options.timeoutMs / 1000} s (--timeout)` : "";
    console.error(
      `loadgen: no engine answers at ${options.url}${within} (start one with \`deno task start\`, or pass --url)`,
    );
    Deno.exit(1);
  }
  const store = new Store(prng(options.seed), options.users);
  const stats: Stats = {
    generated: {},
    sent: 0,
    accepted: 0,
    requests: 0,
    rejected: {},
    retried: 0,
    failed: 0,
    notPosted: 0,
  };
  console.error(
    `loadgen: ${options.rate} events/s from ${options.users} shoppers for ${options.duration} s to ${options.url} ` +
      `(seed ${options.seed})`,
  );

  const TICK_MS = 100;
  const INVENTORY_EVERY_MS = 5000;
  const MAX_IN_FLIGHT = 8;
  const started = performance.now();
  const end = started + options.duration * 1000;
  let generated = 0;
  let nextInventory = started;
  let nextProgress = started + 5000;
  // As many lanes as batches per tick (at most MAX_IN_FLIGHT): a low rate keeps one lane, so whole ticks stay one batch.
  const lanes = Math.min(MAX_IN_FLIGHT, Math.max(1, Math.ceil((options.rate * TICK_MS) / 1000 / options.batch)));
  /** Each lane's last batch: the next one is posted once it is answered (concurrent requests reach the log in any order). */
  const laneTails: Promise<void>[] = Array.from({ length: lanes }, () => Promise.resolve());
  const inFlight = new Set<Promise<void>>();
  let stopping = false;
  /** Aborted by a second Ctrl-C: the requests in flight (and those queued behind them) are given up. */
  const abandon = new AbortController();
  /** The signal that gave up the requests in flight, for the exit code (130 for SIGINT, 143 for SIGTERM). */
  let abandonedBy: Deno.Signal | undefined;
  // SIGTERM (a container's stop, `timeout`) as Ctrl-C: it used to kill loadgen at once, without its summary.
  const onSignal = (signal: Deno.Signal) => () => {
    if (!stopping) {
      stopping = true;
      console.error(
        `loadgen: stopping; waiting for ${inFlight.size} request(s) in flight (Ctrl-C again to give them up)`,
      );
    } else {
      abandonedBy ??= signal;
      abandon.abort();
    }
  };
  const listeners = (["SIGINT", "SIGTERM"] as const).map((signal) => [signal, onSignal(signal)] as const);
  for (const [signal, listener] of listeners) Deno.addSignalListener(signal, listener);

  while (!stopping) {
    const now = performance.now();
    const elapsed = Math.min(now, end) - started;
    const due = Math.floor((options.rate * elapsed) / 1000) - generated;
    const events: Event[] = [];
    for (let i = 0; i < due; i++) events.push(store.next());
    generated += Math.max(0, due);
    if (now >= nextInventory && now < end) {
      nextInventory += INVENTORY_EVERY_MS;
      for (let i = 0; i < 3; i++) events.push(store.inventory());
    }
    for (const e of events) stats.generated[e.type] = (stats.generated[e.type] ?? 0) + 1;
    const byLane: Event[][] = Array.from({ length: lanes }, () => []);
    for (const e of events) byLane[laneOf(e, lanes)].push(e);
    for (let lane = 0; lane < lanes; lane++) {
      for (let i = 0; i < byLane[lane].length; i += options.batch) {
        while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
        const batch = byLane[lane].slice(i, i + options.batch);
        // send() never rejects: it counts failures in stats.
        const request: Promise<void> = laneTails[lane].then(() =>
          send(options.url, batch, stats, options.timeoutMs, abandon.signal)
        ).finally(() => inFlight.delete(request));
        laneTails[lane] = request;
        inFlight.add(request);
      }
    }
    if (now >= nextProgress) {
      nextProgress += 5000;
      const rejected = Object.values(stats.rejected).reduce((a, b) => a + b, 0);
      console.error(
        `loadgen: ${((now - started) / 1000).toFixed(0)} s, ${stats.sent} sent, ${stats.accepted} accepted, ` +
          `${rejected} rejected and ${stats.failed} failed requests, ${inFlight.size} in flight`,
      );
    }
    if (now >= end) break;
    await new Promise((resolve) => setTimeout(resolve, TICK_MS));
  }
  await Promise.all(inFlight);
  for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);

  const seconds = (performance.now() - started) / 1000;
  const rejected = Object.entries(stats.rejected);
  console.log(
    `loadgen: sent ${stats.sent} events in ${stats.requests} requests over ${seconds.toFixed(1)} s ` +
      `(${(stats.sent / seconds).toFixed(1)} events/s); accepted ${stats.accepted}`,
  );
  for (const [type, count] of Object.entries(stats.generated).sort(([, a], [, b]) => b - a)) {
    console.log(`  ${type}: ${count}`);
  }
  for (const [status, count] of rejected) console.log(`  rejected requests with status ${status}: ${count}`);
  if (stats.retried > 0) console.log(`  requests answered 429 or 503 and posted again: ${stats.retried}`);
  if (stats.failed > 0) console.log(`  failed requests (no answer): ${stats.failed}`);
  if (stats.notPosted > 0) console.log(`  events not posted (Ctrl-C twice): ${stats.notPosted}`);
  // The engine's answer may quote a client's field (or be a proxy's page): its control characters used to reach the
  // terminal raw (a C1 CSI, a right-to-left override), as the other tools' quotes no longer do.
  if (stats.lastProblem) console.log(`  last problem: ${escapeControls(stats.lastProblem)}`);
  if (abandon.signal.aborted) Deno.exit(abandonedBy === "SIGTERM" ? 143 : 130);
  // Nothing accepted of any request, answered or not (one whose requests all went unanswered used to exit 0).
  if (stats.accepted === 0 && stats.requests > 0) Deno.exit(1);
}

if (import.meta.main) await main();
