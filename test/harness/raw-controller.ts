// A bare H4 host for tests: sends HCI commands to a controller behind a unix socket (BlueZ's
// btvirt, the virtual controller) and collects the LE Advertising Reports it sends.
import net from 'node:net';
import { createH4Framer } from '../../daemon/radio/h4.js';

export interface RawReport {
  /** 0 ADV_IND, 2 ADV_SCAN_IND, 3 ADV_NONCONN_IND, 4 SCAN_RSP */
  type: number;
  address: string;
  data: Buffer;
  rssi: number;
  at: number;
}

export class RawController {
  readonly reports: RawReport[] = [];
  private pending = new Map<number, (params: Buffer) => void>();

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', createH4Framer((p) => this.onPacket(p)));
    socket.on('error', () => undefined);
  }

  static connect(path: string): Promise<RawController> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection({ path }, () => resolve(new RawController(s)));
      s.once('error', reject);
    });
  }

  get closed(): boolean {
    return this.socket.destroyed;
  }

  private onPacket(p: Buffer): void {
    if (p[0] !== 0x04) return;
    if (p[1] === 0x0e && p.length >= 6) {
      const opcode = p.readUInt16LE(4);
      this.pending.get(opcode)?.(p.subarray(6));
      this.pending.delete(opcode);
    } else if (p[1] === 0x3e && p[3] === 0x02 && p.length >= 15) {
      const len = p[13];
      this.reports.push({
        type: p[5],
        address: [...p.subarray(7, 13)].reverse().map((b) => b.toString(16).padStart(2, '0')).join(':'),
        data: Buffer.from(p.subarray(14, 14 + len)),
        rssi: p.readInt8(14 + len),
        at: Date.now(),
      });
    }
  }

  /** Sends a command; resolves with the Command Complete return parameters (status first). */
  command(opcode: number, params: Buffer = Buffer.alloc(0), timeoutMs = 3000): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no Command Complete for 0x${opcode.toString(16)}`)), timeoutMs);
      this.pending.set(opcode, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.socket.write(Buffer.concat([Buffer.from([0x01, opcode & 0xff, opcode >> 8, params.length]), params]));
    });
  }

  async startScanning(active = false): Promise<void> {
    await this.command(0x0c03);
    await this.command(0x200b, Buffer.from([active ? 0x01 : 0x00, 0x10, 0x00, 0x10, 0x00, 0x00, 0x00]));
    await this.command(0x200c, Buffer.from([0x01, 0x00])); // enable, duplicates not filtered
  }

  /** Advertising of `data` (≤ 31 bytes): non-connectable, or scannable with a scan response. */
  async prepareAdvertising(data: Buffer, scanResponse?: Buffer): Promise<void> {
    const field = (b: Buffer) => {
      const padded = Buffer.alloc(32);
      padded[0] = b.length;
      b.copy(padded, 1);
      return padded;
    };
    await this.command(0x0c03);
    const type = scanResponse ? 0x00 : 0x03; // ADV_IND or ADV_NONCONN_IND
    await this.command(0x2006, Buffer.from([0xa0, 0x00, 0xa0, 0x00, type, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0x07, 0x00]));
    await this.command(0x2008, field(data));
    if (scanResponse) await this.command(0x2009, field(scanResponse));
  }

  async setAdvertising(on: boolean): Promise<number> {
    return (await this.command(0x200a, Buffer.from([on ? 1 : 0])))[0];
  }

  close(): void {
    this.socket.destroy();
  }
}
