// The sd_notify protocol: newline-separated `KEY=value` datagrams to the AF_UNIX socket named by
// $NOTIFY_SOCKET (systemd's Type=notify). Node has no AF_UNIX datagram sockets, so node-unix-socket sends
// them: a prebuilt N-API binary per platform (linux x64/arm64 glibc and musl, arm, darwin), so installing needs
// no compiler. Where no binary exists the daemon says so once at start and runs without sd_notify.
// Without $NOTIFY_SOCKET every call is a no-op, so the daemon runs the same anywhere.
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import type { DgramSocket } from 'node-unix-socket';

const require = createRequire(import.meta.url);

/** node-unix-socket's DgramSocket class, or why it cannot be loaded on this platform. */
function loadDgram(): { DgramSocket: typeof DgramSocket } | { error: string } {
  try {
    return { DgramSocket: (require('node-unix-socket') as typeof import('node-unix-socket')).DgramSocket };
  } catch (err) {
    return { error: (err as Error).message.split('\n')[0]! };
  }
}

export interface NotifierOptions {
  /** Environment to read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
}

/** Talks to systemd (or anything listening on $NOTIFY_SOCKET). */
export class SystemdNotifier implements Disposable {
  /** The socket path, or undefined when not run under a notify-aware supervisor. */
  readonly socketPath: string | undefined;
  /** Half of WATCHDOG_USEC in ms (systemd's advice), when the watchdog is on for this process. */
  readonly watchdogIntervalMs: number | undefined;
  private socket: DgramSocket | undefined;
  private readonly Dgram: typeof DgramSocket | undefined;
  private readonly logger: Logger | undefined;

  constructor(options: NotifierOptions = {}) {
    const env = options.env ?? process.env;
    this.logger = options.logger;
    let socketPath = env.NOTIFY_SOCKET || undefined;
    if (socketPath?.startsWith('@')) {
      // node-unix-socket takes a filesystem path: the abstract namespace cannot be reached through it.
      this.logger?.warn({ socket: socketPath }, 'abstract NOTIFY_SOCKET is not supported; sd_notify disabled');
      socketPath = undefined;
    }
    if (socketPath) {
      const dgram = loadDgram();
      if ('error' in dgram) {
        // One line at start, under systemd only, naming what is missing and what to do.
        this.logger?.error(
          { socket: socketPath, platform: `${process.platform}-${process.arch}`, cause: dgram.error },
          'sd_notify disabled: node-unix-socket has no binary for this platform, so systemd gets no READY/RELOADING/WATCHDOG; ' +
            'use Type=simple without WatchdogSec= in the unit, or install node-unix-socket for this platform',
        );
        socketPath = undefined;
      } else {
        this.Dgram = dgram.DgramSocket;
      }
    }
    this.socketPath = socketPath;
    const usec = Number(env.WATCHDOG_USEC);
    const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === process.pid;
    this.watchdogIntervalMs = socketPath && forUs && usec > 0 ? Math.max(1, Math.floor(usec / 2000)) : undefined;
  }

  get enabled(): boolean {
    return this.socketPath !== undefined;
  }

  /** Sends one datagram of `KEY=value` lines. Failures are logged, never thrown: systemd may be gone. */
  async send(fields: Record<string, string | number>): Promise<void> {
    const path = this.socketPath;
    if (!path || !this.Dgram) return;
    const text = Object.entries(fields)
      .map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`)
      .join('\n');
    const buf = Buffer.from(text);
    try {
      this.socket ??= new this.Dgram();
      await new Promise<void>((resolve, reject) => {
        this.socket!.sendTo(buf, 0, buf.length, path, (err) => (err ? reject(err) : resolve()));
      });
    } catch (err) {
      this.logger?.warn({ err, fields: Object.keys(fields) }, 'sd_notify failed');
    }
  }

  ready(status?: string): Promise<void> {
    return this.send(status === undefined ? { READY: 1 } : { READY: 1, STATUS: status });
  }

  /** RELOADING=1 with the CLOCK_MONOTONIC timestamp systemd ≥ 253 asks for (libuv's hrtime is that clock). */
  reloading(): Promise<void> {
    return this.send({ RELOADING: 1, MONOTONIC_USEC: (process.hrtime.bigint() / 1000n).toString() });
  }

  status(text: string): Promise<void> {
    return this.send({ STATUS: text });
  }

  watchdog(): Promise<void> {
    return this.send({ WATCHDOG: 1 });
  }

  stopping(status?: string): Promise<void> {
    return this.send(status === undefined ? { STOPPING: 1 } : { STOPPING: 1, STATUS: status });
  }

  [Symbol.dispose](): void {
    this.socket?.close();
    this.socket = undefined;
  }
}
