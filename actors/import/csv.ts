/**
 * Streaming CSV (RFC 4180): quoted fields, doubled quotes, commas and newlines inside quotes,
 * LF or CRLF line ends. Records are yielded as they complete, so memory stays bounded whatever
 * the file size. Blank lines are skipped.
 */

const QUOTE = 34;
const COMMA = 44;
const LF = 10;

/** Parses text chunks into records of fields. */
export async function* parseCsv(chunks: AsyncIterable<string> | Iterable<string>): AsyncGenerator<string[]> {
  let record: string[] = [];
  let field = "";
  let inQuotes = false;
  /** Records yielded so far, to name where an unclosed quote started. */
  let records = 0;
  /** A quote just closed a quoted run: a second quote right after it is an escaped quote. */
  let closed = false;
  const end = (): string[] | undefined => {
    record.push(field.endsWith("\r") ? field.slice(0, -1) : field);
    const done = record;
    record = [];
    field = "";
    return done.length === 1 && done[0] === "" ? undefined : done;
  };
  for await (const chunk of chunks) {
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (inQuotes) {
        if (c === QUOTE) {
          field += chunk.slice(start, i);
          inQuotes = false;
          closed = true;
          start = i + 1;
        }
        continue;
      }
      if (closed) {
        closed = false;
        if (c === QUOTE) {
          field += '"';
          inQuotes = true;
          start = i + 1;
          continue;
        }
      }
      if (c === QUOTE) {
        field += chunk.slice(start, i);
        inQuotes = true;
        start = i + 1;
      } else if (c === COMMA) {
        record.push(field + chunk.slice(start, i));
        field = "";
        start = i + 1;
      } else if (c === LF) {
        field += chunk.slice(start, i);
        start = i + 1;
        const done = end();
        if (done) {
          records++;
          yield done;
        }
      }
    }
    field += chunk.slice(start);
  }
  if (inQuotes) {
    // Everything after the quote was swallowed into one field: say so rather than count one bad row.
    throw new CsvError(`a quoted field is not closed before the end of the file (record ${records + 1})`);
  }
  if (field !== "" || record.length > 0) {
    const done = end();
    if (done) yield done;
  }
}

/** A file that is not CSV as RFC 4180 defines it. */
export class CsvError extends Error {
  override readonly name = "CsvError";
}

/** The text of a byte stream, gunzipped first when `gzip` is set. */
export function textChunks(
  bytes: ReadableStream<Uint8Array<ArrayBuffer>>,
  options: { gzip?: boolean } = {},
): ReadableStream<string> {
  const raw: ReadableStream<Uint8Array<ArrayBuffer>> = options.gzip
    ? bytes.pipeThrough(new DecompressionStream("gzip"))
    : bytes;
  return raw.pipeThrough(new TextDecoderStream());
}

/** The most of a wrong header a refusal shows: a binary file's first "record" ran to kilobytes. */
const SHOWN_HEADER_CHARS = 200;

/**
 * Checks a header record against the expected column names; throws naming the difference, the header quoted as JSON
 * (its control characters escaped) and cut short, or saying the file is binary (NUL bytes, or bytes that are not UTF-8).
 */
export function expectHeader(header: readonly string[] | undefined, columns: readonly string[], source: string): void {
  // An empty file (a download cut short) was imported as 0 rows, exit code 0, as if it had been imported.
  if (header === undefined) {
    throw new Error(`Cannot import ${source}: the file is empty (no header), expected "${columns.join(",")}"`);
  }
  const got = header.map((h) => h.trim().replace(/^\uFEFF/, ""));
  if (got.length !== columns.length || got.some((name, i) => name !== columns[i])) {
    const expected = `expected "${columns.join(",")}"`;
    const text = got.join(",");
    if (text.includes("\u0000") || text.includes("\uFFFD")) {
      throw new Error(
        `Cannot import ${source}: it is not CSV text (a binary file: a spreadsheet such as an .xlsx? save it as CSV ` +
          `first); header ${expected}`,
      );
    }
    const shown = text.length > SHOWN_HEADER_CHARS ? `${text.slice(0, SHOWN_HEADER_CHARS)}…` : text;
    throw new Error(`Cannot import ${source}: header is ${JSON.stringify(shown)}, ${expected}`);
  }
}
