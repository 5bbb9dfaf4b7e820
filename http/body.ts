/** Request bodies: content-type negotiation, a hard byte limit, and strict UTF-8 JSON / NDJSON parsing. */
import { PayloadTooLargeError, UnsupportedMediaTypeError, ValidationError } from "../engine/errors.ts";

/** Body formats the ingestion routes accept. */
export type BodyFormat = "json" | "ndjson";

const decoder = new TextDecoder("utf-8", { fatal: true });

/** The body format named by the request's content type, or UnsupportedMediaTypeError. */
export function bodyFormat(request: Request): BodyFormat {
  const type = (request.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type === "application/json" || type.endsWith("+json")) return "json";
  if (type === "application/x-ndjson" || type === "application/ndjson" || type === "application/jsonl") return "ndjson";
  throw new UnsupportedMediaTypeError(
    `content type ${type ? `'${type}'` : "(missing)"} is not accepted; use application/json or application/x-ndjson`,
  );
}

/** Reads at most `maxBytes` of the body; larger bodies are refused without reading them whole. */
export async function readBody(request: Request, maxBytes: number): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > maxBytes) throw new PayloadTooLargeError(`body of ${declared} bytes exceeds the limit of ${maxBytes}`);
  if (!request.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  while (true) {
    const { done, value } = await reader.read();
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

/** Parses a JSON body into a list of values; `batch` tells whether the client sent a list. */
export function parseBody(text: string, format: BodyFormat): { values: unknown[]; batch: boolean } {
  if (format === "ndjson") {
    const values: unknown[] = [];
    text.split("\n").forEach((line, index) => {
      if (line.trim() === "") return;
      try {
        values.push(JSON.parse(line));
      } catch (error) {
        throw new ValidationError(`line ${index + 1} is not valid JSON`, [
          { path: `line ${index + 1}`, message: (error as Error).message },
        ]);
      }
    });
    return { values, batch: true };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ValidationError("body is not valid JSON", [{ path: "(body)", message: (error as Error).message }]);
  }
  return Array.isArray(value) ? { values: value, batch: true } : { values: [value], batch: false };
}
