/**
 * Importers for public e-commerce datasets: streaming CSV parsing and pure row mapping to
 * canonical stored events, with a summary of what was mapped and what was skipped and why.
 * No file or network access here: callers pass a byte stream (e.g. `Deno.open(path)).readable`).
 */
export { expectHeader, parseCsv, textChunks } from "./csv.ts";
export { importRees46, mapRees46Row, REES46_COLUMNS } from "./rees46.ts";
export {
  importUci,
  INVOICE_GROUP_MINUTES,
  londonToUtc,
  NON_PRODUCT_CODES,
  UCI_COLUMNS,
  type UciSummary,
} from "./uci.ts";
export { type ImportSummary, newSummary } from "./summary.ts";
