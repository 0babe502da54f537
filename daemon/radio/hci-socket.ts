// Stands in for @abandonware/bluetooth-hci-socket, so unmodified noble and bleno can drive a
// controller behind any transport. Both construct `new BluetoothHciSocket()` and then bind it to
// a device id; the id says which transport (assignTransport). hci:N keeps the kernel socket.
import { EventEmitter } from 'node:events';
import Module, { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import { createH4Framer, H4Counters, H4_COMMAND, H4_EVENT } from './h4.js';
import { formatTransport, openStream, TransportSpec } from './transport.js';

interface NativeHciSocket extends EventEmitter {
  bindRaw(devId?: number): number;
  bindUser(devId?: number): number;
  bindControl(): number;
  isDevUp(): boolean;
  getDeviceList(): unknown[];
  setFilter(filter: Buffer): void;
  start(): void;
  stop(): void;
  write(data: Buffer): void;
}

export interface ControllerOptions {
  transport: TransportSpec;
  /** noble always asks for active scanning; a venue gateway must not send scan requests. */
  passiveScan?: boolean;
}

const controllers = new Map<number, ControllerOptions>();
let NativeSocket: (new () => NativeHciSocket) | null = null;
export const h4Counters: H4Counters = { packets: 0, resyncBytes: 0 };
/** Events dropped before noble saw them, or that made noble throw: malformed input, counted. */
export const hciGuardCounters = { malformedAdvReports: 0, eventsNobleRejected: 0 };

/**
 * An LE Advertising Report event whose reports add up exactly to its length: noble parses
 * these with a loop that throws (and prints) on anything else.
 */
export function wellFormedAdvertisingReport(packet: Buffer): boolean {
  if (packet.length < 5) return false;
  const num = packet[4];
  if (num === 0) return false;
  let at = 5;
  for (let i = 0; i < num; i++) {
    if (at + 9 > packet.length) return false;
    at += 9 + packet[at + 8] + 1;
  }
  return at === packet.length;
}

function isAdvertisingReport(packet: Buffer): boolean {
  return packet[0] === H4_EVENT && packet[1] === 0x3e && (packet.length < 4 || packet[3] === 0x02);
}

export function assignTransport(devId: number, options: ControllerOptions): void {
  controllers.set(devId, options);
}

const LE_SET_SCAN_PARAMETERS = 0x200b;
const LE_SET_EXTENDED_SCAN_PARAMETERS = 0x2041;

/** Rewrites noble's scan type (active) to passive in the scan-parameter commands. */
export function forcePassiveScan(packet: Buffer): Buffer {
  if (packet[0] !== H4_COMMAND || packet.length < 4) return packet;
  const opcode = packet.readUInt16LE(1);
  if (opcode === LE_SET_SCAN_PARAMETERS && packet.length >= 5) {
    const copy = Buffer.from(packet);
    copy[4] = 0x00;
    return copy;
  }
  if (opcode === LE_SET_EXTENDED_SCAN_PARAMETERS && packet.length >= 7) {
    // own address type, filter policy, PHYs bitmap, then 5 bytes per PHY starting with its type
    const copy = Buffer.from(packet);
    const phys = copy[6];
    let at = 7;
    for (let bit = 0; bit < 8; bit++) {
      if (phys & (1 << bit) && at < copy.length) {
        copy[at] = 0x00;
        at += 5;
      }
    }
    return copy;
  }
  return packet;
}

const RECONNECT_MS = 1000;
const NATIVE_RETRY_MS = 5000;

export class HciSocket extends EventEmitter {
  private native: NativeHciSocket | null = null;
  private stream: Duplex | null = null;
  private options: ControllerOptions | null = null;
  private devId = 0;
  private control = false;
  private started = false;
  private up = false;
  private closed = false;
  private queue: Buffer[] = [];
  private reconnectTimer: NodeJS.Timeout | null = null;

  bindRaw(devId?: number): number {
    return this.bind(devId, 'raw');
  }

  bindUser(devId?: number): number {
    return this.bind(devId, 'user');
  }

  /** bleno's management socket (long-term keys when pairing): no management API behind H4. */
  bindControl(): number {
    this.control = true;
    return 0;
  }

  private bind(devId: number | undefined, mode: 'raw' | 'user'): number {
    this.devId = devId ?? 0;
    const options = controllers.get(this.devId) ?? { transport: { kind: 'hci', devId: this.devId } };
    this.options = options;
    if (options.transport.kind === 'hci') {
      this.openNative(options.transport.devId, mode);
      return this.devId;
    }
    // Up until proven otherwise: writes queue until the stream is open, so noble powers on at once.
    this.up = true;
    this.connect();
    return this.devId;
  }

  /**
   * The kernel socket: no adapter (or no Bluetooth in the kernel) is reported as a powered-off
   * device and retried, never thrown: noble then powers on by itself once the adapter appears.
   */
  private openNative(devId: number, mode: 'raw' | 'user'): void {
    try {
      if (!NativeSocket) throw new Error('the kernel HCI socket addon (@abandonware/bluetooth-hci-socket) is not built');
      const native = new NativeSocket();
      if (mode === 'raw') native.bindRaw(devId);
      else native.bindUser(devId);
      native.on('data', (d: Buffer) => this.deliver(d));
      native.on('error', (e: Error) => this.emitError(e));
      if (this.started) native.start();
      this.native = native;
      this.lastError = null;
    } catch (err) {
      this.lastError = `hci:${devId}: ${(err as Error).message}`;
      if (this.closed || this.reconnectTimer) return;
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = null;
        if (!this.closed) this.openNative(devId, mode);
      }, NATIVE_RETRY_MS);
      this.reconnectTimer.unref();
    }
  }

  /** Why the controller is not reachable, if it is not. */
  lastError: string | null = null;

  private connect(): void {
    const t = this.options!.transport as Exclude<TransportSpec, { kind: 'hci' }>;
    openStream(t).then(
      (stream) => {
        if (this.closed) {
          stream.destroy();
          return;
        }
        this.stream = stream;
        this.up = true;
        this.lastError = null;
        const feed = createH4Framer((packet) => {
          if (this.started) this.deliver(packet);
        }, h4Counters);
        stream.on('data', (chunk: Buffer) => feed(chunk));
        stream.on('error', (e: Error) => this.emitError(e));
        stream.on('close', () => this.lost());
        for (const p of this.queue) stream.write(p);
        this.queue = [];
      },
      (err: Error) => {
        this.lastError = `${formatTransport(t)}: ${err.message}`;
        this.emitError(new Error(this.lastError));
        this.lost();
      },
    );
  }

  /**
   * Hands a packet to noble or bleno. A malformed event must never take the daemon down: bad
   * advertising reports are dropped here, and whatever else makes the library throw is caught.
   */
  private deliver(packet: Buffer): void {
    if (isAdvertisingReport(packet) && !wellFormedAdvertisingReport(packet)) {
      hciGuardCounters.malformedAdvReports++;
      return;
    }
    try {
      this.emit('data', packet);
    } catch {
      hciGuardCounters.eventsNobleRejected++;
    }
  }

  /** The controller went away: report it down (noble sees poweredOff) and keep trying. */
  private lost(): void {
    this.stream = null;
    this.up = false;
    this.queue = [];
    if (this.closed || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.closed) this.connect();
    }, RECONNECT_MS);
    this.reconnectTimer.unref();
  }

  private emitError(err: Error): void {
    // An 'error' with no listener would throw; noble and bleno listen after init().
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  isDevUp(): boolean {
    if (this.control) return false;
    if (this.options?.transport.kind === 'hci') return this.native?.isDevUp() ?? false;
    return this.up;
  }

  getDeviceList(): Array<{ devId: number; devUp: boolean; idVendor: null; idProduct: null; busNumber: null; deviceAddress: null }> {
    return [...controllers.keys()].map((devId) => ({ devId, devUp: true, idVendor: null, idProduct: null, busNumber: null, deviceAddress: null }));
  }

  setFilter(filter: Buffer): void {
    // A byte stream carries only this controller's packets: no kernel filter to set.
    this.native?.setFilter(filter);
  }

  start(): void {
    this.started = true;
    this.native?.start();
  }

  stop(): void {
    this.started = false;
    this.native?.stop();
  }

  write(data: Buffer): void {
    if (this.control) return;
    const packet = this.options?.passiveScan ? forcePassiveScan(data) : data;
    if (this.native) this.native.write(packet);
    else if (this.stream) this.stream.write(packet);
    else if (this.up) this.queue.push(packet);
  }

  /** Not part of the native surface: drops the link so it is opened afresh (supervisor's last step). */
  reopen(): void {
    if (this.native) {
      this.native.stop();
      this.native.start();
      return;
    }
    this.stream?.destroy();
  }

  /** Not part of the native surface: lets the daemon release a stream transport on shutdown. */
  close(): void {
    this.closed = true;
    this.started = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.stream?.destroy();
    this.native?.stop();
  }
}

let installed = false;

/**
 * Makes `require('@abandonware/bluetooth-hci-socket')` return HciSocket, for every copy noble
 * and bleno would load. Call before requiring them.
 */
export function installHciSocket(): void {
  if (installed) return;
  installed = true;
  const require = createRequire(import.meta.url);
  const paths = new Set<string>();
  for (const from of ['@abandonware/noble', '@abandonware/bleno']) {
    try {
      paths.add(createRequire(require.resolve(from)).resolve('@abandonware/bluetooth-hci-socket'));
    } catch {
      // not installed: nothing to stand in for
    }
  }
  for (const path of paths) {
    try {
      NativeSocket ??= require(path) as new () => NativeHciSocket;
    } catch {
      // The native addon did not build: hci:N is unavailable, H4 transports still work.
    }
    const m = new Module(path);
    m.filename = path;
    m.loaded = true;
    m.exports = HciSocket;
    require.cache[path] = m;
  }
}
