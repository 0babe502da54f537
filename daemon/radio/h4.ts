// H4 (UART transport, Core spec Vol 4 Part A): each HCI packet preceded by a one-byte type.
// The kernel's raw HCI socket delivers packets in the same shape, so noble and bleno parse
// what this framer emits unchanged.
import type { H4Counters } from '../../core/wire/status.js';
export const H4_COMMAND = 0x01;
export const H4_ACL = 0x02;
export const H4_SCO = 0x03;
export const H4_EVENT = 0x04;
export const H4_ISO = 0x05;

export type { H4Counters };

/** Header length (type byte included) and how to read the payload length from it. */
function packetLength(buf: Buffer, at: number, available: number): number | null {
  const type = buf[at];
  switch (type) {
    case H4_COMMAND:
      return available < 4 ? -1 : 4 + buf[at + 3];
    case H4_ACL:
      return available < 5 ? -1 : 5 + buf.readUInt16LE(at + 3);
    case H4_SCO:
      return available < 4 ? -1 : 4 + buf[at + 3];
    case H4_EVENT:
      return available < 3 ? -1 : 3 + buf[at + 2];
    case H4_ISO:
      return available < 5 ? -1 : 5 + (buf.readUInt16LE(at + 3) & 0x3fff);
    default:
      return null;
  }
}

/**
 * Splits a byte stream into whole H4 packets, whatever the chunking. Returns a function to
 * feed chunks into; each complete packet goes to `onPacket` (a copy, safe to keep).
 */
export function createH4Framer(onPacket: (packet: Buffer) => void, counters: H4Counters = { packets: 0, resyncBytes: 0 }) {
  let pending: Buffer = Buffer.alloc(0);
  return function feed(chunk: Buffer): void {
    const buf = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let at = 0;
    while (at < buf.length) {
      const len = packetLength(buf, at, buf.length - at);
      if (len === null) {
        counters.resyncBytes++;
        at++;
        continue;
      }
      if (len < 0 || at + len > buf.length) break;
      counters.packets++;
      onPacket(Buffer.from(buf.subarray(at, at + len)));
      at += len;
    }
    pending = at === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(at));
  };
}
