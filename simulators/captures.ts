// Reads HCI logs so the virtual controller can replay what real controllers sent: btsnoop
// (Android's btsnoop_hci.log; datalink 1001 unencapsulated or 1002 H4) and pcapng with
// LINKTYPE_BLUETOOTH_HCI_H4 (187) or _WITH_PHDR (201). Pure: bytes in, packets out.
import { H4_ACL, H4_COMMAND, H4_EVENT } from '../daemon/radio/h4.js';

export interface HciRecord {
  /** Microseconds, from the capture's own clock. */
  timeUs: number;
  /** true when the controller sent it (events, incoming ACL). */
  fromController: boolean;
  /** The packet with its H4 type byte first. */
  packet: Buffer;
}

export class CaptureFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CaptureFormatError';
  }
}

export function readHciCapture(buf: Buffer): HciRecord[] {
  if (buf.length >= 8 && buf.subarray(0, 8).equals(Buffer.from('btsnoop\0', 'latin1'))) return readBtsnoop(buf);
  if (buf.length >= 4 && buf.readUInt32LE(0) === 0x0a0d0d0a) return readPcapng(buf);
  throw new CaptureFormatError('not a btsnoop or pcapng file');
}

function readBtsnoop(buf: Buffer): HciRecord[] {
  if (buf.length < 16) throw new CaptureFormatError('btsnoop header truncated');
  const datalink = buf.readUInt32BE(12);
  if (datalink !== 1001 && datalink !== 1002) throw new CaptureFormatError(`btsnoop datalink ${datalink} is not HCI (1001 or 1002)`);
  const out: HciRecord[] = [];
  let at = 16;
  while (at + 24 <= buf.length) {
    const included = buf.readUInt32BE(at + 4);
    const flags = buf.readUInt32BE(at + 8);
    const timeUs = Number(buf.readBigUInt64BE(at + 16));
    const start = at + 24;
    if (start + included > buf.length) break; // a truncated last record: the log was cut
    const data = buf.subarray(start, start + included);
    const fromController = (flags & 1) === 1;
    if (datalink === 1002) out.push({ timeUs, fromController, packet: Buffer.from(data) });
    else {
      // Unencapsulated: bit 1 says command/event, bit 0 the direction.
      const type = flags & 2 ? (fromController ? H4_EVENT : H4_COMMAND) : H4_ACL;
      out.push({ timeUs, fromController, packet: Buffer.concat([Buffer.from([type]), data]) });
    }
    at = start + included;
  }
  return out;
}

function readPcapng(buf: Buffer): HciRecord[] {
  const out: HciRecord[] = [];
  const linktypes: number[] = [];
  let le = true;
  let at = 0;
  while (at + 12 <= buf.length) {
    const type = le ? buf.readUInt32LE(at) : buf.readUInt32BE(at);
    if (type === 0x0a0d0d0a) {
      le = buf.readUInt32LE(at + 8) === 0x1a2b3c4d;
      linktypes.length = 0; // interfaces are numbered per section
    }
    const len = le ? buf.readUInt32LE(at + 4) : buf.readUInt32BE(at + 4);
    if (len < 12 || at + len > buf.length) break;
    const u32 = (o: number) => (le ? buf.readUInt32LE(at + o) : buf.readUInt32BE(at + o));
    if (type === 1) linktypes.push(le ? buf.readUInt16LE(at + 8) : buf.readUInt16BE(at + 8));
    else if (type === 6) {
      const linktype = linktypes[u32(8)];
      const timeUs = u32(12) * 2 ** 32 + u32(16);
      const captured = u32(20);
      const data = buf.subarray(at + 28, at + 28 + captured);
      if (linktype === 201 && data.length > 4) {
        const direction = data.readUInt32BE(0);
        out.push({ timeUs, fromController: direction === 1, packet: Buffer.from(data.subarray(4)) });
      } else if (linktype === 187 && data.length > 0) {
        out.push({ timeUs, fromController: data[0] === H4_EVENT, packet: Buffer.from(data) });
      }
    }
    at += len;
  }
  return out;
}

/** The LE Advertising Report events a controller sent, as H4 packets ready to replay. */
export function advertisingReportEvents(records: HciRecord[]): HciRecord[] {
  return records.filter((r) => r.fromController && r.packet[0] === H4_EVENT && r.packet[1] === 0x3e && r.packet[3] === 0x02);
}
