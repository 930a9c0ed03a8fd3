// The sd_notify protocol: newline-separated `KEY=value` datagrams to the AF_UNIX socket named by
// $NOTIFY_SOCKET (systemd's Type=notify). Node has no AF_UNIX datagram sockets: the native unix-dgram addon sends
// them where it was built (an optional dependency: without a compiler at install it is left out), else systemd's
// own `systemd-notify` does, one process per message; with neither, the daemon says so once at start.
// Without $NOTIFY_SOCKET every call is a no-op, so the daemon runs the same anywhere.
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import type { UnixDgramSocket } from 'unix-dgram';

const require = createRequire(import.meta.url);
const execFileAsync = promisify(execFile);

/** How the datagrams go out: the addon, systemd-notify at this path, or (with why) not at all. */
type Transport = { kind: 'unix-dgram'; dgram: typeof import('unix-dgram') } | { kind: 'systemd-notify'; bin: string } | { kind: 'none'; why: string };

function findTransport(env: NodeJS.ProcessEnv): Transport {
  let why: string;
  try {
    return { kind: 'unix-dgram', dgram: require('unix-dgram') as typeof import('unix-dgram') };
  } catch (err) {
    why = (err as Error).message.split('\n')[0]!;
  }
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter((d) => d !== '')) {
    const bin = path.join(dir, 'systemd-notify');
    try {
      accessSync(bin, constants.X_OK); // once, at start
      return { kind: 'systemd-notify', bin };
    } catch {
      // not in this directory
    }
  }
  return { kind: 'none', why: `${why}; no systemd-notify on the PATH` };
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
  private socket: UnixDgramSocket | undefined;
  private readonly transport: Transport | undefined;
  private readonly logger: Logger | undefined;

  constructor(options: NotifierOptions = {}) {
    const env = options.env ?? process.env;
    this.logger = options.logger;
    let socketPath = env.NOTIFY_SOCKET || undefined;
    if (socketPath?.startsWith('@')) {
      // unix-dgram copies the path with strncpy: the abstract namespace cannot be reached through it.
      this.logger?.warn({ socket: socketPath }, 'abstract NOTIFY_SOCKET is not supported; sd_notify disabled');
      socketPath = undefined;
    }
    if (socketPath) {
      this.transport = findTransport(env);
      // One line at start, under systemd only, naming what sends the notifications or what is missing.
      if (this.transport.kind === 'systemd-notify') {
        this.logger?.warn(
          { socket: socketPath, via: this.transport.bin },
          'sd_notify through systemd-notify: unix-dgram (a native addon, built at install when a C++ compiler and Python are there) is not installed. ' +
            'Its messages come from a child process, so the unit needs NotifyAccess=all; or reinstall hotconf with build tools',
        );
      } else if (this.transport.kind === 'none') {
        this.logger?.error(
          { socket: socketPath, cause: this.transport.why },
          'sd_notify disabled: neither unix-dgram (a native addon, built at install when a C++ compiler and Python are there) nor systemd-notify is available, ' +
            'so systemd gets no READY/RELOADING/WATCHDOG; reinstall hotconf with build tools, or use Type=simple without WatchdogSec=',
        );
        socketPath = undefined;
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
    const socket = this.socketPath;
    const transport = this.transport;
    if (!socket || !transport || transport.kind === 'none') return;
    const lines = Object.entries(fields).map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`);
    try {
      if (transport.kind === 'unix-dgram') {
        const buf = Buffer.from(lines.join('\n'));
        this.socket ??= transport.dgram.createSocket('unix_dgram');
        await new Promise<void>((resolve, reject) => {
          this.socket!.send(buf, 0, buf.length, socket, (err) => (err ? reject(err) : resolve()));
        });
      } else {
        // systemd-notify waits until the manager has read the message (its barrier), so it is still alive, and
        // its cgroup known, when systemd looks at who sent it. Awaited, so messages keep their order.
        await execFileAsync(transport.bin, lines, { timeout: 10_000, env: { ...process.env, NOTIFY_SOCKET: socket } });
      }
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
