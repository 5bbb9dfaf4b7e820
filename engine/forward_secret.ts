/**
 * What tells a query forwarded by another instance of the group from a client's: the group's secret, shared through
 * PostgreSQL, as the value of the `x-engine-forwarded` header. A request whose header does not carry it is a client's
 * (routed to the key's owner, answered in the documented view), so that a client cannot make an instance answer from
 * its memory or checkpoint unrouted, nor get the stored form with the engine's bookkeeping.
 */
import { timingSafeEqual } from "node:crypto";
import { groupForwardSecret } from "../sql/forward_secrets.ts";
import type { Sql } from "./database.ts";

/** Request header marking a query forwarded by another instance; its value is the group's forward secret. */
export const FORWARDED_HEADER = "x-engine-forwarded";

/** Random bytes of a new secret: beyond guessing. */
const SECRET_BYTES = 32;

/** The group's forward secret, created (at random) by the first instance of the group to start. */
export function loadForwardSecret(sql: Sql, groupId: string): Promise<string> {
  return groupForwardSecret(sql, groupId, hex(crypto.getRandomValues(new Uint8Array(SECRET_BYTES))));
}

/** Bytes as lowercase hexadecimal: a header value as it is. */
const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

const encoder = new TextEncoder();

/** Whether `request` was forwarded by an instance of the group: its header carries `secret`, compared in constant time. */
export function isForwarded(request: Request, secret: string): boolean {
  const sent = request.headers.get(FORWARDED_HEADER);
  if (sent === null) return false;
  const a = encoder.encode(sent);
  const b = encoder.encode(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}
