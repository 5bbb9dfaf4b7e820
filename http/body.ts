/** Request bodies: content-type negotiation, a hard byte limit, and strict UTF-8 JSON / NDJSON parsing. */
import {
  type FieldProblem,
  MAX_LISTED_PROBLEMS,
  PayloadTooLargeError,
  RequestTimeoutError,
  UnsupportedMediaTypeError,
  ValidationError,
} from "../engine/errors.ts";
import { parseJson } from "../engine/json_parse.ts";

/** Body formats the ingestion routes accept. */
export type BodyFormat = "json" | "ndjson";

/** The media type of JSON bodies; any `+json` suffix type is read as JSON too. */
export const JSON_CONTENT_TYPE = "application/json";
/** Media types read as newline-delimited JSON, the preferred one first. */
export const NDJSON_CONTENT_TYPES = ["application/x-ndjson", "application/ndjson", "application/jsonl"] as const;

/**
 * Longest wait for the next bytes of a request body: a client that stops sending mid-upload without
 * closing its connection is answered 408, rather than holding its request (and what it sent) for ever.
 * Between chunks, not for the whole body, so that a slow but steady upload is not cut.
 */
export const BODY_IDLE_TIMEOUT_MS = 30_000;

const JSON_SUFFIX = "+json";
const NDJSON_SET = new Set<string>(NDJSON_CONTENT_TYPES);
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * The body format named by the request's content type, or UnsupportedMediaTypeError: also for a
 * compressed body (`content-encoding`) or a charset other than UTF-8, which would otherwise be read
 * as UTF-8 and refused, or misread, as text.
 */
export function bodyFormat(request: Request): BodyFormat {
  // A list (RFC 9110): empty elements, and an empty value, name no coding.
  const codings = (request.headers.get("content-encoding") ?? "").split(",").map((c) => c.trim().toLowerCase());
  const coding = codings.find((c) => c !== "" && c !== "identity");
  if (coding !== undefined) {
    throw new UnsupportedMediaTypeError(`content encoding '${coding}' is not accepted; send the body uncompressed`, {
      acceptEncoding: "identity",
    });
  }
  const [media, ...parameters] = (request.headers.get("content-type") ?? "").split(";");
  const charset = parameters.map((p) => p.trim().toLowerCase()).find((p) => p.startsWith("charset="));
  const named = charset?.slice("charset=".length).replaceAll('"', "");
  if (named !== undefined && named !== "utf-8" && named !== "utf8") {
    throw new UnsupportedMediaTypeError(`charset '${named}' is not accepted; send UTF-8`);
  }
  const type = media.trim().toLowerCase();
  if (type === JSON_CONTENT_TYPE || type.endsWith(JSON_SUFFIX)) return "json";
  if (NDJSON_SET.has(type)) return "ndjson";
  throw new UnsupportedMediaTypeError(
    `content type ${type ? `'${type}'` : "(missing)"} is not accepted; use ${JSON_CONTENT_TYPE} or ${
      NDJSON_CONTENT_TYPES[0]
    }`,
  );
}

/**
 * Reads at most `maxBytes` of the body; larger bodies are refused without reading them whole, and a body
 * none of whose bytes arrive for `idleTimeoutMs` is refused as timed out (RequestTimeoutError).
 */
export async function readBody(
  request: Request,
  maxBytes: number,
  idleTimeoutMs: number = BODY_IDLE_TIMEOUT_MS,
): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > maxBytes) throw new PayloadTooLargeError(`body of ${declared} bytes exceeds the limit of ${maxBytes}`);
  if (!request.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  while (true) {
    const { done, value } = await nextChunk(reader, idleTimeoutMs);
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new PayloadTooLargeError(`body exceeds the limit of ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  try {
    return decoder.decode(bytes);
  } catch {
    throw new ValidationError("body is not valid UTF-8", [{ path: "(body)", message: "invalid UTF-8" }]);
  }
}

/**
 * The next chunk of a body, or a ValidationError (400) when it cannot be read to its end: the client closed the
 * connection mid-upload, or sent less than it declared. Its fault, not the server's: no 500 and no error log.
 * A RequestTimeoutError (408), the body cancelled, when nothing arrives within `idleTimeoutMs`.
 */
async function nextChunk(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  idleTimeoutMs: number,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const idle = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), idleTimeoutMs));
  try {
    const chunk = await Promise.race([reader.read(), idle]);
    if (chunk !== null) return chunk;
  } catch {
    throw new ValidationError("the request body could not be read to its end", [
      { path: "(body)", message: "incomplete: the connection closed before the body ended" },
    ]);
  } finally {
    clearTimeout(timer);
  }
  await reader.cancel().catch(() => {});
  throw new RequestTimeoutError(
    `no byte of the request body arrived for ${idleTimeoutMs / 1000} s; send the whole body without pausing`,
  );
}

/**
 * Parses a JSON body into a list of values; `batch` tells whether the client sent a list. NDJSON
 * with more than `maxValues` lines is refused before any line is parsed.
 */
export function parseBody(
  text: string,
  format: BodyFormat,
  maxValues = Number.POSITIVE_INFINITY,
): { values: unknown[]; batch: boolean } {
  if (format === "ndjson") {
    const lines = text.split("\n");
    const count = lines.reduce((n, line) => (line.trim() === "" ? n : n + 1), 0);
    if (count > maxValues) {
      throw new PayloadTooLargeError(`${count} events exceed the limit of ${maxValues} per request`);
    }
    const values: unknown[] = [];
    const problems: FieldProblem[] = [];
    lines.forEach((line, index) => {
      if (line.trim() === "") return;
      try {
        values.push(parseJson(line));
      } catch (error) {
        problems.push({ path: `line ${index + 1}`, message: (error as Error).message });
      }
    });
    if (problems.length > 0) {
      const cut = problems.length > MAX_LISTED_PROBLEMS ? `; only the first ${MAX_LISTED_PROBLEMS} are listed` : "";
      throw new ValidationError(
        `${problems.length} line(s) are not valid JSON; none was accepted${cut}`,
        problems.slice(0, MAX_LISTED_PROBLEMS),
      );
    }
    return { values, batch: true };
  }
  let value: unknown;
  try {
    value = parseJson(text);
  } catch (error) {
    throw new ValidationError("body is not valid JSON", [{ path: "(body)", message: (error as Error).message }]);
  }
  return Array.isArray(value) ? { values: value, batch: true } : { values: [value], batch: false };
}
