/** Waiting for a step of a stop at most so long: a database that stops answering must not hold the stop for good. */

/** Whether `promise` settled within `ms` (its outcome ignored, also a late rejection); it goes on either way. */
export async function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settled = promise.then(() => true, () => true);
  const late = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}
