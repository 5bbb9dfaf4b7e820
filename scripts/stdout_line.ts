/**
 * One line to stdout for a tool that prints until stopped (`deno task tail`): a reader that went away (`| head -1`)
 * ends the tool quietly with exit code 0, as SIGPIPE ends a Unix filter. console.log drops the write's error, so tail
 * used to poll on for ever into a closed pipe, holding the shell's pipeline open.
 */
const encoder = new TextEncoder();

/**
 * Writes `text` and a newline to stdout whole; when stdout is a pipe whose reader has closed, calls `onClosed` (by
 * default: exits 0), which a tool holding a resource (tail's Kafka consumer group) uses to release it before exiting.
 */
export function printLine(text: string, onClosed: () => void = () => Deno.exit(0)): void {
  const bytes = encoder.encode(`${text}\n`);
  try {
    for (let written = 0; written < bytes.length;) written += Deno.stdout.writeSync(bytes.subarray(written));
  } catch (error) {
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
    onClosed();
  }
}
