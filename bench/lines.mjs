// The suites' children: the JSON log lines of a child's stream (one parsed object per line; lines that are not
// JSON are skipped), and how a child is stopped.
import readline from 'node:readline';

/** Calls `onLine` with each JSON object a stream writes, one per line. */
export function onJsonLines(stream, onLine) {
  readline.createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
    let parsed;
    try {
      parsed = JSON.parse(line);
    } catch {
      return;
    }
    onLine(parsed);
  });
}

/** SIGTERM, up to 3 s for the child to exit, then SIGKILL. `state.exited` is kept by the caller's 'exit' listener. */
export async function stopChild(child, state) {
  if (state.exited) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
  if (!state.exited) child.kill('SIGKILL');
}
