// deno-lint-ignore-file no-console
/**
 * `deno task tail alerts|recommendations [--from-beginning] [--url URL] [--interval MS] [--timeout S]`: prints an
 * output stream as it arrives, one JSON line per message, until Ctrl-C.
 *
 * - Production mode (KAFKA_BROKERS set): consumes the topic itself (TOPIC_PREFIX applied) with a
 *   throwaway consumer group `${GROUP_ID}.tail-<random>`; alerts and recommendations. Without
 *   --from-beginning it starts at the end of the topic.
 * - Embedded mode (KAFKA_BROKERS unset): never opens DATA_DIR (the running engine holds its lock);
 *   polls `GET /v1/alerts?order=stored` of the running engine, going on from where the last answer ended (every alert
 *   stored printed once, in the order stored, whatever its event time). Alerts only: the HTTP API serves recommendations
 *   per user (`GET /v1/users/{id}/recommendations`), not as a stream. A poll not answered within --timeout is
 *   given up and retried like a lost connection.
 */
import { Kafka, logLevel } from "kafkajs";
import { loadLogClientConfig, type LogClientConfig, reportConfigError, topicNames } from "../engine/config.ts";
import { ConfigError } from "../engine/errors.ts";
import { parseJson } from "../engine/json_parse.ts";
import { installRequestQueueFix } from "../engine/kafkajs_request_queue.ts";
import { optionNumber, optionParts } from "./cli_option.ts";
import { badUrlMessage, engineBaseUrl } from "./engine_url.ts";
import { printLine } from "./stdout_line.ts";
import { escapeControls, quotedBody } from "./terminal_text.ts";

const USAGE = `usage: deno task tail alerts|recommendations [--from-beginning] [--url URL] [--interval MS]
                       [--timeout S]

  Prints each message as one JSON line until Ctrl-C.
  Production mode (KAFKA_BROKERS set): reads the Kafka topic directly (alerts or recommendations)
    with a throwaway consumer group \${GROUP_ID}.tail-<random>.
  Embedded mode (KAFKA_BROKERS unset): polls GET /v1/alerts of the running engine at --url
    (default http://127.0.0.1:8080) every --interval ms (default 1000); alerts only. A poll not answered
    within --timeout seconds (default 10, 1..3600) is given up and retried.
  --from-beginning  also print what is already there (embedded: every stored alert, in the order stored)`;

function fail(message: string, code = 2): never {
  console.error(`tail: ${escapeControls(message)}`); // it may quote the engine's answer
  if (code === 2) console.error(USAGE);
  Deno.exit(code);
}

interface Options {
  stream: "alerts" | "recommendations";
  fromBeginning: boolean;
  url: string;
  interval: number;
  /** A poll the engine never answered (frozen, or the connection lost without a reset) used to stop tail for good. */
  timeoutMs: number;
}

function parseArgs(args: readonly string[]): Options {
  const options: Partial<Options> = {
    fromBeginning: false,
    url: "http://127.0.0.1:8080",
    interval: 1000,
    timeoutMs: 10_000,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      Deno.exit(0);
    } else if (arg === "--from-beginning") {
      options.fromBeginning = true;
    } else if (arg.startsWith("--")) {
      const [name, inline] = optionParts(arg);
      // It said "unknown option --from-beginning", an option tail knows.
      if (name === "--from-beginning") fail(`--from-beginning takes no value, got ${JSON.stringify(arg)}`);
      const value = inline ?? args[++i];
      if (value === undefined) fail(`${name} needs a value`);
      if (name === "--url") {
        options.url = engineBaseUrl(value) ?? fail(badUrlMessage(value));
      } else if (name === "--interval") {
        const n = optionNumber(value);
        if (!Number.isInteger(n) || n < 100 || n > 60_000) {
          fail(`--interval must be an integer 100..60000 (ms), got ${JSON.stringify(value)}`);
        }
        options.interval = n;
      } else if (name === "--timeout") {
        const seconds = Number(value);
        if (!/^\d+$/.test(value) || seconds < 1 || seconds > 3600) {
          fail(`--timeout must be whole seconds 1..3600, got ${JSON.stringify(value)}`);
        }
        options.timeoutMs = seconds * 1000;
      } else {
        fail(`unknown option ${name}`);
      }
    } else if (options.stream === undefined && (arg === "alerts" || arg === "recommendations")) {
      options.stream = arg;
    } else {
      fail(`unexpected argument ${JSON.stringify(arg)}`);
    }
  }
  if (options.stream === undefined) fail("name the stream: alerts or recommendations");
  return options as Options;
}

/**
 * One line of JSON (re-serialized when the payload is JSON, else the raw text), its control characters escaped:
 * JSON.stringify leaves DEL, C1 (a CSI, U+009B) and bidi overrides of a client's userId raw for the terminal.
 */
function line(value: unknown): string {
  return escapeControls(JSON.stringify(value));
}

/** A Kafka message's value as one line (see line()). */
function messageLine(text: string): string {
  try {
    return line(parseJson(text));
  } catch {
    return line({ raw: text });
  }
}

async function tailKafka(options: Options, config: LogClientConfig, brokers: string): Promise<void> {
  const topic = topicNames(config)[options.stream];
  const groupId = `${config.GROUP_ID}.tail-${crypto.randomUUID().slice(0, 8)}`;
  installRequestQueueFix(); // kafkajs#1704: no idle 1 ms polling loop (engine/kafkajs_request_queue.ts)
  const kafka = new Kafka({
    clientId: `${config.KAFKA_CLIENT_ID}-tail`,
    brokers: brokers.split(","),
    logLevel: logLevel.ERROR,
  });
  const consumer = kafka.consumer({ groupId });
  let stopping = false;
  /** Leaves the group, then exits 0; a signal while leaving exits at once (130, 143 for SIGTERM). */
  const stop = async (signal?: Deno.Signal) => {
    // A broker that does not answer held the leave for kafkajs's request timeout (30 s), and a second Ctrl-C was ignored.
    if (stopping) {
      if (signal) Deno.exit(signal === "SIGINT" ? 130 : 143);
      return;
    }
    stopping = true;
    if (signal) console.error("tail: stopping: leaving the consumer group (Ctrl-C again to stop at once)");
    await consumer.disconnect().catch(() => {});
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => void stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));
  // kafkajs gives up on an unreachable broker after its retries (about 20 s): name the setting, not a stack trace.
  const unusable = (error: unknown): never =>
    fail(`cannot read ${topic} from Kafka at KAFKA_BROKERS="${brokers}": ${(error as Error).message ?? error}`, 1);
  // A consumer kafkajs will not restart (it gave up while running) would otherwise leave tail silent for ever.
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (!payload.restart && !stopping) unusable(payload.error);
  });
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: options.fromBeginning });
    console.error(`tail: ${topic} on ${brokers} (group ${groupId}); Ctrl-C to stop`);
    await consumer.run({
      autoCommit: false,
      eachMessage: ({ message }) => {
        // A reader that closed (`| head`) stops tail as Ctrl-C does: it used to exit at once, its member left in the
        // group until the session timeout. Not awaited: disconnect() waits for this handler to return.
        if (message.value && !stopping) {
          printLine(messageLine(new TextDecoder().decode(message.value)), () => void stop());
        }
        return Promise.resolve();
      },
    });
  } catch (error) {
    if (!stopping) unusable(error); // a Ctrl-C while connecting is no unusable broker
  }
  await new Promise(() => {}); // runs until a signal
}

/** A page of GET /v1/alerts?order=stored: oldest stored first, and where the alerts stored after them begin. */
interface StoredPage {
  items: unknown[];
  next: string;
}

/** The page of alerts `text` holds, or undefined when it is not one (not JSON, or without `items` and `next`). */
function storedPage(text: string): StoredPage | undefined {
  let value: unknown;
  try {
    value = parseJson(text);
  } catch {
    return undefined;
  }
  const page = value as Partial<StoredPage> | null;
  return typeof page === "object" && page !== null && Array.isArray(page.items) && typeof page.next === "string"
    ? page as StoredPage
    : undefined;
}

/** Alerts read per poll: a backlog (--from-beginning, an import's alerts) is read page after page without waiting. */
const PAGE = 500;

async function tailHttp(options: Options): Promise<void> {
  if (options.stream !== "alerts") {
    fail(
      "in embedded mode (KAFKA_BROKERS unset) tail supports alerts only: the engine serves recommendations per user, " +
        "GET /v1/users/{id}/recommendations. Set KAFKA_BROKERS to tail the recommendations topic in production mode.",
      1,
    );
  }
  let stopping = false;
  const stop = () => {
    stopping = true;
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  // In the order alerts were stored, from where the last page ended: none missed (a late event's, an import's), none
  // printed twice, across restarts of the engine; without --from-beginning, from the end of what is stored.
  let position = options.fromBeginning ? "" : "&from=end";
  let warned = false;
  console.error(`tail: alerts from ${options.url} (polling every ${options.interval} ms); Ctrl-C to stop`);
  while (!stopping) {
    let full = false;
    try {
      const response = await fetch(`${options.url}/v1/alerts?order=stored&limit=${PAGE}${position}`, {
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      if (!response.ok) {
        const text = await response.text();
        // A 5xx (a database briefly unavailable: 503) passes like a lost connection; a 4xx will not.
        if (response.status >= 500) throw new Error(`it answered ${response.status}`);
        fail(`GET ${options.url}/v1/alerts answered ${response.status}: ${quotedBody(text)}`, 1);
      }
      const text = await response.text(); // a connection lost mid-answer throws here: retried below
      const page = storedPage(text);
      // Another server at a wrong --url (a web app serving its page on every path) is no lost connection: it was
      // retried for ever, tail silent after one "unavailable" line.
      if (!page) {
        fail(`GET ${options.url}/v1/alerts answered ${response.status} with no page of alerts: ${quotedBody(text)}`, 1);
      }
      for (const alert of page.items) printLine(line(alert));
      position = `&cursor=${encodeURIComponent(page.next)}`;
      full = page.items.length === PAGE;
      warned = false;
    } catch (error) {
      const reason = (error as Error).name === "TimeoutError"
        ? `no answer within ${options.timeoutMs / 1000} s (--timeout)`
        : (error as Error).message;
      if (!warned) console.error(`tail: ${options.url} is unavailable (${reason}); retrying`);
      warned = true;
    }
    if (!full) await new Promise((resolve) => setTimeout(resolve, options.interval));
  }
}

if (import.meta.main) {
  const options = parseArgs(Deno.args);
  let config: LogClientConfig;
  try {
    config = loadLogClientConfig(); // the engine's rules: a bad broker list is named, not retried for ever
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    Deno.exit(await reportConfigError(error));
  }
  if (config.KAFKA_BROKERS) await tailKafka(options, config, config.KAFKA_BROKERS);
  else await tailHttp(options);
}
