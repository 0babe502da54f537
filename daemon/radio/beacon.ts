// The venue beacon: Eddystone-EID, one slot of the advertising controller (advertiser.ts). Its
// frame changes every 2^K seconds; with the clock unsynchronised it sits its turns out, unless
// configured to advertise anyway.
import type { Logger } from '../../core/log/index.js';
import type { BeaconStatus } from '../../core/wire/status.js';
import { computeEid, eddystoneEidAdvertisingData, quantumStart } from '../../core/protocols/index.js';
import type { AdvertSlot } from './advertiser.js';

export interface VenueBeaconOptions {
  /** The advertising controller, as the status shows it. */
  transport: string;
  identityKey: Buffer;
  exponent: number;
  /** Calibrated TX power at 0 m, in the frame. */
  txPowerDbm: number;
  /** Unix seconds at which the beacon time counter is 0. */
  epochS: number;
  /** Whether EIDs may go out now (the clock policy); re-checked every few seconds. */
  mayAdvertise?: () => boolean;
}

export type { BeaconStatus };

export class VenueBeacon implements AdvertSlot {
  readonly name = 'beacon';
  readonly status: BeaconStatus;
  private lastEid: string | null = null;

  constructor(private readonly options: VenueBeaconOptions, private readonly log: Logger) {
    this.status = {
      state: 'starting', transport: options.transport, eid: null, quantumStart: null,
      nextRotationAt: null, rotations: 0, rotationFailures: 0,
    };
  }

  /** The beacon time counter at `now` (unix ms). */
  counter(now: number): number {
    return Math.floor(now / 1000) - this.options.epochS;
  }

  frame(now: number): Buffer | null {
    if (this.options.mayAdvertise && !this.options.mayAdvertise()) return null;
    const eid = computeEid(this.options.identityKey, this.options.exponent, this.counter(now) >>> 0);
    return eddystoneEidAdvertisingData(this.options.txPowerDbm, eid);
  }

  nextChangeAt(now: number): number {
    const start = quantumStart(this.counter(now), this.options.exponent);
    return (this.options.epochS + start + 2 ** this.options.exponent) * 1000;
  }

  advertised(frame: Buffer, now: number): void {
    const eid = frame.subarray(frame.length - 8).toString('hex');
    this.status.state = 'advertising';
    this.status.eid = eid;
    this.status.quantumStart = quantumStart(this.counter(now), this.options.exponent);
    this.status.nextRotationAt = this.nextChangeAt(now);
    if (eid === this.lastEid) return;
    this.lastEid = eid;
    this.status.rotations++;
    this.log.info({ quantumStart: this.status.quantumStart, nextRotationAt: new Date(this.status.nextRotationAt).toISOString() }, 'beacon EID rotated');
  }

  failed(why: string): void {
    this.status.rotationFailures++;
    this.status.state = 'retrying';
    this.log.error({ why, failures: this.status.rotationFailures }, 'beacon rotation failed');
  }

  idle(state: 'controller-off' | 'paused' | 'stopped'): void {
    this.status.state = state;
    if (state !== 'controller-off') this.status.eid = null;
  }
}
