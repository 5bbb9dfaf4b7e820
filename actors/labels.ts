/**
 * Labels clients supply (category, brand, payment method, shipping country): storefronts send a
 * blank one ("" or spaces) for what they do not know, which is none given, not a label named "".
 */

/** The label, or undefined when absent or blank. */
export function givenLabel(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}
