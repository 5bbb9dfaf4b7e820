/**
 * What counts as a host name or address in settings (HOST, KAFKA_BROKERS, DATABASE_URL), written
 * once so that a name one setting takes is not refused by another.
 */

/** Four dot-separated decimal bytes, 0 to 255, without leading zeros. */
const IPV4 = /^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
/** One DNS label: letters, digits, inner hyphens; underscores too (container and service names). */
const LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/**
 * Whether `value` is a hostname or an IPv4 address (an all-digit last label is neither: a mistyped address or a port).
 * A fully qualified name may end with the root's dot (`kafka.svc.cluster.local.`, which skips the search list).
 */
export function isHostNameOrIpv4(value: string): boolean {
  if (IPV4.test(value)) return true;
  const name = value.endsWith(".") ? value.slice(0, -1) : value;
  const labels = name.split(".");
  return name.length <= 253 && labels.every((label) => LABEL.test(label)) && !/^\d+$/.test(labels[labels.length - 1]);
}

/** Whether `value` is an IPv6 address, written without brackets. */
export function isIpv6(value: string): boolean {
  return /^[0-9A-Fa-f:.]+$/.test(value) && value.includes(":") && URL.canParse(`http://[${value}]/`);
}
