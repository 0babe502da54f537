// The advertising controller, owned by one unmodified @abandonware/bleno (a singleton per
// process). Several adverts share it by time slices: the venue's Eddystone-EID beacon and the
// BlueTrace peripheral each get a slice in turn (one second by default), so a phone scanning
// for 8 s hears both. bleno refuses new data while advertising (the controller answers 0x0C
// and bleno never calls back), so each change stops advertising, then starts it with the new
// data, and checks that it took; a change that fails is retried and counted. While a phone is
// connected (bleno serves one central at a time) nothing is advertised, so no second phone can
// connect into the middle of an exchange; advertising resumes at the disconnection.
import { createRequire } from 'node:module';
import type { Logger } from '../../core/log/index.js';
import { assignTransport, installHciSocket } from './hci-socket.js';
import { formatTransport, TransportSpec } from './transport.js';

/** One advert that takes its turn on the controller. */
export interface AdvertSlot {
  readonly name: string;
  /** What to advertise now, or null to sit this turn out (paused, or nothing valid to send). */
  frame(now: number): Buffer | null;
  /** When its frame changes next (unix ms), for a slot alone on the controller. */
  nextChangeAt(now: number): number | null;
  advertised(frame: Buffer, now: number): void;
  failed(why: string): void;
  /** The controller went off, or the slot's turn was skipped (the frame was null). */
  idle(state: 'controller-off' | 'paused' | 'stopped'): void;
}

export interface AdvertiserOptions {
  transport: TransportSpec;
  deviceId: number;
  /** Length of each slot's turn when more than one slot has a frame. */
  sliceMs: number;
  /** How long a start or stop may take before it counts as failed. */
  stepTimeoutMs?: number;
  now?: () => number;
}

export interface Bleno {
  state: string;
  /** The controller's address once bleno has read it ('unknown' before). */
  address: string;
  on(event: string, listener: (...args: unknown[]) => void): void;
  startAdvertisingWithEIRData(adv: Buffer, scan: Buffer, cb: (err?: Error | null) => void): void;
  stopAdvertising(cb?: () => void): void;
  setServices(services: unknown[], cb?: (err?: Error | null) => void): void;
  disconnect(): void;
  updateRssi(cb?: (err: Error | null, rssi: number) => void): void;
  PrimaryService: new (o: object) => unknown;
  Characteristic: new (o: object) => unknown;
}

const RECHECK_MS = 5000;

export class Advertiser {
  readonly transport: string;
  private readonly slots: AdvertSlot[] = [];
  private readonly blenoListeners: Array<(bleno: Bleno) => void> = [];
  private bleno: Bleno | null = null;
  private timer: NodeJS.Timeout | null = null;
  private generation = 0;
  private turn = 0;
  private current: Buffer | null = null;
  private advertising = false;
  private connected = false;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly options: AdvertiserOptions, private readonly log: Logger) {
    this.now = options.now ?? Date.now;
    this.transport = formatTransport(options.transport);
  }

  addSlot(slot: AdvertSlot): void {
    this.slots.push(slot);
  }

  /** This controller's address (lower case, colons, as noble names peers), once bleno has read it. */
  get address(): string | null {
    const a = this.bleno?.address;
    return a && a !== 'unknown' ? a.toLowerCase() : null;
  }

  /** Hands bleno to who serves GATT on this controller, once it is loaded. */
  withBleno(listener: (bleno: Bleno) => void): void {
    if (this.bleno) listener(this.bleno);
    else this.blenoListeners.push(listener);
  }

  start(): void {
    installHciSocket();
    assignTransport(this.options.deviceId, { transport: this.options.transport });
    // bleno is a singleton that takes its controller from this variable when it initialises.
    process.env.BLENO_HCI_DEVICE_ID = String(this.options.deviceId);
    const bleno = createRequire(import.meta.url)('@abandonware/bleno') as Bleno;
    this.bleno = bleno;
    bleno.on('stateChange', (state) => {
      this.log.info({ state, transport: this.transport }, 'advertising controller state');
      this.advertising = false;
      this.current = null;
      if (state === 'poweredOn') return this.step();
      this.clearTimer();
      for (const s of this.slots) s.idle('controller-off');
    });
    // A connected central stops the advert (controllers do); resume once it is gone.
    bleno.on('accept', () => {
      this.connected = true;
      this.advertising = false;
      this.current = null;
      this.generation++;
      this.clearTimer();
    });
    bleno.on('disconnect', () => {
      this.connected = false;
      if (!this.stopped) this.schedule(0);
    });
    for (const l of this.blenoListeners.splice(0)) l(bleno);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(ms: number): void {
    this.clearTimer();
    this.timer = setTimeout(() => this.step(), Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    this.timer.unref();
  }

  /** Gives the controller to the next slot with something to send, then schedules the next turn. */
  step(): void {
    const bleno = this.bleno;
    if (!bleno || this.stopped || this.connected || bleno.state !== 'poweredOn') return;
    const now = this.now();
    const frames = this.slots.map((s) => s.frame(now));
    const ready = frames.filter((f) => f !== null).length;
    this.slots.forEach((s, i) => frames[i] === null && s.idle('paused'));
    if (ready === 0) {
      if (this.advertising) bleno.stopAdvertising();
      this.advertising = false;
      this.current = null;
      return this.schedule(RECHECK_MS);
    }
    let i = this.turn % this.slots.length;
    while (frames[i] === null) i = (i + 1) % this.slots.length;
    this.turn = i + 1;
    const slot = this.slots[i];
    const frame = frames[i]!;
    const nextTurn = () => {
      const change = ready > 1 ? now + this.options.sliceMs : slot.nextChangeAt(now);
      this.schedule(change === null ? RECHECK_MS : Math.min(RECHECK_MS, change - this.now() + 20));
    };
    if (this.advertising && this.current?.equals(frame)) {
      slot.advertised(frame, now);
      return nextTurn();
    }
    const generation = ++this.generation;
    const failed = (why: string) => {
      if (generation !== this.generation) return;
      this.advertising = false;
      this.current = null;
      slot.failed(why);
      this.log.error({ why, slot: slot.name }, 'advertising change failed; retrying in 1 s');
      this.schedule(1000);
    };
    const guard = setTimeout(() => failed('no answer from the controller'), this.options.stepTimeoutMs ?? 3000);
    const begin = () => {
      if (generation !== this.generation) return clearTimeout(guard);
      bleno.startAdvertisingWithEIRData(frame, Buffer.alloc(0), (err) => {
        if (generation !== this.generation) return;
        clearTimeout(guard);
        if (err) return failed(err.message);
        this.advertising = true;
        this.current = frame;
        slot.advertised(frame, now);
        nextTurn();
      });
    };
    // Always stop first: bleno itself re-enables the old advert after a disconnection.
    bleno.stopAdvertising(begin);
  }

  stop(): void {
    this.stopped = true;
    this.generation++;
    this.clearTimer();
    if (this.bleno && this.advertising) this.bleno.stopAdvertising(() => undefined);
    if (this.bleno && this.connected) this.bleno.disconnect();
    for (const s of this.slots) s.idle('stopped');
  }
}
