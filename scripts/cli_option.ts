/**
 * The tools' options, read one way: `--name=value` and `--name value`, split at the first "=" only (split("=", 2)
 * dropped what followed a second one, so that `--timeout=5=x` ran as `--timeout=5` and `--url=http://h/a=b` lost its
 * `=b`), and numbers in plain decimal digits.
 */

/** The option's name and its inline value (undefined when the value is the next argument). */
export function optionParts(arg: string): [name: string, inline: string | undefined] {
  const at = arg.indexOf("=");
  return at < 0 ? [arg, undefined] : [arg.slice(0, at), arg.slice(at + 1)];
}

/**
 * A number option's value (`--rate 50`, `--batch 100`) written in plain decimal digits, as the engine's settings and the
 * HTTP API's numbers are; NaN otherwise. Number() read `1e3` as 1000, `0x10` as 16 and `.5` as 0.5.
 */
export function optionNumber(value: string): number {
  return /^-?[0-9]+(\.[0-9]+)?$/.test(value) ? Number(value) : NaN;
}
