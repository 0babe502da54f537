// The BlueTrace central role, on the scanner's noble: a phone advertising the service is
// connected to, its characteristic read ({v:2, id, o, mp}: its temp ID) and the venue's payload
// written ({v:2, id, o, mc, rs}, rs the RSSI the gateway measured), as OpenTrace's phones do to
// each other. Paced like them: a phone is skipped for `skipMs` after an exchange, a connection
// is bounded by `connectionTimeoutMs`, and at most `maxConnections` run at once. Scanning goes
// on throughout, so Exposure Notification sightings are not starved.
import type { Logger } from '../../core/log/index.js';
import {
  encodeMetadata, newPayloadRefusals, parsePayload, ROLE_CENTRAL, RS_UNAVAILABLE, rsForPhone, tempIdBytes, writePayload,
} from '../../core/bluetrace/index.js';
import type { CentralCounters } from '../../core/wire/status.js';
import { PROTOCOL_BLUETRACE } from '../../core/protocols/index.js';
import { BluetraceRoleOptions, compactUuid } from './bluetrace-peripheral.js';

export interface BluetraceCentralOptions extends BluetraceRoleOptions {
  maxConnections: number;
  skipMs: number;
  /** The unit's own advertising controller's address, once known: its scanner hears it too. */
  ownAddress?: () => string | null;
}

export type { CentralCounters };

interface Characteristic {
  readAsync(): Promise<Buffer>;
  writeAsync(data: Buffer, withoutResponse: boolean): Promise<void>;
}

export interface NoblePeripheral {
  address: string;
  connectable: boolean;
  rssi: number;
  state: string;
  advertisement?: { serviceUuids?: string[] };
  connectAsync(): Promise<void>;
  cancelConnect(): void;
  disconnect(): void;
  discoverSomeServicesAndCharacteristicsAsync(s: string[], c: string[]): Promise<{ characteristics: Characteristic[] }>;
}

export interface NobleCentral {
  on(event: 'discover', listener: (p: NoblePeripheral) => void): void;
}

class ExchangeTimeout extends Error {}

/** A phone passed over while the venue had no valid temp ID is looked at again this soon. */
const WITHOUT_TEMPID_RETRY_MS = 5000;

export class BluetraceCentral {
  readonly counters: CentralCounters = {
    attempts: 0, exchanges: 0, failures: 0, timedOut: 0, noService: 0, writeFailures: 0, deferredBusy: 0, withoutTempId: 0, ownAdverts: 0,
    refused: newPayloadRefusals(),
  };
  private readonly active = new Set<string>();
  /** Address → monotonic ms (performance.now) until which it is skipped; expired entries are swept as it grows. */
  private readonly skipUntil = new Map<string, number>();
  private readonly service: string;
  private readonly characteristic: string;
  private stopped = false;

  constructor(private readonly o: BluetraceCentralOptions, private readonly log: Logger) {
    this.service = compactUuid(o.serviceUuid);
    this.characteristic = compactUuid(o.characteristicUuid);
  }

  attach(noble: NobleCentral): void {
    noble.on('discover', (p) => this.onDiscover(p));
  }

  get connections(): number {
    return this.active.size;
  }

  private onDiscover(p: NoblePeripheral): void {
    if (this.stopped || !p.connectable || !p.advertisement?.serviceUuids?.includes(this.service)) return;
    if (this.active.has(p.address) || p.address === this.o.ownAddress?.()) return;
    // Skips run on the monotonic clock: a wall-clock step must neither free nor freeze them.
    const now = performance.now();
    const skip = this.skipUntil.get(p.address);
    if (skip !== undefined && skip > now) return;
    if (this.active.size >= this.o.maxConnections) {
      this.counters.deferredBusy++;
      return;
    }
    const tempId = this.o.venueTempId(Date.now()); // a temp ID's window is in wall-clock time
    if (tempId === null) {
      // The venue's want, not the phone's: look again soon, not after a whole skip.
      this.counters.withoutTempId++;
      this.skip(p.address, now, WITHOUT_TEMPID_RETRY_MS);
      return;
    }
    void this.exchange(p, tempId);
  }

  private skip(address: string, now: number, forMs = this.o.skipMs): void {
    if (this.skipUntil.size > 10_000) for (const [a, t] of this.skipUntil) if (t <= now) this.skipUntil.delete(a);
    this.skipUntil.set(address, now + forMs);
  }

  private async exchange(p: NoblePeripheral, tempId: string): Promise<void> {
    this.active.add(p.address);
    this.counters.attempts++;
    const advertRssi = p.rssi;
    let timer: NodeJS.Timeout | undefined;
    // noble's promises never settle when a link drops mid-operation: the time limit settles them.
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ExchangeTimeout()), this.o.connectionTimeoutMs);
    });
    const step = <T>(op: Promise<T>) => Promise.race([op, limit]);
    let stage = 'connect';
    try {
      await step(p.connectAsync());
      stage = 'discover';
      const { characteristics } = await step(p.discoverSomeServicesAndCharacteristicsAsync([this.service], [this.characteristic]));
      if (characteristics.length === 0) {
        this.counters.noService++;
        return;
      }
      stage = 'read';
      const phone = parsePayload(await step(characteristics[0].readAsync()), 'read', this.counters.refused);
      if (!phone) return;
      if (phone.tempId.equals(tempIdBytes(tempId)!)) {
        this.counters.ownAdverts++;
        return;
      }
      this.counters.exchanges++;
      this.o.onExchange({
        protocol: PROTOCOL_BLUETRACE, tempId: phone.tempId, rssi: advertRssi, address: '', time: this.o.now(), clockSynced: true,
        metadata: encodeMetadata({ role: ROLE_CENTRAL, rs: RS_UNAVAILABLE, org: phone.org, model: phone.model }),
      });
      stage = 'write';
      try {
        await step(characteristics[0].writeAsync(writePayload(tempId, this.o.org, this.o.model, rsForPhone(advertRssi)), false));
      } catch (err) {
        if (err instanceof ExchangeTimeout) throw err;
        this.counters.writeFailures++;
      }
    } catch (err) {
      if (err instanceof ExchangeTimeout) this.counters.timedOut++;
      else this.counters.failures++;
      this.log.debug({ stage, timedOut: err instanceof ExchangeTimeout }, 'BlueTrace exchange as central failed');
    } finally {
      clearTimeout(timer);
      try {
        if (p.state === 'connecting') p.cancelConnect();
        else if (p.state === 'connected') p.disconnect();
      } catch {
        // the controller is gone: noble reports it through its state
      }
      this.active.delete(p.address);
      this.skip(p.address, performance.now());
    }
  }

  stop(): void {
    this.stopped = true;
  }
}
