// Types for the parts of unix-dgram (a native AF_UNIX datagram socket) that hotconf uses.
declare module 'unix-dgram' {
  import type { EventEmitter } from 'node:events';
  export interface UnixDgramSocket extends EventEmitter {
    bind(path: string): void;
    send(buf: Buffer, offset: number, length: number, path: string, callback?: (err?: Error) => void): void;
    close(): void;
  }
  export function createSocket(type: 'unix_dgram', listener?: (msg: Buffer, rinfo: { path?: string }) => void): UnixDgramSocket;
}
