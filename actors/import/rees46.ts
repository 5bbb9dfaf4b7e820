/**
 * REES46 Open CDP clickstream rows → canonical stored events. One row, one event:
 *
 * | event_type | canonical event |
 * |---|---|
 * | `view` | `product_viewed` {productId, price, category, brand} |
 * | `cart` | `product_added_to_cart` {productId, quantity: 1, price, category, brand} |
 * | `remove_from_cart` | `product_removed_from_cart` {productId, quantity: 1} (a `cart` row adds one unit; a removal takes one back) |
 * | `purchase` | `order_completed` with one item (quantity 1 at the row's price), total = price, currency USD |
 *
 * userId = user_id, sessionId = user_session, occurredAt = event_time (UTC), receivedAt =
 * occurredAt (the real receipt time is unknown). category = category_code when present (brand
 * likewise), else absent. eventId is a name-based UUID of the row's position and content, so a
 * re-import produces the same ids (and is deduplicated) while identical rows stay distinct.
 * orderId = `rees46-<user_session>-<product_id>-<epoch seconds>`: stable across re-imports; the
 * data has one purchase row per product line, so a row is an order (identical purchase rows at the
 * same second would be one order, deduplicated by orderId).
 *
 * Skipped and counted: `unknown_event_type`, `invalid_time`, `missing_user`, `missing_product`,
 * `invalid_price` (not a number in plain decimal digits, such as `0x10` or `1e3`, negative, or over
 * MAX_AMOUNT), `invalid_row` (wrong column count), and
 * `invalid_event` (the result fails the canonical schema, e.g. an id over its length limit).
 */
import { MAX_AMOUNT, type StoredEvent, storedEvent } from "../events.ts";
import { nameUuid } from "../hash.ts";
import { expectHeader } from "./csv.ts";
import { decimalField } from "./decimal.ts";
import { type ImportSummary, newSummary, skip } from "./summary.ts";

/** The REES46 header. */
export const REES46_COLUMNS = [
  "event_time",
  "event_type",
  "product_id",
  "category_id",
  "category_code",
  "brand",
  "price",
  "user_id",
  "user_session",
] as const;

const TIME = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) UTC$/;

/** Maps one data row (1-based `line` in the file, header = line 1) to an event, or a skip reason. */
export function mapRees46Row(row: readonly string[], line: number): StoredEvent | { skip: string } {
  if (row.length !== REES46_COLUMNS.length) return { skip: "invalid_row" };
  const [eventTime, type, productId, , categoryCode, brandName, priceText, userId, session] = row.map((f) => f.trim());
  const time = TIME.exec(eventTime);
  if (!time) return { skip: "invalid_time" };
  const occurredAt = `${time[1]}T${time[2]}.000Z`;
  const at = Date.parse(occurredAt);
  // Date.parse takes 30 February (as 2 March) and 24:00: a time that does not exist is a bad time, not a bad event.
  if (Number.isNaN(at) || new Date(at).toISOString() !== occurredAt) return { skip: "invalid_time" };
  if (!["view", "cart", "remove_from_cart", "purchase"].includes(type)) return { skip: "unknown_event_type" };
  if (userId === "") return { skip: "missing_user" };
  if (productId === "") return { skip: "missing_product" };
  const price = decimalField(priceText);
  // Over MAX_AMOUNT the schema refused the event as a whole (invalid_event), naming no field.
  if (!(price >= 0 && price <= MAX_AMOUNT)) return { skip: "invalid_price" };

  const category = categoryCode !== "" ? { category: categoryCode } : {};
  const brand = brandName !== "" ? { brand: brandName } : {};
  const envelope = {
    eventId: nameUuid(`rees46:${line}:${row.join(",")}`),
    userId,
    ...(session !== "" ? { sessionId: session } : {}),
    occurredAt,
    receivedAt: occurredAt,
  };
  let event: unknown;
  switch (type) {
    case "view":
      event = { ...envelope, type: "product_viewed", properties: { productId, price, ...category, ...brand } };
      break;
    case "cart":
      event = {
        ...envelope,
        type: "product_added_to_cart",
        properties: { productId, quantity: 1, price, ...category, ...brand },
      };
      break;
    case "remove_from_cart":
      event = { ...envelope, type: "product_removed_from_cart", properties: { productId, quantity: 1 } };
      break;
    default:
      event = {
        ...envelope,
        type: "order_completed",
        properties: {
          orderId: `rees46-${session || userId}-${productId}-${Math.floor(at / 1000)}`,
          items: [{ productId, quantity: 1, price, ...category }],
          total: price,
          currency: "USD",
        },
      };
  }
  const checked = storedEvent.safeParse(event);
  return checked.success ? checked.data as StoredEvent : { skip: "invalid_event" };
}

/** Maps REES46 CSV records (header first) to events, counting into `summary`. */
export async function* importRees46(
  records: AsyncIterable<string[]>,
  summary: ImportSummary = newSummary(),
): AsyncGenerator<StoredEvent> {
  let line = 0;
  for await (const record of records) {
    line++;
    if (line === 1) {
      expectHeader(record, REES46_COLUMNS, "REES46 CSV");
      continue;
    }
    summary.rows++;
    const mapped = mapRees46Row(record, line);
    if ("skip" in mapped) {
      skip(summary, mapped.skip, line);
      continue;
    }
    summary.mapped++;
    summary.rowsMapped++;
    yield mapped;
  }
  if (line === 0) expectHeader(undefined, REES46_COLUMNS, "REES46 CSV");
}
