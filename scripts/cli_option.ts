/**
 * `--name=value` and `--name value` for the tools' options, split at the first "=" only: split("=", 2) dropped what
 * followed a second one, so that `--timeout=5=x` ran as `--timeout=5` and `--url=http://h/a=b` lost its `=b`.
 */

/** The option's name and its inline value (undefined when the value is the next argument). */
export function optionParts(arg: string): [name: string, inline: string | undefined] {
  const at = arg.indexOf("=");
  return at < 0 ? [arg, undefined] : [arg.slice(0, at), arg.slice(at + 1)];
}
