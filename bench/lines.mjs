// The JSON log lines of a child's stream, one parsed object per line; lines that are not JSON are skipped.
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
