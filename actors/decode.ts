/** Turns a log record into a validated stored event, or a ValidationError naming what is wrong. */
import type { LogRecord } from "../engine/log.ts";
import { ValidationError } from "../engine/errors.ts";
import { type StoredEvent, storedEvent } from "./events.ts";
import { zodProblems } from "./problems.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Decodes UTF-8 JSON and validates it against the stored-event schema. */
export function decodeEvent(record: LogRecord): StoredEvent {
  if (!record.value) throw new ValidationError("record has no value");
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(record.value));
  } catch (error) {
    throw new ValidationError(`record value is not UTF-8 JSON: ${(error as Error).message}`);
  }
  const result = storedEvent.safeParse(json);
  if (!result.success) {
    const problems = zodProblems(result.error);
    throw new ValidationError(`invalid event: ${problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`, problems);
  }
  return result.data as StoredEvent;
}
