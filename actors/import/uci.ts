/**
 * UCI "Online Retail" invoice lines → `order_completed` events, one per invoice.
 *
 * Lines are grouped by InvoiceNo. The file is sorted by time but invoices interleave, so an
 * invoice stays open until the file has moved INVOICE_GROUP_MINUTES past its first line; a line of
 * an invoice already emitted starts a new order `<InvoiceNo>-<n>` (counted in `splitInvoices`).
 * The order: orderId = InvoiceNo, userId = CustomerID without its ".0", items = the kept lines
 * ({productId: StockCode, quantity, price: UnitPrice}), total = Σ quantity × price (exact, in
 * millis), currency GBP, shippingCountry = Country, occurredAt = the first line's InvoiceDate read
 * as UK local time (Europe/London: GMT, or BST from the last Sunday of March to the last Sunday of
 * October) in UTC, receivedAt = occurredAt, eventId = a name-based UUID of the orderId.
 *
 * Each line is kept or skipped for the first reason that applies, in this order, and counted:
 * `invalid_row` (column count, a number not in plain decimal digits (`0x10`, `1e3`), an unparsable date, a day or time that does not exist, a date
 * before 1970, no StockCode or one over 256 characters, a quantity or quantity × price beyond what an
 * order line may carry),
 * `cancellation` (InvoiceNo starting with C: returns are not orders), `missing_customer` (no
 * CustomerID: nobody to attribute it to), `invalid_customer` (a CustomerID that is not a number of
 * at most 128 digits), `non_positive_quantity` (stock adjustments), `non_positive_price` (free
 * samples, bad-debt adjustments), `non_product_code` (postage, fees, discounts, manual lines:
 * NON_PRODUCT_CODES), `duplicate_line` (identical to a line already in the same invoice: scanned
 * twice). An order that still fails the canonical schema (a total over MAX_AMOUNT, more than 1,000
 * lines, a Country over 64 characters) is left out and its lines counted as `invalid_order`: a bad
 * line never stops the import.
 */
import {
  isStorableTime,
  MAX_AMOUNT,
  MAX_QUANTITY,
  MAX_USER_ID_LENGTH,
  type StoredEvent,
  storedEvent,
} from "../events.ts";
import { nameUuid } from "../hash.ts";
import { fromMillis, toMillis } from "../money.ts";
import { expectHeader } from "./csv.ts";
import { decimalField, integerField } from "./decimal.ts";
import { type ImportSummary, newSummary, skip } from "./summary.ts";

/** The UCI header. */
export const UCI_COLUMNS = [
  "InvoiceNo",
  "StockCode",
  "Description",
  "Quantity",
  "InvoiceDate",
  "UnitPrice",
  "CustomerID",
  "Country",
] as const;

/** Stock codes that are charges or adjustments, not products. */
export const NON_PRODUCT_CODES: ReadonlySet<string> = new Set([
  "POST",
  "DOT",
  "M",
  "m",
  "D",
  "S",
  "C2",
  "B",
  "BANK CHARGES",
  "AMAZONFEE",
  "CRUK",
  "PADS",
]);

/** How long (in file time) an invoice stays open for more lines. */
export const INVOICE_GROUP_MINUTES = 60;

/** A UCI import's counts. */
export interface UciSummary extends ImportSummary {
  /** Invoices whose lines came in two runs far apart (emitted as two orders). */
  splitInvoices: number;
}

/** A fresh UCI summary. */
export function newUciSummary(): UciSummary {
  return { ...newSummary(), splitInvoices: 0 };
}

/** A parsed, kept line. */
interface Line {
  readonly stockCode: string;
  readonly quantity: number;
  readonly price: number;
}

interface OpenInvoice {
  readonly orderId: string;
  /** The customer of the invoice's first kept line ("" while none is kept). */
  customer: string;
  readonly country: string;
  readonly at: number;
  /** Record number (header = 1) of the invoice's first line, to name where an order left out is. */
  readonly record: number;
  readonly lines: Line[];
  readonly seen: Set<string>;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2})(?::(\d{2}))?$/;
const CUSTOMER = /^(\d+)(?:\.0+)?$/;
/** Longest StockCode: the canonical productId limit. */
const MAX_STOCK_CODE_LENGTH = 256;

/** Maps UCI CSV records (header first) to order events, counting into `summary`. */
export async function* importUci(
  records: AsyncIterable<string[]>,
  summary: UciSummary = newUciSummary(),
): AsyncGenerator<StoredEvent> {
  const open = new Map<string, OpenInvoice>();
  const emitted = new Map<string, number>();
  let header = true;
  const flush = function* (before: number): Generator<StoredEvent> {
    for (const [invoice, group] of open) {
      if (group.at >= before) break;
      open.delete(invoice);
      if (group.lines.length === 0) continue;
      const event = toOrder(group);
      if (!event) {
        skip(summary, "invalid_order", group.record, group.lines.length);
        continue;
      }
      summary.mapped++;
      summary.rowsMapped += group.lines.length;
      yield event;
    }
  };

  for await (const row of records) {
    if (header) {
      expectHeader(row, UCI_COLUMNS, "UCI Online Retail CSV");
      header = false;
      continue;
    }
    summary.rows++;
    const record = summary.rows + 1;
    const fields = row.map((f) => f.trim());
    const [invoice, stockCode, , quantityText, dateText, priceText, customerText, country] = fields;
    const at = row.length === UCI_COLUMNS.length ? londonToUtc(dateText) : NaN;
    const quantity = integerField(quantityText ?? "");
    const price = decimalField(priceText ?? "");
    if (
      !isStorableTime(at) || !Number.isSafeInteger(quantity) || !Number.isFinite(price) || !invoice ||
      stockCode === "" || stockCode.length > MAX_STOCK_CODE_LENGTH || quantity > MAX_QUANTITY ||
      quantity * price > MAX_AMOUNT
    ) {
      skip(summary, "invalid_row", record);
      continue;
    }
    yield* flush(at - INVOICE_GROUP_MINUTES * 60_000);

    let group = open.get(invoice);
    if (!group) {
      const runs = emitted.get(invoice) ?? 0;
      emitted.set(invoice, runs + 1);
      if (runs === 1) summary.splitInvoices++;
      const orderId = runs === 0 ? invoice : `${invoice}-${runs + 1}`;
      group = { orderId, customer: "", country, at, record, lines: [], seen: new Set() };
      open.set(invoice, group);
    }
    const customer = CUSTOMER.exec(customerText)?.[1];
    const reason = invoice.startsWith("C")
      ? "cancellation"
      : customerText === ""
      ? "missing_customer"
      : customer === undefined || customer.length > MAX_USER_ID_LENGTH
      ? "invalid_customer"
      : quantity <= 0
      ? "non_positive_quantity"
      : price <= 0
      ? "non_positive_price"
      : NON_PRODUCT_CODES.has(stockCode)
      ? "non_product_code"
      : group.seen.has(fields.join("\u0000"))
      ? "duplicate_line"
      : undefined;
    if (reason) {
      skip(summary, reason, record);
      continue;
    }
    group.seen.add(fields.join("\u0000"));
    // The customer of the first kept line: an invoice whose first line had none takes a later one's.
    group.customer ||= customer!;
    group.lines.push({ stockCode, quantity, price });
  }
  if (header) expectHeader(undefined, UCI_COLUMNS, "UCI Online Retail CSV");
  yield* flush(Infinity);
}

/** The invoice's order, or undefined when it fails the canonical schema. */
function toOrder(group: OpenInvoice): StoredEvent | undefined {
  const totalMillis = group.lines.reduce((sum, l) => sum + toMillis(l.quantity * l.price), 0);
  const occurredAt = new Date(group.at).toISOString();
  const event = {
    eventId: nameUuid(`uci:${group.orderId}`),
    type: "order_completed",
    userId: group.customer,
    occurredAt,
    receivedAt: occurredAt,
    properties: {
      orderId: group.orderId,
      items: group.lines.map((l) => ({ productId: l.stockCode, quantity: l.quantity, price: l.price })),
      total: fromMillis(totalMillis),
      currency: "GBP",
      ...(group.country !== "" ? { shippingCountry: group.country } : {}),
    },
  };
  const checked = storedEvent.safeParse(event);
  return checked.success ? checked.data as StoredEvent : undefined;
}

/** A UK local "YYYY-MM-DD HH:MM[:SS]" as epoch ms (NaN if unparsable or no such date or time). */
export function londonToUtc(text: string): number {
  const m = DATE.exec(text ?? "");
  if (!m) return NaN;
  const [y, mo, d, h, mi, s] = m.slice(1).map((x) => Number(x ?? 0));
  const local = Date.UTC(y, mo - 1, d, h, mi, s);
  // Date.UTC rolls 30 February over to 2 March and 25:00 to the next day: a corrupt date would be imported as another.
  const back = new Date(local);
  if (
    Number.isNaN(local) || back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d ||
    back.getUTCHours() !== h || back.getUTCMinutes() !== mi || back.getUTCSeconds() !== s
  ) return NaN;
  const bstStart = lastSundayAt1Utc(y, 2);
  const bstEnd = lastSundayAt1Utc(y, 9);
  const summer = local - 3_600_000;
  return summer >= bstStart && summer < bstEnd ? summer : local;
}

/** 01:00 UTC on the last Sunday of `month` (0-based) of `year`. */
function lastSundayAt1Utc(year: number, month: number): number {
  const last = new Date(Date.UTC(year, month + 1, 0));
  return Date.UTC(year, month, last.getUTCDate() - last.getUTCDay(), 1);
}
