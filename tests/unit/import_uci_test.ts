import assert from "node:assert/strict";
import { parseCsv, textChunks } from "../../actors/import/csv.ts";
import { importUci, londonToUtc, newUciSummary } from "../../actors/import/uci.ts";
import type { StoredEvent, StoredEventOf } from "../../actors/events.ts";
import { fold } from "../helpers/fold.ts";

/** The shared data folder next to the repository (/work/shared/data). */
const path = new URL("../../../shared/data/uci-online-retail-2010-2011.csv.gz", import.meta.url);
/** The month replayed: December 2010, the first of the file (42,481 lines). */
const MONTH = "2010-12";

/** Independent reading: gunzip, split lines, split fields with a regex (no shared parser, no mapper). */
async function rawLines(): Promise<string[][]> {
  const text = await new Response((await Deno.open(path)).readable.pipeThrough(new DecompressionStream("gzip"))).text();
  const rows: string[][] = [];
  for (const line of text.split("\n").slice(1)) {
    if (line === "") continue;
    const fields = [...line.matchAll(/(?:^|,)("(?:[^"]|"")*"|[^,]*)/g)].map((m) =>
      m[1].replace(/^"|"$/g, "").replaceAll('""', '"')
    );
    if (!fields[4].startsWith(MONTH)) {
      if (fields[4] > MONTH) break;
      continue;
    }
    rows.push(fields);
  }
  return rows;
}

const FEES = new Set(["POST", "DOT", "M", "m", "D", "S", "C2", "B", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS"]);

/** The UCI file's header line. */
const HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country";

/** `lines` under the file's header, imported as the importer reads a file: its events and its summary. */
async function importLines(
  lines: string[],
): Promise<{ events: StoredEvent[]; summary: ReturnType<typeof newUciSummary> }> {
  const summary = newUciSummary();
  const events: StoredEvent[] = [];
  for await (const e of importUci(parseCsv([[HEADER, ...lines].join("\n")]), summary)) events.push(e);
  return { events, summary };
}

Deno.test("londonToUtc() reads UK local time: GMT in winter, BST (UTC+1) in summer", () => {
  assert.equal(new Date(londonToUtc("2010-12-01 08:26:00")).toISOString(), "2010-12-01T08:26:00.000Z");
  assert.equal(new Date(londonToUtc("2011-06-15 10:00")).toISOString(), "2011-06-15T09:00:00.000Z");
  assert.equal(new Date(londonToUtc("2011-03-27 00:30:00")).toISOString(), "2011-03-27T00:30:00.000Z");
  assert.equal(new Date(londonToUtc("2011-03-27 02:30:00")).toISOString(), "2011-03-27T01:30:00.000Z");
  assert.equal(new Date(londonToUtc("2011-10-30 03:00:00")).toISOString(), "2011-10-30T03:00:00.000Z");
  assert.ok(Number.isNaN(londonToUtc("12/1/2010 8:26")));
});

Deno.test("londonToUtc() refuses a date or time that does not exist, rather than rolling it over", () => {
  // Date.UTC rolls 30 February over to 2 March and 25:00 to the next day: the order was imported days or hours off.
  for (
    const text of ["2011-02-30 10:00", "2011-12-32 10:00", "2011-13-01 10:00", "2011-06-10 25:00", "2011-06-10 10:75"]
  ) {
    assert.ok(Number.isNaN(londonToUtc(text)), text);
  }
  assert.equal(new Date(londonToUtc("2012-02-29 10:00")).toISOString(), "2012-02-29T10:00:00.000Z");
});

Deno.test("a UCI line dated on a day that does not exist is skipped as invalid_row, not imported on another day", async () => {
  const { events, summary } = await importLines([
    "536365,A,ITEM A,6,2011-02-30 08:26:00,2.55,17850.0,United Kingdom",
    "536366,A,ITEM A,6,2011-03-02 08:26:00,2.55,17850.0,United Kingdom",
  ]);
  assert.deepEqual(events.map((e) => (e as StoredEventOf<"order_completed">).properties.orderId), ["536366"]);
  assert.deepEqual(summary.skipped, { invalid_row: 1 });
  assert.deepEqual(summary.firstSkipped, { invalid_row: 2 });
});

Deno.test("a UCI Quantity or UnitPrice not written in plain decimal digits is skipped as invalid_row", async () => {
  // Number() read 0x10 as 16 and 1e3 as 1000: a corrupt field became an order of another amount.
  const bad = [["0x10", "2.55"], ["1e1", "2.55"], ["+6", "2.55"], ["6", "1e3"], ["6", "0x10"], ["6", ".5"], [
    "6",
    "5.",
  ]];
  const { events, summary } = await importLines([
    ...bad.map(([quantity, price], i) =>
      `5364${10 + i},A,ITEM A,${quantity},2010-12-01 08:26:00,${price},17850.0,United Kingdom`
    ),
    "536500,A,ITEM A,6,2010-12-01 08:27:00,2.55,17850.0,United Kingdom",
  ]);
  assert.deepEqual(events.map((e) => (e as StoredEventOf<"order_completed">).properties.orderId), ["536500"]);
  assert.deepEqual(summary.skipped, { invalid_row: bad.length });
  assert.deepEqual(summary.firstSkipped, { invalid_row: 2 });
});

Deno.test("UCI invoice lines group into orders; cancellations, missing customers, bad quantities and prices, fees and duplicates are counted", async () => {
  const { events, summary } = await importLines([
    "536365,A,ITEM A,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
    "536366,X,OTHER,1,2010-12-01 08:27:00,1.00,12000.0,France",
    '536365,BB,"ITEM, B",2,2010-12-01 08:27:00,3.39,17850.0,United Kingdom', // interleaved with 536366
    '536365,BB,"ITEM, B",2,2010-12-01 08:27:00,3.39,17850.0,United Kingdom', // duplicate line
    "536365,POST,POSTAGE,1,2010-12-01 08:27:00,18.00,17850.0,United Kingdom",
    "C536379,A,ITEM A,-1,2010-12-01 09:41:00,2.55,17850.0,United Kingdom",
    "536380,A,ITEM A,3,2010-12-01 09:42:00,2.55,,United Kingdom",
    "536381,A,ITEM A,0,2010-12-01 09:43:00,2.55,14000.0,United Kingdom",
    "536382,A,ITEM A,1,2010-12-01 09:44:00,0.00,14000.0,United Kingdom",
    "536383,A,ITEM A,1,not a date,1.00,14000.0,United Kingdom",
    "536366,Y,LATE LINE,1,2010-12-01 10:30:00,1.00,12000.0,France", // more than an hour later: a second order
  ]);
  assert.deepEqual(summary, {
    rows: 11,
    mapped: 3,
    rowsMapped: 4,
    skipped: {
      duplicate_line: 1,
      non_product_code: 1,
      cancellation: 1,
      missing_customer: 1,
      non_positive_quantity: 1,
      non_positive_price: 1,
      invalid_row: 1,
    },
    // The record (header = 1) where each reason first occurred, so that a user can find the row.
    firstSkipped: {
      duplicate_line: 5,
      non_product_code: 6,
      cancellation: 7,
      missing_customer: 8,
      non_positive_quantity: 9,
      non_positive_price: 10,
      invalid_row: 11,
    },
    splitInvoices: 1,
  });
  const orders = events as StoredEventOf<"order_completed">[];
  assert.deepEqual(orders.map((o) => [o.properties.orderId, o.userId, o.occurredAt, o.properties.total]), [
    ["536365", "17850", "2010-12-01T08:26:00.000Z", 22.08],
    ["536366", "12000", "2010-12-01T08:27:00.000Z", 1],
    ["536366-2", "12000", "2010-12-01T10:30:00.000Z", 1],
  ]);
  assert.deepEqual(orders[0].properties.items, [
    { productId: "A", quantity: 6, price: 2.55 },
    { productId: "BB", quantity: 2, price: 3.39 },
  ]);
  assert.equal(orders[0].properties.currency, "GBP");
  assert.equal(orders[0].properties.shippingCountry, "United Kingdom");
  await assert.rejects(async () => {
    for await (const _ of importUci(parseCsv(["a,b\n1,2"]))) { /* header check */ }
  }, /Cannot import UCI Online Retail CSV: header is "a,b"/);
});

Deno.test("UCI December 2010 replayed through the actors matches an independent aggregation of the file", async () => {
  // Independent figures: the rules, in order, applied line by line.
  const rows = await rawLines();
  const skipped: Record<string, number> = {};
  const units = new Map<string, number>();
  const revenueMillis = new Map<string, number>();
  const invoicesOf = new Map<string, Set<string>>();
  const seen = new Set<string>();
  let kept = 0;
  for (const row of rows) {
    const [invoice, code, , quantity, , price, customer] = row;
    const reason = invoice.startsWith("C")
      ? "cancellation"
      : customer === ""
      ? "missing_customer"
      : Number(quantity) <= 0
      ? "non_positive_quantity"
      : Number(price) <= 0
      ? "non_positive_price"
      : FEES.has(code)
      ? "non_product_code"
      : seen.has(row.join("|"))
      ? "duplicate_line"
      : undefined;
    if (reason) {
      skipped[reason] = (skipped[reason] ?? 0) + 1;
      continue;
    }
    seen.add(row.join("|"));
    kept++;
    units.set(code, (units.get(code) ?? 0) + Number(quantity));
    revenueMillis.set(code, (revenueMillis.get(code) ?? 0) + Number(quantity) * Math.round(Number(price) * 1000));
    const id = customer.replace(/\.0$/, "");
    invoicesOf.set(id, (invoicesOf.get(id) ?? new Set()).add(invoice));
  }
  const invoices = new Set([...invoicesOf.values()].flatMap((s) => [...s]));

  // The importer and the actors.
  const summary = newUciSummary();
  const events: StoredEvent[] = [];
  async function* month(records: AsyncIterable<string[]>) {
    let first = true;
    for await (const r of records) {
      if (first || r[4].startsWith(MONTH)) yield r;
      else if (r[4] > MONTH) return;
      first = false;
    }
  }
  const file = await Deno.open(path);
  for await (const e of importUci(month(parseCsv(textChunks(file.readable, { gzip: true }))), summary)) events.push(e);
  assert.equal(summary.rows, rows.length);
  assert.equal(rows.length, 42_481);
  assert.deepEqual(summary.skipped, skipped);
  assert.equal(summary.rowsMapped, kept);
  assert.equal(summary.mapped, invoices.size);
  assert.equal(summary.splitInvoices, 0);
  assert.equal(summary.rows, kept + Object.values(skipped).reduce((a, b) => a + b, 0));

  const result = await fold(events);
  assert.equal(result.deadLetters.length, 0);
  assert.equal(result.products.size, units.size);
  for (const [code, n] of units) {
    const p = result.products.get(code)!;
    assert.equal(p.unitsSold, n, `${code} units`);
    assert.equal(p.revenueMillis, revenueMillis.get(code), `${code} revenue`);
  }
  assert.equal(result.users.size, invoicesOf.size);
  for (const [customer, set] of invoicesOf) {
    assert.equal(result.users.get(customer)!.orders.count, set.size, `${customer} orders`);
  }
  assert.equal(result.global!.facts, invoices.size, "one activity fact per order reached the global actor");
});

Deno.test("a UCI invoice whose first line has no customer takes the customer of its later lines", async () => {
  // It used to fail the whole import with a raw validation error (an order without a userId).
  const { events, summary } = await importLines([
    "540001,85123A,HANGING HEART,2,2011-01-04 10:00:00,1.25,,United Kingdom",
    "540001,71053,LANTERN,1,2011-01-04 10:00:00,3.00,13047.0,United Kingdom",
  ]);
  assert.equal(events.length, 1);
  const order = events[0] as StoredEventOf<"order_completed">;
  assert.equal(order.userId, "13047");
  assert.deepEqual(order.properties.items.map((i) => i.productId), ["71053"]);
  assert.deepEqual(summary.skipped, { missing_customer: 1 });
});

Deno.test("a UCI line the canonical schema cannot carry is skipped with a reason; the import goes on", async () => {
  // Each of these lines used to stop the whole import with a raw ZodError, losing the invoices still open.
  const { events, summary } = await importLines([
    "536365,A,ITEM A,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
    "536366,X,GOOD,1,2010-12-01 08:27:00,1.00,12000.0,France",
    "536366,HUGE,PRICE,1,2010-12-01 08:27:00,2000000000,12000.0,France", // price × quantity over MAX_AMOUNT
    "536366,MANY,UNITS,2000000,2010-12-01 08:27:00,0.01,12000.0,France", // quantity over MAX_QUANTITY
    `536366,${"X".repeat(300)},LONG CODE,1,2010-12-01 08:27:00,1.00,12000.0,France`, // productId over 256
    "536367,A,ITEM A,1,2010-12-01 08:28:00,1.00,N/A,France", // a customer that is not an id
    `536368,A,ITEM A,1,2010-12-01 08:29:00,1.00,${"1".repeat(200)},France`, // userId over 128
    "536369,A,ITEM A,1,1969-12-31 23:00:00,1.00,14000.0,France", // before 1970: not storable
    "536370,A,ITEM A,600000,2010-12-01 08:30:00,900.00,14000.0,France", // each line fits, the total does not
    "536370,BB,ITEM B,600000,2010-12-01 08:30:00,900.00,14000.0,France",
    `536371,A,ITEM A,1,2010-12-01 08:31:00,1.00,14000.0,${"F".repeat(80)}`, // shippingCountry over 64
    "536372,A,ITEM A,2,2010-12-01 09:40:00,1.50,15000.0,United Kingdom",
  ]);
  const orders = events as StoredEventOf<"order_completed">[];
  assert.deepEqual(orders.map((o) => [o.properties.orderId, o.userId, o.properties.total]), [
    ["536365", "17850", 15.3],
    ["536366", "12000", 1],
    ["536372", "15000", 3],
  ]);
  assert.deepEqual(summary.skipped, { invalid_row: 4, invalid_customer: 2, invalid_order: 3 });
  // An order left out is located by its invoice's first line.
  assert.deepEqual(summary.firstSkipped, { invalid_row: 4, invalid_customer: 7, invalid_order: 10 });
  assert.equal(summary.rows, 12);
  assert.equal(summary.rowsMapped + 9, summary.rows);
});
