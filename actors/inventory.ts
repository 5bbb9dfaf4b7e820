/**
 * Stock: the latest `inventory_updated` (by event time) minus the units sold after it. Updates
 * and sales reach a product from different producers (ingestion, user actors), so their arrival
 * order may differ from event time: an update is a snapshot at its time, so sales at or before it
 * are already in it, and sales after it are subtracted even if they arrived first. A stale
 * update (older than the one applied) is ignored. Sales newer than the update are remembered up to
 * SALES_MEMORY; beyond it the oldest is folded into the snapshot. Before the first update the
 * stock is unknown (null) and the newest SALES_MEMORY sales are remembered, so that the first
 * update also takes into account those dated after it that arrived before it (the oldest are
 * forgotten: there is no snapshot to fold them into). Sales of one instant share one entry.
 *
 * `low_inventory` is raised when stock falls below the threshold and `out_of_stock` when it
 * reaches 0, each once per crossing: re-armed when stock is back at or above the threshold (resp.
 * above 0). A first update that is already low raises too.
 */

/** Sales after the latest update kept to re-apply them to a later one. */
export const SALES_MEMORY = 100;

/** A product's stock. */
export interface Inventory {
  /** Units in stock now; null until an update arrives. */
  readonly level: number | null;
  /** Stock reported by the latest update (with folded sales), and that update's event time (epoch ms). */
  readonly reported: number | null;
  readonly reportedAt: number | null;
  /** [event time, units] of sales after the latest update (of every sale before the first one), oldest first. */
  readonly sales: readonly (readonly [number, number])[];
  readonly lowAlerted: boolean;
  readonly outAlerted: boolean;
}

/** Stock never reported. */
export const UNKNOWN_INVENTORY: Inventory = Object.freeze({
  level: null,
  reported: null,
  reportedAt: null,
  sales: [],
  lowAlerted: false,
  outAlerted: false,
});

/** Alerts a stock change raises. */
export type StockAlert = "low_inventory" | "out_of_stock";

/** Applies an inventory update of `stock` units at `at`. */
export function applyUpdate(inventory: Inventory, stock: number, at: number): Inventory {
  if (inventory.reportedAt !== null && at < inventory.reportedAt) return inventory;
  const sales = inventory.sales.filter(([t]) => t > at);
  return withLevel({ ...inventory, reported: stock, reportedAt: at, sales });
}

/** Applies a sale of `units` at `at`. */
export function applySale(inventory: Inventory, units: number, at: number): Inventory {
  if (inventory.reportedAt !== null && at <= inventory.reportedAt) return inventory;
  let sales = withSale(inventory.sales, units, at);
  let reported = inventory.reported;
  while (sales.length > SALES_MEMORY) {
    if (reported !== null) reported -= sales[0][1];
    sales = sales.slice(1);
  }
  return withLevel({ ...inventory, reported, sales });
}

/** `sales` with one more, kept in event-time order; a sale at an instant already there joins its entry. */
function withSale(
  sales: readonly (readonly [number, number])[],
  units: number,
  at: number,
): (readonly [number, number])[] {
  let i = sales.length;
  while (i > 0 && sales[i - 1][0] > at) i--;
  if (i > 0 && sales[i - 1][0] === at) {
    const next = sales.slice();
    next[i - 1] = [at, sales[i - 1][1] + units];
    return next;
  }
  if (i === sales.length) return [...sales, [at, units] as const];
  return [...sales.slice(0, i), [at, units] as const, ...sales.slice(i)];
}

/** Re-arms or raises the crossing alerts for the current level. */
export function stockAlerts(inventory: Inventory, threshold: number): { inventory: Inventory; raised: StockAlert[] } {
  const level = inventory.level;
  if (level === null) return { inventory, raised: [] };
  const raised: StockAlert[] = [];
  let { lowAlerted, outAlerted } = inventory;
  if (level < threshold && !lowAlerted) {
    raised.push("low_inventory");
    lowAlerted = true;
  } else if (level >= threshold) lowAlerted = false;
  if (level === 0 && !outAlerted) {
    raised.push("out_of_stock");
    outAlerted = true;
  } else if (level > 0) outAlerted = false;
  return { inventory: { ...inventory, lowAlerted, outAlerted }, raised };
}

function withLevel(inventory: Inventory): Inventory {
  if (inventory.reported === null) return { ...inventory, level: null };
  const sold = inventory.sales.reduce((n, [, units]) => n + units, 0);
  return { ...inventory, level: Math.max(0, inventory.reported - sold) };
}
