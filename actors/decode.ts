/** Turns log records into validated messages, or a ValidationError naming what is wrong. */
import type { z } from "zod";
import type { LogRecord } from "../engine/log.ts";
import { ValidationError } from "../engine/errors.ts";
import { type StoredEvent, storedEvent } from "./events.ts";
import { zodProblems } from "./problems.ts";
import { safeParseFast } from "../engine/schema_check.ts";
import { parseJson } from "../engine/json_parse.ts";

const strict = new TextDecoder("utf-8", { fatal: true });
const lenient = new TextDecoder("utf-8");
const REPLACEMENT = "\uFFFD";

/**
 * UTF-8 bytes as text; throws a TypeError if they are not valid UTF-8. Decoding strictly costs 0.42
 * µs for a 200-byte fact here and leniently 0.12, so decode leniently: invalid bytes always come
 * out as U+FFFD, and only text containing one is decoded again strictly to tell the two apart.
 */
export function utf8Text(bytes: Uint8Array): string {
  const text = lenient.decode(bytes);
  return text.includes(REPLACEMENT) ? strict.decode(bytes) : text;
}

/** The record's value as parsed UTF-8 JSON. */
export function recordJson(record: LogRecord): unknown {
  if (!record.value) throw new ValidationError("record has no value");
  try {
    return parseJson(utf8Text(record.value));
  } catch (error) {
    throw new ValidationError(`record value is not UTF-8 JSON: ${(error as Error).message}`);
  }
}

/** Validates `json` against `schema`; `what` names the expected message in the error. */
export function validate<T extends z.ZodType>(schema: T, json: unknown, what: string): z.output<T> {
  const result = safeParseFast(schema, json);
  if (!result.success) {
    const problems = zodProblems(result.error);
    throw new ValidationError(
      `invalid ${what}: ${problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`,
      problems,
    );
  }
  return result.data;
}

/** Decodes UTF-8 JSON and validates it against the stored-event schema. */
export function decodeEvent(record: LogRecord): StoredEvent {
  return validate(storedEvent, recordJson(record), "event") as StoredEvent;
}
