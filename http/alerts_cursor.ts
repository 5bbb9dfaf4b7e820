/**
 * The `cursor` of GET /v1/alerts: where a page ended, in the order the route lists alerts (occurredAt, newest first,
 * then alertId in code-point order; or, with `order=stored`, the order they were stored in), so that the next page
 * starts right after it. Keyset rather than an offset: alerts
 * stored or pruned between two pages neither repeat an alert nor skip one, and an instant split across pages goes on
 * with the alertId after the last one read. Written as base64url (no `+`, `/` or `=` to percent-encode in a URL) of the
 * JSON `[occurredAt ms, alertId]`; opaque to clients, which pass `next` back as they got it.
 */
import { z } from "zod";
import { fromBase64, toBase64 } from "../actors/base64.ts";
import { isStorableTime } from "../actors/events.ts";

/** The last alert of a page: the next one lists those after it. */
export interface AlertPosition {
  /** Its occurredAt, epoch milliseconds (alerts are stored to the millisecond). */
  readonly at: number;
  readonly alertId: string;
}

/**
 * Where a page of `order=stored` ended: after the alerts of the transactions before `xid` and those of `xid` up to
 * `alertId` in code-point order (`""`: none of `xid`'s). JSON `["stored", xid, alertId]`, xid in decimal digits.
 */
export interface StoredPosition {
  /** The storing transaction's id (PostgreSQL's xid8), in decimal digits: it can pass 2^53. */
  readonly xid: string;
  readonly alertId: string;
}

/** A cursor of either order. */
export type AlertCursor = AlertPosition | StoredPosition;

/** Whether `cursor` is one of `order=stored`. */
export function isStoredPosition(cursor: AlertCursor): cursor is StoredPosition {
  return "xid" in cursor;
}

/** Largest xid8: 2^64 - 1. */
const MAX_XID = 18_446_744_073_709_551_615n;

/** Longest cursor accepted: one of an alert id many times longer than the engine makes (ids hold keys ≤ 256). */
export const MAX_CURSOR_LENGTH = 4096;

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** The cursor naming `position`. */
export function encodeAlertCursor(position: AlertCursor): string {
  const value = isStoredPosition(position)
    ? ["stored", position.xid, position.alertId]
    : [position.at, position.alertId];
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  return toBase64(bytes).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** The position `text` names, or a reason it names none (it is not a cursor this route gave). */
export function decodeAlertCursor(text: string): AlertCursor | string {
  if (text.length === 0) return "must not be empty";
  if (text.length > MAX_CURSOR_LENGTH) return `must be at most ${MAX_CURSOR_LENGTH} characters`;
  if (!BASE64URL.test(text) || text.length % 4 === 1) return "is not a cursor (base64url, as `next` gave it)";
  let value: unknown;
  try {
    const standard = text.replaceAll("-", "+").replaceAll("_", "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(fromBase64(standard)));
  } catch {
    return "is not a cursor (base64url, as `next` gave it)";
  }
  if (Array.isArray(value) && value.length === 3 && value[0] === "stored") {
    return storedPosition(text, value[1], value[2]);
  }
  if (!Array.isArray(value) || value.length !== 2) return "is not a cursor (pass `next` as it was given)";
  const [at, alertId] = value;
  if (!Number.isSafeInteger(at) || !isStorableTime(at)) return "names no time an alert can have";
  if (!comparableId(alertId) || alertId.length === 0) return "names no alert id";
  const position = { at, alertId };
  // Only the cursors this route writes: other spellings of the same position (JSON spaces, spare bits) are not ours.
  return encodeAlertCursor(position) === text ? position : "is not a cursor (pass `next` as it was given)";
}

/** An id PostgreSQL can compare: one with NUL or a lone surrogate would fail the query, a 503 for a client's mistake. */
function comparableId(alertId: unknown): alertId is string {
  return typeof alertId === "string" && !alertId.includes("\u0000") && alertId.isWellFormed();
}

/** The `order=stored` position of the decoded `[xid, alertId]` of `text`, or why it names none. */
function storedPosition(text: string, xid: unknown, alertId: unknown): StoredPosition | string {
  if (typeof xid !== "string" || !/^(0|[1-9][0-9]{0,19})$/.test(xid) || BigInt(xid) > MAX_XID) {
    return "names no transaction id";
  }
  if (!comparableId(alertId)) return "names no alert id";
  const position = { xid, alertId };
  return encodeAlertCursor(position) === text ? position : "is not a cursor (pass `next` as it was given)";
}

/** The `cursor` query parameter: validated and decoded to the position it names. */
export const alertCursor = z.string().transform((text, ctx) => {
  const decoded = decodeAlertCursor(text);
  if (typeof decoded !== "string") return decoded;
  ctx.addIssue({ code: "custom", message: decoded, input: text });
  return z.NEVER;
});
