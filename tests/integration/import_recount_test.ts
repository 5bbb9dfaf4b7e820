/**
 * End to end against the real data: `deno task import` replays rees46-2019-10-head5k.csv into a fresh embedded engine,
 * and every user's and every product's state, the 24-hour funnel, the top products by views and the cart_abandoned
 * alerts equal a recount made here straight from the CSV with the SPEC's rules and the importer's documented mapping
 * (no engine code). The actor tests fold the same data through one actor; this covers what lies between: the
 * partitions, the product-side facts, the global actor and the timers fired by the idle clock.
 */
import assert from "node:assert/strict";
import { startEngineProcess } from "../helpers/engine_process.ts";
import { onlyOn } from "../helpers/modes.ts";
import { eventually } from "../helpers/services.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const FILE = new URL("../../../shared/data/rees46-2019-10-head5k.csv", import.meta.url).pathname;
const GAP_MS = 30 * 60_000;
const STAGES = ["visited", "viewed_product", "added_to_cart", "started_checkout", "purchased"] as const;
const STAGE_OF: Record<string, number> = { view: 1, cart: 2, remove_from_cart: 0, purchase: 4 };
// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

interface UserCount {
  eventCount: number;
  productViews: number;
  sessionCount: number;
  session: { id: string; startedAt: number; lastAt: number; stage: number } | null;
  cart: Map<string, { quantity: number; priceCents: number }>;
  cartChangedAt: number;
  orders: number;
  revenueCents: number;
  abandonedCarts: number;
  abandonedAt: number;
}

interface ProductCount {
  views: number;
  viewers: Set<string>;
  cartAdds: number;
  orders: number;
  unitsSold: number;
  revenueCents: number;
}

/** Prices have two decimals in this file: counted in integer cents. */
function cents(price: string): number {
  const [whole, fraction = ""] = price.split(".");
  return Number(whole) * 100 + Number(fraction.padEnd(2, "0"));
}

/** The recount: users, products, the sessions' furthest stages, and the abandoned carts (user, deadline). */
function recount(csv: string) {
  const users = new Map<string, UserCount>();
  const products = new Map<string, ProductCount>();
  const sessions: { stage: number }[] = [];
  const abandoned: [string, number][] = [];
  const abandon = (userId: string, u: UserCount, now: number) => {
    // A non-empty cart with no checkout or order within 30 minutes of its last change, once per cart state.
    const deadline = u.cartChangedAt + GAP_MS;
    if (u.cart.size > 0 && deadline < now && deadline > u.abandonedAt) {
      u.abandonedCarts++;
      u.abandonedAt = deadline;
      abandoned.push([userId, deadline]);
    }
  };
  const [, ...rows] = csv.trim().split("\n");
  for (const row of rows) {
    const [time, type, productId, , , , price, userId, sessionId] = row.split(",");
    const at = Date.parse(time.replace(" UTC", "Z").replace(" ", "T"));
    let u = users.get(userId);
    if (!u) {
      u = {
        eventCount: 0,
        productViews: 0,
        sessionCount: 0,
        session: null,
        cart: new Map(),
        cartChangedAt: -Infinity,
        orders: 0,
        revenueCents: 0,
        abandonedCarts: 0,
        abandonedAt: -Infinity,
      };
      users.set(userId, u);
    }
    abandon(userId, u, at);
    u.eventCount++;
    // A new session after 30 minutes without events, or when the client's session id changes.
    if (!u.session || u.session.id !== sessionId || at > u.session.lastAt + GAP_MS) {
      u.sessionCount++;
      u.session = { id: sessionId, startedAt: at, lastAt: at, stage: 0 };
      sessions.push(u.session);
    }
    u.session.lastAt = at;
    u.session.stage = Math.max(u.session.stage, STAGE_OF[type]);
    let p = products.get(productId);
    if (!p) {
      p = { views: 0, viewers: new Set(), cartAdds: 0, orders: 0, unitsSold: 0, revenueCents: 0 };
      products.set(productId, p);
    }
    if (type === "view") {
      u.productViews++;
      p.views++;
      p.viewers.add(userId);
    } else if (type === "cart") {
      const item = u.cart.get(productId);
      u.cart.set(productId, { quantity: (item?.quantity ?? 0) + 1, priceCents: cents(price) });
      u.cartChangedAt = at;
      p.cartAdds++;
    } else if (type === "purchase") {
      // One row, one order (the importer's mapping); an order empties the cart.
      u.orders++;
      u.revenueCents += cents(price);
      u.cart.clear();
      p.orders++;
      p.unitsSold++;
      p.revenueCents += cents(price);
    }
  }
  // The data ends in 2019: the idle clock passes every open cart's deadline.
  for (const [userId, u] of users) abandon(userId, u, Infinity);
  return { rows: rows.length, users, products, sessions, abandoned };
}

async function getJson(url: string): Promise<Json> {
  const response = await fetch(url);
  assert.equal(response.status, 200, `${url}: ${response.status}`);
  return await response.json();
}

/** GETs every path, a few at a time. */
async function getAll(base: string, paths: string[]): Promise<Json[]> {
  const out: Json[] = [];
  for (let i = 0; i < paths.length; i += 16) {
    out.push(...await Promise.all(paths.slice(i, i + 16).map((path) => getJson(base + path))));
  }
  return out;
}

onlyOn("embedded", "the imported head5k answers what an independent recount of the CSV gives", async () => {
  const expected = recount(await Deno.readTextFile(FILE));
  const dataDir = await Deno.makeTempDir({ prefix: "import-recount-" });
  // The default CLOCK_IDLE_MS (10 s): a partition falling idle between two batches of a slow import would move its clock
  // to the wall time and abandon carts whose orders are still to come.
  const engine = await startEngineProcess({ dataDir });
  try {
    const env = Deno.env.toObject();
    delete env.KAFKA_BROKERS;
    delete env.DATABASE_URL;
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", "scripts/import.ts", "rees46", FILE, "--url", engine.url],
      cwd: ROOT,
      env,
      clearEnv: true,
      stdin: "null",
    }).output();
    const stdout = new TextDecoder().decode(run.stdout);
    assert.equal(run.code, 0, `import failed:\n${stdout}\n${new TextDecoder().decode(run.stderr)}`);
    assert.match(stdout, new RegExp(`${expected.rows} posted, ${expected.rows} accepted`));

    // The last carts are abandoned once the partitions fall idle; then every figure must match.
    const abandoned = expected.abandoned.map(([userId, at]) => `${userId} ${new Date(at).toISOString()}`).sort();
    await eventually(`${abandoned.length} cart_abandoned alerts`, async () => {
      const { items } = await getJson(`${engine.url}/v1/alerts?type=cart_abandoned&limit=500`);
      const got = (items as Json[]).map((a) => `${a.subject.id} ${a.occurredAt}`).sort();
      assert.deepEqual(got, abandoned);
      return true;
    }, 60_000);

    await eventually("every user and product as recounted", async () => {
      const userIds = [...expected.users.keys()];
      const users = await getAll(engine.url, userIds.map((id) => `/v1/users/${id}`));
      const mismatches: string[] = [];
      users.forEach((got, i) => {
        const want = expected.users.get(userIds[i])!;
        const wantCart = [...want.cart.values()];
        const figures = {
          eventCount: [want.eventCount, got.eventCount],
          productViews: [want.productViews, got.productViews],
          sessionCount: [want.sessionCount, got.sessionCount],
          sessionId: [want.session!.id, got.session.id],
          sessionStart: [new Date(want.session!.startedAt).toISOString(), got.session.startedAt],
          funnelStage: [STAGES[want.session!.stage], got.funnelStage],
          cartUnits: [wantCart.reduce((n, item) => n + item.quantity, 0), got.cart.units],
          cartValue: [
            wantCart.reduce((n, item) => n + item.quantity * item.priceCents, 0),
            Math.round(got.cart.value * 100),
          ],
          orders: [want.orders, got.orders.count],
          revenue: [want.revenueCents, Math.round(got.orders.revenue * 100)],
          abandonedCarts: [want.abandonedCarts, got.abandonedCarts],
        };
        for (const [name, [w, g]] of Object.entries(figures)) {
          if (w !== g) mismatches.push(`user ${userIds[i]} ${name}: want ${w}, got ${g}`);
        }
      });
      const productIds = [...expected.products.keys()];
      const products = await getAll(engine.url, productIds.map((id) => `/v1/products/${id}`));
      products.forEach((got, i) => {
        const want = expected.products.get(productIds[i])!;
        const figures = {
          views: [want.views, got.views],
          cartAdds: [want.cartAdds, got.cartAdds],
          orders: [want.orders, got.orders],
          unitsSold: [want.unitsSold, got.unitsSold],
          revenue: [want.revenueCents, Math.round(got.revenue * 100)],
          stock: [null, got.stock],
        };
        for (const [name, [w, g]] of Object.entries(figures)) {
          if (w !== g) mismatches.push(`product ${productIds[i]} ${name}: want ${w}, got ${g}`);
        }
        // HyperLogLog: within the documented 2% (at most one viewer off below 50).
        const viewers = want.viewers.size;
        if (Math.abs(got.uniqueViewers - viewers) > Math.max(1, 0.02 * viewers)) {
          mismatches.push(`product ${productIds[i]} uniqueViewers: want ${viewers} ± 2%, got ${got.uniqueViewers}`);
        }
      });
      assert.equal(mismatches.length, 0, mismatches.slice(0, 20).join("\n"));
      return true;
    }, 30_000);

    // The 24-hour window holds the whole file (02:28 at the latest, the abandonments until 02:59).
    const funnel = await getJson(`${engine.url}/v1/analytics/funnel?window=24h`);
    const reached = (stage: number) => expected.sessions.filter((s) => s.stage >= stage).length;
    assert.deepEqual(funnel.funnelSessions, Object.fromEntries(STAGES.map((name, i) => [name, reached(i)])));
    const all = [...expected.products.values()];
    assert.deepEqual(funnel.steps, {
      productViewed: all.reduce((n, p) => n + p.views, 0),
      addedToCart: all.reduce((n, p) => n + p.cartAdds, 0),
      checkoutStarted: 0,
      orderCompleted: all.reduce((n, p) => n + p.orders, 0),
    });
    assert.equal(funnel.cartsAbandoned, abandoned.length);

    const top = await getJson(`${engine.url}/v1/analytics/top-products?by=views&window=24h&limit=10`);
    const byViews = [...expected.products].sort(([a, x], [b, y]) => y.views - x.views || (a < b ? -1 : 1));
    assert.deepEqual(
      (top.items as Json[]).map((item) => item.views),
      byViews.slice(0, 10).map(([, p]) => p.views),
    );
    const cut = byViews[9][1].views; // products tied at the cut may come in any order
    assert.deepEqual(
      (top.items as Json[]).filter((item) => item.views > cut).map((item) => item.productId).sort(),
      byViews.filter(([, p]) => p.views > cut).map(([id]) => id).sort(),
    );
  } finally {
    await engine.kill("SIGTERM");
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
