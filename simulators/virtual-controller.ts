// The project's own virtual Bluetooth controller: speaks H4 over a unix socket, one emulated
// LE controller per client connection, and answers the HCI commands noble and bleno send. Its
// radio medium is a seeded crowd of phones (crowd.ts): while a controller scans, every advert
// of every phone becomes an LE Advertising Report, in real time.
import { EventEmitter } from 'node:events';
import { unlinkSync } from 'node:fs';
import net from 'node:net';
import { Crowd, CrowdOptions } from './crowd.js';
import { BluetracePhones, BluetracePhonesOptions, PhoneMedium } from './bluetrace-phones.js';
import { Link, LinkEnd, REASON_TIMEOUT } from './link.js';
import { createH4Framer, H4_ACL, H4_COMMAND, H4_EVENT } from '../daemon/radio/h4.js';

const EVT_DISCONNECTION_COMPLETE = 0x05;
const EVT_COMMAND_COMPLETE = 0x0e;
const EVT_COMMAND_STATUS = 0x0f;
const EVT_NUMBER_OF_COMPLETED_PACKETS = 0x13;
const EVT_LE_META = 0x3e;
const LE_CONNECTION_COMPLETE = 0x01;
const LE_ADVERTISING_REPORT = 0x02;
const LE_CONNECTION_UPDATE_COMPLETE = 0x03;
const LE_READ_REMOTE_FEATURES_COMPLETE = 0x04;
const STATUS_UNKNOWN_CONNECTION = 0x02;
/** LE's default data length: controllers hand L2CAP frames to their host in pieces this big. */
const ACL_FRAGMENT_BYTES = 27;
const ACL_START = 0x02;
const ACL_CONTINUATION = 0x01;
const ADV_IND = 0x00;
const ADV_DIRECT_IND = 0x01;
const ADV_NONCONN_IND = 0x03;
const SCAN_RSP = 0x04;
const ADDRESS_PUBLIC = 0x00;
const ADDRESS_RANDOM = 0x01;
const STATUS_OK = 0x00;
const STATUS_UNKNOWN_COMMAND = 0x01;
const STATUS_COMMAND_DISALLOWED = 0x0c;
/** RSSI at which controllers on the medium hear each other (a fixed, nearby distance). */
const PEER_RSSI = -55;

export interface VirtualControllerOptions {
  socketPath: string;
  /** The phones on the medium; none when absent. */
  crowd?: CrowdOptions;
  /** How often pending adverts are delivered, ms. */
  tickMs?: number;
  /** Recorded LE Advertising Report events (H4) given once to each controller that scans. */
  replay?: Buffer[];
  /** Phones running a BlueTrace app (OpenTrace's behaviour): they advertise, scan, connect and exchange. */
  bluetrace?: BluetracePhonesOptions;
  /** One-way latency of a connection's frames, ms (0: the next turn of the event loop). */
  linkLatencyMs?: number;
}

export interface ControllerCounters {
  commands: number;
  unknown_commands: number;
  reports: number;
  connections: number;
  aclIn: number;
  aclOut: number;
}

/** A connection the host asked for and the controller is still trying to make. */
interface PendingConnection {
  address: string;
  addressType: number;
}

/** One emulated controller, bound to one client connection. */
export class EmulatedController implements LinkEnd {
  readonly addressType = ADDRESS_PUBLIC;
  pendingConnection: PendingConnection | null = null;
  private readonly links = new Map<number, Link>();
  private readonly handles = new Map<Link, number>();
  /** Partial L2CAP frames from the host, per connection handle. */
  private readonly incoming = new Map<number, { length: number; cid: number; parts: Buffer[]; got: number }>();
  private nextHandle = 0x0040;
  readonly address: Buffer;
  scanEnabled = false;
  scanType = 0;
  advertising = false;
  advertisingData = Buffer.alloc(0);
  scanResponseData = Buffer.alloc(0);
  /** ADV_IND (0x00) and ADV_SCAN_IND (0x02) answer scan requests; ADV_NONCONN_IND does not. */
  advertisingType = ADV_IND;
  advertisingIntervalMs = 1280;
  nextAdvertAt = 0;
  replayed = false;
  /** A wedged controller keeps answering commands but reports nothing until it is reset. */
  wedged = false;
  readonly counters: ControllerCounters = { commands: 0, unknown_commands: 0, reports: 0, connections: 0, aclIn: 0, aclOut: 0 };

  constructor(private readonly socket: net.Socket, index: number) {
    this.address = Buffer.from([index & 0xff, 0x00, 0x00, 0xc0, 0xde, 0xc0]); // C0:DE:C0:00:00:nn, little-endian
    const feed = createH4Framer((packet) => this.onPacket(packet));
    socket.on('data', feed);
  }

  private send(packet: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(packet);
  }

  private commandComplete(opcode: number, params: Buffer): void {
    const p = Buffer.concat([Buffer.from([1, opcode & 0xff, opcode >> 8]), params]);
    this.send(Buffer.concat([Buffer.from([H4_EVENT, EVT_COMMAND_COMPLETE, p.length]), p]));
  }

  private commandStatus(opcode: number, status: number): void {
    this.send(Buffer.from([H4_EVENT, EVT_COMMAND_STATUS, 4, status, 1, opcode & 0xff, opcode >> 8]));
  }

  private leMeta(subevent: number, params: Buffer): void {
    this.send(Buffer.concat([Buffer.from([H4_EVENT, EVT_LE_META, params.length + 1, subevent]), params]));
  }

  private onPacket(packet: Buffer): void {
    if (packet[0] === H4_ACL) return this.onAcl(packet);
    if (packet[0] !== H4_COMMAND) return;
    this.counters.commands++;
    const opcode = packet.readUInt16LE(1);
    const params = packet.subarray(4);
    const ok = Buffer.from([STATUS_OK]);
    switch (opcode) {
      case 0x0c03: // Reset
        this.wedged = false;
        this.scanEnabled = false;
        this.advertising = false;
        this.pendingConnection = null;
        this.dropLinks();
        return this.commandComplete(opcode, ok);
      case 0x200d: // LE Create Connection: the medium completes it once the peer advertises connectably
        if (this.pendingConnection || params.length < 25) return this.commandStatus(opcode, STATUS_COMMAND_DISALLOWED);
        this.pendingConnection = { addressType: params[5], address: [...params.subarray(6, 12)].reverse().map((b) => b.toString(16).padStart(2, '0')).join(':') };
        return this.commandStatus(opcode, STATUS_OK);
      case 0x200e: // LE Create Connection Cancel
        if (!this.pendingConnection) return this.commandComplete(opcode, Buffer.from([STATUS_COMMAND_DISALLOWED]));
        this.pendingConnection = null;
        this.commandComplete(opcode, ok);
        return this.leMeta(LE_CONNECTION_COMPLETE, Buffer.concat([Buffer.from([STATUS_UNKNOWN_CONNECTION]), Buffer.alloc(17)]));
      case 0x0406: { // Disconnect
        const link = this.links.get(params.readUInt16LE(0) & 0x0fff);
        if (!link) return this.commandStatus(opcode, STATUS_UNKNOWN_CONNECTION);
        this.commandStatus(opcode, STATUS_OK);
        return link.close(this, params[2] ?? 0x13);
      }
      case 0x1405: { // Read RSSI
        const handle = params.readUInt16LE(0) & 0x0fff;
        const link = this.links.get(handle);
        const r = Buffer.alloc(4);
        r[0] = link ? STATUS_OK : STATUS_UNKNOWN_CONNECTION;
        r.writeUInt16LE(handle, 1);
        r.writeInt8(link ? link.rssi() : 127, 3);
        return this.commandComplete(opcode, r);
      }
      case 0x2013: { // LE Connection Update: granted as asked
        const handle = params.readUInt16LE(0) & 0x0fff;
        if (!this.links.has(handle)) return this.commandStatus(opcode, STATUS_UNKNOWN_CONNECTION);
        this.commandStatus(opcode, STATUS_OK);
        const p = Buffer.alloc(9);
        p.writeUInt16LE(handle, 1);
        p.writeUInt16LE(params.readUInt16LE(4), 3);
        p.writeUInt16LE(params.readUInt16LE(6), 5);
        p.writeUInt16LE(params.readUInt16LE(8), 7);
        return this.leMeta(LE_CONNECTION_UPDATE_COMPLETE, p);
      }
      case 0x2016: { // LE Read Remote Features
        const handle = params.readUInt16LE(0) & 0x0fff;
        if (!this.links.has(handle)) return this.commandStatus(opcode, STATUS_UNKNOWN_CONNECTION);
        this.commandStatus(opcode, STATUS_OK);
        const p = Buffer.alloc(11);
        p.writeUInt16LE(handle, 1);
        return this.leMeta(LE_READ_REMOTE_FEATURES_COMPLETE, p);
      }
      case 0x1001: // Read Local Version Information: HCI 5.0, manufacturer 0x05F1 (Linux Foundation)
        return this.commandComplete(opcode, Buffer.from([STATUS_OK, 0x09, 0x00, 0x00, 0x09, 0xf1, 0x05, 0x00, 0x00]));
      case 0x1002: // Read Local Supported Commands
        return this.commandComplete(opcode, Buffer.concat([ok, Buffer.alloc(64, 0xff)]));
      case 0x1003: // Read Local Supported Features: LE supported (byte 4 bit 6)
        return this.commandComplete(opcode, Buffer.from([STATUS_OK, 0, 0, 0, 0, 0x60, 0, 0, 0]));
      case 0x1005: // Read Buffer Size
        return this.commandComplete(opcode, Buffer.from([STATUS_OK, 0xfd, 0x03, 0x40, 0x08, 0x00, 0x00, 0x00]));
      case 0x1009: // Read BD_ADDR
        return this.commandComplete(opcode, Buffer.concat([ok, this.address]));
      case 0x0c6c: // Read LE Host Support
        return this.commandComplete(opcode, Buffer.from([STATUS_OK, 0x01, 0x00]));
      case 0x2002: // LE Read Buffer Size
        return this.commandComplete(opcode, Buffer.from([STATUS_OK, 0xfb, 0x00, 0x08]));
      case 0x2003: // LE Read Local Supported Features
        return this.commandComplete(opcode, Buffer.concat([ok, Buffer.alloc(8)]));
      case 0x200b: // LE Set Scan Parameters
        this.scanType = params[0] ?? 0;
        return this.commandComplete(opcode, ok);
      case 0x200c: // LE Set Scan Enable
        this.scanEnabled = params[0] === 1;
        return this.commandComplete(opcode, ok);
      case 0x2006: // LE Set Advertising Parameters: interval min in 0.625 ms units
        if (this.advertising) return this.commandComplete(opcode, Buffer.from([STATUS_COMMAND_DISALLOWED]));
        if (params.length >= 2) this.advertisingIntervalMs = Math.max(20, params.readUInt16LE(0) * 0.625);
        if (params.length >= 5) this.advertisingType = params[4];
        return this.commandComplete(opcode, ok);
      case 0x2008: // LE Set Advertising Data: length byte, then 31 bytes
        this.advertisingData = Buffer.from(params.subarray(1, 1 + Math.min(31, params[0] ?? 0)));
        return this.commandComplete(opcode, ok);
      case 0x200a: // LE Set Advertising Enable: as real controllers, re-enabling is disallowed
        if (params[0] === 1 && this.advertising) return this.commandComplete(opcode, Buffer.from([STATUS_COMMAND_DISALLOWED]));
        this.advertising = params[0] === 1;
        this.nextAdvertAt = Date.now();
        return this.commandComplete(opcode, ok);
      case 0x2005: // LE Set Random Address: not while advertising
        return this.commandComplete(opcode, Buffer.from([this.advertising ? STATUS_COMMAND_DISALLOWED : STATUS_OK]));
      case 0x2009: // LE Set Scan Response Data: length byte, then 31 bytes
        this.scanResponseData = Buffer.from(params.subarray(1, 1 + Math.min(31, params[0] ?? 0)));
        return this.commandComplete(opcode, ok);
      case 0x0c01: // Set Event Mask
      case 0x0c63: // Set Event Mask Page 2
      case 0x0c6d: // Write LE Host Support
      case 0x2001: // LE Set Event Mask
      case 0x2031: // LE Set Default PHY
        return this.commandComplete(opcode, ok);
      default:
        this.counters.unknown_commands++;
        return this.commandComplete(opcode, Buffer.from([STATUS_UNKNOWN_COMMAND]));
    }
  }

  /** ACL data from the host: reassembled into L2CAP frames for the link, each packet acknowledged. */
  private onAcl(packet: Buffer): void {
    if (packet.length < 5) return;
    const handle = packet.readUInt16LE(1) & 0x0fff;
    const flags = packet.readUInt16LE(1) >> 12;
    const data = packet.subarray(5, 5 + packet.readUInt16LE(3));
    const link = this.links.get(handle);
    if (!link) return;
    this.counters.aclIn++;
    const nocp = Buffer.from([H4_EVENT, EVT_NUMBER_OF_COMPLETED_PACKETS, 5, 1, handle & 0xff, handle >> 8, 1, 0]);
    if ((flags & 0x3) !== ACL_CONTINUATION) {
      if (data.length < 4) return this.send(nocp);
      this.incoming.set(handle, { length: data.readUInt16LE(0), cid: data.readUInt16LE(2), parts: [data.subarray(4)], got: data.length - 4 });
    } else {
      const partial = this.incoming.get(handle);
      if (!partial) return this.send(nocp);
      partial.parts.push(data);
      partial.got += data.length;
    }
    const frame = this.incoming.get(handle)!;
    if (frame.got >= frame.length) {
      this.incoming.delete(handle);
      link.send(this, frame.cid, Buffer.concat(frame.parts).subarray(0, frame.length));
    }
    this.send(nocp);
  }

  linkUp(link: Link, role: number): void {
    const handle = this.nextHandle;
    this.nextHandle = this.nextHandle >= 0x0eff ? 0x0040 : this.nextHandle + 1;
    this.links.set(handle, link);
    this.handles.set(link, handle);
    this.counters.connections++;
    if (role === 0) this.pendingConnection = null;
    else this.advertising = false; // a legacy advertiser stops once a central connects
    const peer = link.other(this);
    const p = Buffer.alloc(18);
    p[0] = STATUS_OK;
    p.writeUInt16LE(handle, 1);
    p[3] = role;
    p[4] = peer.addressType;
    Buffer.from(peer.addressString.split(':').reverse().join(''), 'hex').copy(p, 5);
    p.writeUInt16LE(0x0018, 11); // interval: 30 ms
    p.writeUInt16LE(0, 13); // latency
    p.writeUInt16LE(0x002a, 15); // supervision timeout: 420 ms
    this.leMeta(LE_CONNECTION_COMPLETE, p);
  }

  l2cap(link: Link, cid: number, payload: Buffer): void {
    const handle = this.handles.get(link);
    if (handle === undefined) return;
    const frame = Buffer.alloc(4 + payload.length);
    frame.writeUInt16LE(payload.length, 0);
    frame.writeUInt16LE(cid, 2);
    payload.copy(frame, 4);
    for (let at = 0; at < frame.length; at += ACL_FRAGMENT_BYTES) {
      const piece = frame.subarray(at, at + ACL_FRAGMENT_BYTES);
      const head = Buffer.alloc(5);
      head[0] = H4_ACL;
      head.writeUInt16LE(handle | ((at === 0 ? ACL_START : ACL_CONTINUATION) << 12), 1);
      head.writeUInt16LE(piece.length, 3);
      this.counters.aclOut++;
      this.send(Buffer.concat([head, piece]));
    }
  }

  linkDown(link: Link, reason: number): void {
    const handle = this.handles.get(link);
    if (handle === undefined) return;
    this.handles.delete(link);
    this.links.delete(handle);
    this.incoming.delete(handle);
    const p = Buffer.from([H4_EVENT, EVT_DISCONNECTION_COMPLETE, 4, STATUS_OK, handle & 0xff, handle >> 8, reason]);
    this.send(p);
  }

  /** The controller lost its host (or was reset): its links time out at the other end. */
  dropLinks(): void {
    for (const link of [...this.links.values()]) link.close(this, REASON_TIMEOUT, REASON_TIMEOUT);
  }

  /** Advertising connectably (ADV_IND or ADV_DIRECT_IND): a central may connect now. */
  get takesConnections(): boolean {
    return this.advertising && (this.advertisingType === ADV_IND || this.advertisingType === ADV_DIRECT_IND);
  }

  /** Colon-separated, most significant byte first, as noble prints addresses. */
  get addressString(): string {
    return [...this.address].reverse().map((b) => b.toString(16).padStart(2, '0')).join(':');
  }

  /** Writes a prepared packet; false when the socket's buffer is full (wait for 'drain'). */
  writeRaw(packet: Buffer): boolean {
    return !this.socket.destroyed && this.socket.write(packet);
  }

  get socketForDrain(): net.Socket {
    return this.socket;
  }

  /** One LE Advertising Report event with one report, as controllers send them. */
  report(data: Buffer, rssi: number, address: string, eventType = ADV_NONCONN_IND, addressType = ADDRESS_RANDOM): void {
    if (!this.scanEnabled || this.wedged || this.socket.destroyed) return;
    this.counters.reports++;
    this.send(advertisingReport(data, rssi, address, eventType, addressType));
  }
}

/** An LE Advertising Report event (H4) carrying one report. */
export function advertisingReport(data: Buffer, rssi: number, address: string, eventType = ADV_NONCONN_IND, addressType = ADDRESS_RANDOM): Buffer {
  const ev = Buffer.alloc(3 + 1 + 1 + 1 + 1 + 6 + 1 + data.length + 1);
  ev[0] = H4_EVENT;
  ev[1] = EVT_LE_META;
  ev[2] = ev.length - 3;
  ev[3] = LE_ADVERTISING_REPORT;
  ev[4] = 1;
  ev[5] = eventType;
  ev[6] = addressType;
  const addr = address.split(':').reverse();
  for (let i = 0; i < 6; i++) ev[7 + i] = parseInt(addr[i], 16);
  ev[13] = data.length;
  data.copy(ev, 14);
  ev.writeInt8(rssi, 14 + data.length);
  return ev;
}

export class VirtualController extends EventEmitter {
  private server: net.Server | null = null;
  private readonly controllers = new Set<EmulatedController>();
  private readonly crowd: Crowd | null;
  /** BlueTrace phones on the medium, when the options ask for them. */
  readonly bluetrace: BluetracePhones | null;
  private timer: NodeJS.Timeout | null = null;
  private last = Date.now();
  private connections = 0;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly options: VirtualControllerOptions) {
    super();
    this.crowd = options.crowd ? new Crowd(options.crowd) : null;
    this.bluetrace = options.bluetrace ? new BluetracePhones(options.bluetrace, this.phoneMedium()) : null;
  }

  /** What BlueTrace phones see of the medium: the controllers' adverts, and connections to them. */
  private phoneMedium(): PhoneMedium {
    return {
      advertisersOf: (service) => [...this.controllers].filter((c) => c.takesConnections && c.advertisingData.includes(service)).map((c) => c.addressString),
      connect: (phone, address, rssi) => {
        const target = [...this.controllers].find((c) => c.addressString === address && c.takesConnections);
        if (!target) return null;
        const link = new Link(phone, target, rssi, this.options.linkLatencyMs ?? 0);
        link.open();
        return link;
      },
      advertise: (data, rssi, address) => {
        for (const c of this.controllers) c.report(data, rssi, address, ADV_IND, ADDRESS_RANDOM);
      },
    };
  }

  /** Completes the connections hosts asked for, once their peer takes connections. */
  private connectPending(now: number): void {
    for (const c of this.controllers) {
      const want = c.pendingConnection;
      if (!want) continue;
      const peer = [...this.controllers].find((p) => p !== c && p.addressString === want.address && p.takesConnections);
      if (peer) {
        new Link(c, peer, () => PEER_RSSI, this.options.linkLatencyMs ?? 0).open();
        continue;
      }
      const phone = this.bluetrace?.byAddress(want.address, now);
      if (phone?.advertises) new Link(c, phone, () => phone.rssi(), this.options.linkLatencyMs ?? 0).open();
    }
  }

  async start(): Promise<void> {
    try {
      unlinkSync(this.options.socketPath);
    } catch {
      // no stale socket
    }
    const server = net.createServer((socket) => {
      socket.setNoDelay?.(true);
      const controller = new EmulatedController(socket, this.connections++);
      this.controllers.add(controller);
      this.sockets.add(socket);
      socket.on('close', () => {
        controller.dropLinks();
        this.controllers.delete(controller);
        this.sockets.delete(socket);
      });
      socket.on('error', () => socket.destroy());
      this.emit('connection', controller);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.socketPath, resolve);
    });
    this.last = Date.now();
    this.timer = setInterval(() => this.tick(), this.options.tickMs ?? 20);
  }

  private tick(): void {
    const now = Date.now();
    if (this.crowd) {
      this.crowd.advance(this.last, now, (data, rssi, address) => {
        for (const c of this.controllers) c.report(data, rssi, address);
      });
    }
    this.bluetrace?.tick(now);
    this.connectPending(now);
    if (this.options.replay) {
      for (const c of this.controllers) {
        if (!c.scanEnabled || c.replayed) continue;
        c.replayed = true;
        for (const ev of this.options.replay) c.writeRaw(ev);
        c.counters.reports += this.options.replay.length;
      }
    }
    // Controllers that advertise are heard by every other controller that scans (like btvirt).
    for (const adv of this.controllers) {
      if (!adv.advertising) continue;
      while (adv.nextAdvertAt <= now) {
        for (const c of this.controllers) {
          if (c === adv) continue;
          c.report(adv.advertisingData, PEER_RSSI, adv.addressString, adv.advertisingType, ADDRESS_PUBLIC);
          // An active scanner sends a scan request; a scannable advertiser answers with its scan response.
          const scannable = adv.advertisingType === ADV_IND || adv.advertisingType === 0x02;
          if (c.scanType === 1 && scannable) c.report(adv.scanResponseData, PEER_RSSI, adv.addressString, SCAN_RSP, ADDRESS_PUBLIC);
        }
        adv.nextAdvertAt += adv.advertisingIntervalMs;
      }
    }
    this.last = now;
  }

  /**
   * Benchmark mode: once a controller scans, writes `count` reports to it as fast as its socket
   * drains. Resolves with the number written.
   */
  async flood(count: number, next: (i: number) => Buffer): Promise<number> {
    let target: EmulatedController | undefined;
    while (!(target = [...this.controllers].find((c) => c.scanEnabled))) await new Promise((r) => setTimeout(r, 10));
    const socket = target.socketForDrain;
    for (let i = 0; i < count; i++) {
      if (!target.writeRaw(next(i))) {
        if (socket.destroyed) return i;
        await new Promise((r) => socket.once('drain', r));
      }
    }
    return count;
  }

  get crowdDone(): boolean {
    return this.crowd?.done() ?? true;
  }

  counters(): ControllerCounters[] {
    return [...this.controllers].map((c) => ({ ...c.counters }));
  }

  /** Sends a raw H4 packet to every scanning controller (tests feed malformed events this way). */
  inject(packet: Buffer): void {
    for (const c of this.controllers) if (c.scanEnabled) c.writeRaw(packet);
  }

  /** Wedges every controller: commands still answered, no reports until a Reset. */
  wedgeAll(): void {
    for (const c of this.controllers) c.wedged = true;
  }

  /** Drops every client connection (as a controller unplugged), keeping the socket listening. */
  disconnectAll(): void {
    for (const s of this.sockets) s.destroy();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.disconnectAll();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
