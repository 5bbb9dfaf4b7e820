// deno-lint-ignore-file no-console
/**
 * `deno task import rees46|uci FILE [--url URL] [--batch N] [--timeout SECONDS]`: replays a public dataset into a
 * RUNNING engine over HTTP (`POST /v1/events`, JSON arrays of up to 500 events), using the
 * mappings of actors/import/. Events keep their historical `occurredAt` and their name-based
 * `eventId`, so a re-import is deduplicated. Progress goes to stderr; the summary (rows, events,
 * accepted, skipped rows by reason with the record, header = 1, where each reason first occurred) to
 * stdout; an event the engine refuses is named by its record (REES46) or invoice (UCI). A 503/429, a network error or no answer within --timeout is retried (bounded; a batch
 * posted again is deduplicated by its eventIds);
 * a 413 (the engine's MAX_BATCH_EVENTS or MAX_BODY_BYTES below the batch) splits the batch in halves until the
 * engine takes them, and the rest of the import posts batches of the largest it took; an event too large alone is
 * refused; any other 4xx/5xx stops the
 * import with the problem the engine returned.
 */
import { parseCsv, textChunks } from "../actors/import/csv.ts";
import { importRees46 } from "../actors/import/rees46.ts";
import { importUci, newUciSummary, type UciSummary } from "../actors/import/uci.ts";
import { type ImportSummary, newSummary } from "../actors/import/summary.ts";
import type { StoredEvent } from "../actors/events.ts";
import { isAbsolute } from "node:path";
import { optionNumber, optionParts } from "./cli_option.ts";
import { badUrlMessage, engineBaseUrl } from "./engine_url.ts";
import { escapeControls, quotedBody, shownName } from "./terminal_text.ts";

const USAGE = `usage: deno task import rees46|uci FILE [--url URL] [--batch N] [--timeout SECONDS]

  rees46 FILE   a REES46 Open CDP CSV (event_time,event_type,product_id,...); .gz is gunzipped
  uci FILE      the UCI Online Retail CSV (.csv or .csv.gz)
  --url URL     the running engine (default http://127.0.0.1:8080)
  --batch N     events per POST, 1..500 (default 500)
  --timeout S   seconds to wait for each POST's answer before posting it again, 1..3600 (default 60)`;

const MAX_RETRIES = 8;
/** What each layout's rows look like, for the message of an import that took none. */
const FORMATS = {
  rees46: "event_time like `2019-10-01 00:00:00 UTC`, event_type view, cart, remove_from_cart or purchase",
  uci: "InvoiceDate like `2010-12-01 08:26:00`, UK local time",
} as const;
/** Refusals printed one by one; the rest are only counted. */
const SHOWN_REFUSALS = 10;

/** Once rows are being read, what the import had done by a stop (it used to stop naming the cause alone). */
let doneSoFar: (() => string) | undefined;

function fail(message: string, code = 2): never {
  // A message may quote the file (its header) or the engine's answer: their control characters stay off the terminal.
  console.error(`import: ${message.split("\n").map(escapeControls).join("\n")}`);
  if (code === 2) console.error(USAGE);
  if (doneSoFar) console.error(`import: stopped ${doneSoFar()}`);
  Deno.exit(code);
}

interface Options {
  kind: "rees46" | "uci";
  file: string;
  url: string;
  batch: number;
  timeoutMs: number;
}

function parseArgs(args: readonly string[]): Options {
  const positional: string[] = [];
  let url = "http://127.0.0.1:8080";
  let batch = 500;
  let timeoutMs = 60_000;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      Deno.exit(0);
    }
    if (arg.startsWith("--")) {
      const [name, inline] = optionParts(arg);
      const value = inline ?? args[++i];
      if (value === undefined) fail(`${name} needs a value`);
      if (name === "--url") {
        url = engineBaseUrl(value) ?? fail(badUrlMessage(value));
      } else if (name === "--batch") {
        batch = optionNumber(value);
        if (!Number.isInteger(batch) || batch < 1 || batch > 500) {
          fail(`--batch must be an integer 1..500, got ${JSON.stringify(value)}`);
        }
      } else if (name === "--timeout") {
        const seconds = Number(value);
        if (!/^\d+$/.test(value) || seconds < 1 || seconds > 3600) {
          fail(`--timeout must be whole seconds 1..3600, got ${JSON.stringify(value)}`);
        }
        timeoutMs = seconds * 1000;
      } else {
        fail(`unknown option ${name}`);
      }
    } else {
      positional.push(arg);
    }
  }
  const [kind, file, ...extra] = positional;
  if (kind !== "rees46" && kind !== "uci") fail(kind === undefined ? "missing dataset" : `unknown dataset ${kind}`);
  if (!file) fail("missing FILE");
  if (extra.length > 0) fail(`unexpected argument ${extra[0]}`);
  return { kind, file, url, batch, timeoutMs };
}

/** The POST body of one event: the stored event less its server-side receipt time. */
function incoming(event: StoredEvent): Record<string, unknown> {
  const { receivedAt: _receivedAt, ...rest } = event;
  return rest;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An event the engine refused (400), with the problems it named. */
interface Refused {
  readonly event: StoredEvent;
  readonly message: string;
}

/**
 * The events of a 400 problem's `errors` (paths start with the event's index in the batch), or
 * undefined when it names none of them.
 */
function refusedEvents(text: string, events: readonly StoredEvent[]): Map<number, string> | undefined {
  let errors: unknown;
  try {
    errors = (JSON.parse(text) as { errors?: unknown }).errors;
  } catch {
    return undefined;
  }
  if (!Array.isArray(errors)) return undefined;
  const refused = new Map<number, string>();
  for (const error of errors as { path?: unknown; message?: unknown }[]) {
    const match = /^(\d+)\.(.*)$/.exec(String(error.path));
    const index = match ? Number(match[1]) : NaN;
    if (!(index < events.length)) return undefined;
    const said = `${match![2]}: ${String(error.message)}`;
    refused.set(index, refused.has(index) ? `${refused.get(index)}; ${said}` : said);
  }
  return refused.size > 0 ? refused : undefined;
}

/** Events per request: starts at --batch; after a 413, the largest batch the engine took meanwhile. */
interface BatchLimit {
  size: number;
  /** The largest batch accepted since the outermost 413 split in progress began (0: none yet). */
  largestAccepted: number;
  /** 413 splits in progress, nested: only the outermost sets `size`. */
  splitting: number;
  /** --timeout: a hung engine used to hang the import for good; a batch posted again is deduplicated. */
  readonly timeoutMs: number;
}

/** The `detail` of a problem response, else its text. */
function problemDetail(text: string): string {
  try {
    const detail = (JSON.parse(text) as { detail?: unknown }).detail;
    return typeof detail === "string" ? detail : text;
  } catch {
    return text;
  }
}

/**
 * Posts one batch; returns the number accepted. Retries 503/429 and network errors; events the
 * engine refuses (a 400 naming them) are reported to `onRefused` and the rest posted again; a 413
 * posts the batch again in halves (one event too large alone is refused) and sets `limit` to the largest part
 * taken; exits on anything else.
 */
async function post(
  url: string,
  events: readonly StoredEvent[],
  onRefused: (refused: Refused) => void,
  limit: BatchLimit,
): Promise<number> {
  const body = JSON.stringify(events.map(incoming));
  for (let attempt = 0;; attempt++) {
    let response: Response;
    let text: string;
    try {
      response = await fetch(`${url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(limit.timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      const reason = (error as Error).name === "TimeoutError"
        ? `no answer within ${limit.timeoutMs / 1000} s (--timeout)`
        : (error as Error).message;
      if (attempt >= MAX_RETRIES) fail(`cannot reach ${url}: ${reason}`, 1);
      console.error(`\nPOST ${url}/v1/events: ${reason}; posting the batch again`);
      await sleep(Math.min(10_000, 250 * 2 ** attempt));
      continue;
    }
    if (response.status === 202) {
      limit.largestAccepted = Math.max(limit.largestAccepted, events.length);
      const accepted = (JSON.parse(text) as { accepted?: number }).accepted;
      return typeof accepted === "number" ? accepted : events.length;
    }
    const refused = response.status === 400 ? refusedEvents(text, events) : undefined;
    if (refused) {
      // One bad row (say, dated in the future) used to stop the whole import.
      for (const [index, message] of refused) onRefused({ event: events[index], message });
      const rest = events.filter((_, index) => !refused.has(index));
      return rest.length > 0 ? await post(url, rest, onRefused, limit) : 0;
    }
    if (response.status === 413) {
      // An engine with lower request limits than --batch used to stop the import at its first batch.
      if (events.length === 1) {
        onRefused({ event: events[0], message: `too large: ${problemDetail(text)}` });
        return 0;
      }
      // Halves until the engine takes them; the rest of the import then posts batches of the largest it took, so
      // that one event too large alone (refused) does not make every later request a single event.
      const outer = limit.largestAccepted;
      limit.largestAccepted = 0;
      limit.splitting++;
      const half = Math.ceil(events.length / 2);
      let accepted = 0;
      for (let i = 0; i < events.length; i += half) {
        accepted += await post(url, events.slice(i, i + half), onRefused, limit);
      }
      limit.splitting--;
      const fits = limit.largestAccepted;
      limit.largestAccepted = Math.max(outer, fits);
      if (limit.splitting === 0 && fits > 0 && fits < limit.size) {
        limit.size = fits;
        console.error(`\nthe engine answered 413 (${problemDetail(text)}): posting ${fits} events per request`);
      }
      return accepted;
    }
    if ((response.status === 503 || response.status === 429) && attempt < MAX_RETRIES) {
      // Without the header (a proxy's answer), Number(null) was 0: nine retries in 34 ms.
      const header = response.headers.get("retry-after");
      const seconds = header === null || header.trim() === "" ? NaN : Number(header);
      await sleep(Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds, 60) * 1000 : 1000 * 2 ** attempt);
      continue;
    }
    console.error("");
    fail(
      `POST ${url}/v1/events answered ${response.status} (after ${attempt + 1} attempt(s)):\n${quotedBody(text)}`,
      1,
    );
  }
}

async function main(): Promise<void> {
  const options = parseArgs(Deno.args);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(options.file);
  } catch (error) {
    // `deno task` runs in the folder of deno.json wherever it is typed, so a relative FILE typed in a subfolder is
    // looked for there: say where, or "No such file" reads as wrong for a file in the folder the user is in.
    const relative = error instanceof Deno.errors.NotFound && !isAbsolute(options.file);
    fail(
      relative
        ? `cannot open ${options.file}: not found in ${Deno.cwd()} (a relative path starts there, and \`deno task\` ` +
          "runs in the repository's folder wherever it is typed: give the path from there, or an absolute one)"
        : `cannot open ${options.file}: ${(error as Error).message}`,
      1,
    );
  }
  // A directory opens, and only its first read failed, naming no path (a pipe, `<(gunzip -c …)`, is fine).
  if ((await file.stat()).isDirectory) fail(`cannot open ${options.file}: it is a directory, not a CSV file`, 1);
  try {
    // --timeout here too: a server that took the connection and never answered used to hang the import for good.
    const health = await fetch(`${options.url}/healthz`, { signal: AbortSignal.timeout(options.timeoutMs) });
    await health.body?.cancel();
  } catch (error) {
    const within = (error as Error).name === "TimeoutError" ? ` within ${options.timeoutMs / 1000} s (--timeout)` : "";
    fail(`no engine answers at ${options.url}${within} (start one with \`deno task start\`, or pass --url)`, 1);
  }

  const records = parseCsv(textChunks(file.readable, { gzip: options.file.endsWith(".gz") }));
  const summary: ImportSummary | UciSummary = options.kind === "uci" ? newUciSummary() : newSummary();
  const events = options.kind === "uci" ? importUci(records, summary as UciSummary) : importRees46(records, summary);

  const started = performance.now();
  const tty = Deno.stderr.isTerminal();
  let posted = 0;
  let accepted = 0;
  let lastProgress = 0;
  const progress = (final = false) => {
    const now = performance.now();
    if (!final && now - lastProgress < (tty ? 250 : 5000)) return;
    lastProgress = now;
    const seconds = (now - started) / 1000;
    const rate = seconds > 0 ? Math.round(posted / seconds) : 0;
    const line = `${options.kind}: ${summary.rows} rows read, ${posted} events posted, ${rate} events/s, ` +
      `${seconds.toFixed(1)} s`;
    if (tty) Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[2K${line}${final ? "\n" : ""}`));
    else console.error(line);
  };

  let refused = 0;
  /** The record (header = 1) of each REES46 event of the batch; a UCI order is named by its invoice. */
  const recordOf = new Map<StoredEvent, number>();
  const onRefused = ({ event, message }: Refused) => {
    if (refused++ < SHOWN_REFUSALS) {
      // The eventId alone did not say which row of the file to look at.
      // The invoice is the file's and the message the engine's: their control characters used to reach the terminal.
      const where = event.type === "order_completed" && options.kind === "uci"
        ? `invoice ${shownName(event.properties.orderId)}`
        : `record ${recordOf.get(event)}`;
      console.error(
        `\nrefused by the engine: ${where} (event ${event.eventId}, ${event.type}): ${escapeControls(message)}`,
      );
    }
  };
  const limit: BatchLimit = { size: options.batch, largestAccepted: 0, splitting: 0, timeoutMs: options.timeoutMs };
  let batch: StoredEvent[] = [];
  /** A batch is out to the engine (the events of `batch` are then posted, not yet accepted). */
  let posting = false;
  doneSoFar = () => {
    const pending = batch.length === 1 ? "the 1 event read since was" : `the ${batch.length} events read since were`;
    return `after ${summary.rows} rows: the engine accepted ${accepted} events before this; ${pending} ` +
      `${posting ? "being posted, not accepted" : "not posted"} (run the import again once this is fixed: the events ` +
      "already accepted come again with the same eventIds)";
  };
  // Ctrl-C used to end the import at once, saying nothing of what the engine had by then.
  const interrupted = (signal: "SIGINT" | "SIGTERM") => () => {
    console.error("");
    fail(`interrupted (${signal})`, signal === "SIGINT" ? 130 : 143);
  };
  const onSignal = { SIGINT: interrupted("SIGINT"), SIGTERM: interrupted("SIGTERM") };
  for (const [signal, listener] of Object.entries(onSignal)) Deno.addSignalListener(signal as Deno.Signal, listener);
  try {
    for await (const event of events) {
      batch.push(event);
      // REES46 yields each event as soon as its row is read: that row is the latest record.
      if (options.kind === "rees46") recordOf.set(event, summary.rows + 1);
      if (batch.length >= limit.size) {
        posting = true;
        accepted += await post(options.url, batch, onRefused, limit);
        posting = false;
        posted += batch.length;
        batch = [];
        recordOf.clear();
      }
      progress();
    }
    if (batch.length > 0) {
      posting = true;
      accepted += await post(options.url, batch, onRefused, limit);
      posting = false;
      posted += batch.length;
    }
  } catch (error) {
    console.error("");
    fail((error as Error).message, 1);
  }
  doneSoFar = undefined;
  for (const [signal, listener] of Object.entries(onSignal)) Deno.removeSignalListener(signal as Deno.Signal, listener);
  progress(true);

  const seconds = (performance.now() - started) / 1000;
  const skipped = Object.entries(summary.skipped).sort(([a], [b]) => a.localeCompare(b));
  const skippedRows = skipped.reduce((n, [, c]) => n + c, 0);
  console.log(
    `imported ${options.kind}: ${summary.rows} rows, ${summary.rowsMapped} rows mapped into ${summary.mapped} events, ` +
      `${posted} posted, ${accepted} accepted, ${skippedRows} rows skipped, in ${seconds.toFixed(1)} s`,
  );
  if (refused > 0) {
    console.log(
      `  refused by the engine (400, or 413 for an event too large alone): ${refused} event(s), the first ${SHOWN_REFUSALS} shown above`,
    );
  }
  const split = options.kind === "uci" ? (summary as UciSummary).splitInvoices : 0;
  if (split > 0) {
    console.log(`  invoices split in two orders (lines far apart in time): ${split}`);
  }
  for (const [reason, count] of skipped) {
    console.log(`  skipped ${reason}: ${count} (first at record ${summary.firstSkipped[reason]})`);
  }
  // A file of another layout (the UCI data as re-exported with `12/1/2010 8:26` dates, say) skips every row: that is
  // no import, though each row alone is only skipped.
  if (summary.rows > 0 && accepted === 0) {
    fail(
      `nothing was imported: every one of the ${summary.rows} rows was skipped or refused (reasons above). Is this ` +
        `the ${options.kind} layout the README describes (${FORMATS[options.kind]})?`,
      1,
    );
  }
}

if (import.meta.main) await main();
