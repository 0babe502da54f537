// The venue beacon: Eddystone-EID advertised with unmodified @abandonware/bleno. bleno refuses
// new data while advertising (the controller answers 0x0C and bleno never calls back), so each
// rotation stops advertising, then starts it with the new EID, and checks that it took; a
// rotation that fails is retried and counted, never silently lost.
import { createRequire } from 'node:module';
import type { Logger } from '../../core/log/index.js';
import type { BeaconStatus } from '../../core/wire/status.js';
import { computeEid, eddystoneEidAdvertisingData, quantumStart } from '../../core/protocols/index.js';
import { assignTransport, installHciSocket } from './hci-socket.js';
import { formatTransport, TransportSpec } from './transport.js';

export interface VenueBeaconOptions {
  transport: TransportSpec;
  deviceId: number;
  identityKey: Buffer;
  exponent: number;
  /** Calibrated TX power at 0 m, in the frame. */
  txPowerDbm: number;
  /** Unix seconds at which the beacon time counter is 0. */
  epochS: number;
  /** Whether EIDs may go out now (the clock policy); re-checked every few seconds. */
  mayAdvertise?: () => boolean;
  now?: () => number;
  /** How long a start or stop may take before it counts as failed. */
  stepTimeoutMs?: number;
}

export type { BeaconStatus };

interface Bleno {
  state: string;
  on(event: string, listener: (...args: unknown[]) => void): void;
  startAdvertisingWithEIRData(adv: Buffer, scan: Buffer, cb: (err?: Error | null) => void): void;
  stopAdvertising(cb: () => void): void;
}

export class VenueBeacon {
  readonly status: BeaconStatus;
  private bleno: Bleno | null = null;
  private timer: NodeJS.Timeout | null = null;
  private generation = 0;
  private advertising = false;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly options: VenueBeaconOptions, private readonly log: Logger) {
    this.now = options.now ?? Date.now;
    this.status = {
      state: 'starting', transport: formatTransport(options.transport), eid: null, quantumStart: null,
      nextRotationAt: null, rotations: 0, rotationFailures: 0,
    };
  }

  /** The beacon time counter now. */
  counter(): number {
    return Math.floor(this.now() / 1000) - this.options.epochS;
  }

  start(): void {
    installHciSocket();
    assignTransport(this.options.deviceId, { transport: this.options.transport });
    // bleno is a singleton that takes its controller from this variable when it initialises.
    process.env.BLENO_HCI_DEVICE_ID = String(this.options.deviceId);
    const bleno = createRequire(import.meta.url)('@abandonware/bleno') as Bleno;
    this.bleno = bleno;
    bleno.on('stateChange', (state) => {
      this.log.info({ state, transport: this.status.transport }, 'beacon controller state');
      if (state === 'poweredOn') {
        this.advertising = false;
        this.rotate();
      } else {
        this.advertising = false;
        this.status.state = 'controller-off';
        this.clearTimer();
      }
    });
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(ms: number): void {
    this.clearTimer();
    this.timer = setTimeout(() => this.rotate(), Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    this.timer.unref();
  }

  /** Advertises the EID of the current quantum (stopping the old one first), then schedules the next. */
  rotate(): void {
    const bleno = this.bleno;
    if (!bleno || this.stopped || bleno.state !== 'poweredOn') return;
    const generation = ++this.generation;
    const timeoutMs = this.options.stepTimeoutMs ?? 3000;
    if (this.options.mayAdvertise && !this.options.mayAdvertise()) {
      this.status.state = 'paused';
      this.status.eid = null;
      const resume = () => {
        this.advertising = false;
        this.schedule(5000);
      };
      if (this.advertising) bleno.stopAdvertising(resume);
      else resume();
      return;
    }
    const counter = this.counter();
    const start = quantumStart(counter, this.options.exponent);
    const eid = computeEid(this.options.identityKey, this.options.exponent, counter >>> 0);
    const frame = eddystoneEidAdvertisingData(this.options.txPowerDbm, eid);
    const failed = (why: string) => {
      if (generation !== this.generation) return;
      this.status.rotationFailures++;
      this.status.state = 'retrying';
      this.advertising = false;
      this.log.error({ why, failures: this.status.rotationFailures }, 'beacon rotation failed; retrying in 1 s');
      this.schedule(1000);
    };
    const guard = setTimeout(() => failed('no answer from the controller'), timeoutMs);
    const begin = () => {
      if (generation !== this.generation) return;
      bleno.startAdvertisingWithEIRData(frame, Buffer.alloc(0), (err) => {
        if (generation !== this.generation) return;
        clearTimeout(guard);
        if (err) return failed(err.message);
        this.advertising = true;
        this.status.rotations++;
        this.status.state = 'advertising';
        this.status.eid = eid.toString('hex');
        this.status.quantumStart = start;
        const next = (this.options.epochS + start + 2 ** this.options.exponent) * 1000;
        this.status.nextRotationAt = next;
        this.log.info({ quantumStart: start, nextRotationAt: new Date(next).toISOString() }, 'beacon EID rotated');
        this.schedule(next - this.now() + 20);
      });
    };
    if (this.advertising) bleno.stopAdvertising(begin);
    else begin();
  }

  stop(): void {
    this.stopped = true;
    this.generation++;
    this.clearTimer();
    if (this.bleno && this.advertising) this.bleno.stopAdvertising(() => undefined);
    this.status.state = 'stopped';
  }
}
