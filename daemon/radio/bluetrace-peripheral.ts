// The BlueTrace peripheral role: the venue takes its slice of the advertising controller with a
// connectable advert (the service UUID and a short random string under manufacturer id 0x03FF,
// never the temp ID), answers a phone's read with {v:2, id, o, mp} carrying the venue's current
// temp ID, and logs the phone's write {v:2, id, o, mc, rs} as a BlueTrace sighting. With no
// valid temp ID it sits its turns out: an expired ID is never advertised. Phones are untrusted:
// a connection is cut after `connectionTimeoutMs`, and every way an exchange fails is counted.
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../core/log/index.js';
import {
  encodeMetadata, MAX_PAYLOAD_BYTES, newPayloadRefusals, parsePayload, readPayload, ROLE_PERIPHERAL,
} from '../../core/bluetrace/index.js';
import type { PeripheralCounters, PeripheralState } from '../../core/wire/status.js';
import { PROTOCOL_BLUETRACE, RSSI_UNAVAILABLE, type Sighting, uuid128Bytes } from '../../core/protocols/index.js';
import type { AdvertSlot, Bleno } from './advertiser.js';

export interface BluetraceRoleOptions {
  serviceUuid: string;
  characteristicUuid: string;
  org: string;
  /** What the venue says it is, in `mp` and `mc`. */
  model: string;
  connectionTimeoutMs: number;
  /** The venue's temp ID valid at `now` (unix ms), or null when it has none. */
  venueTempId(now: number): string | null;
  /** Timestamps for sightings (the daemon's steady clock). */
  now(): number;
  onExchange(s: Sighting): void;
}

export type { PeripheralCounters };

const ATT_SUCCESS = 0x00;
const ATT_INVALID_OFFSET = 0x07;
const ATT_INVALID_LENGTH = 0x0d;
const ATT_UNLIKELY = 0x0e;
const RSSI_WAIT_MS = 1000;

/** The 128-bit UUID as bleno and noble write it: lower case, no dashes. */
export const compactUuid = (uuid: string) => uuid.replace(/-/g, '').toLowerCase();

/** A connectable BlueTrace advert: flags, the 128-bit service UUID, and 0x03FF with a short random string. */
export function bluetraceAdvertisingData(serviceUuid: string, tag: string): Buffer {
  const uuid = uuid128Bytes(serviceUuid);
  const text = Buffer.from(tag, 'ascii');
  return Buffer.concat([Buffer.from([0x02, 0x01, 0x06, 0x11, 0x07]), uuid, Buffer.from([3 + text.length, 0xff, 0xff, 0x03]), text]);
}

export class BluetracePeripheral implements AdvertSlot {
  readonly name = 'bluetrace';
  readonly counters: PeripheralCounters = {
    connections: 0, reads: 0, exchanges: 0, repeatedWrites: 0, disconnectedBeforeWrite: 0, timedOut: 0, turnsWithoutTempId: 0,
    refused: newPayloadRefusals(),
  };
  state: PeripheralState = 'starting';
  private bleno: Bleno | null = null;
  private tag = randomBytes(3).toString('hex').slice(0, 4);
  private connection: { wrote: boolean; logged: boolean; rssi: Promise<number>; timer: NodeJS.Timeout } | null = null;

  constructor(private readonly o: BluetraceRoleOptions, private readonly log: Logger) {}

  frame(now: number): Buffer | null {
    if (this.o.venueTempId(now) === null) {
      this.counters.turnsWithoutTempId++;
      return null;
    }
    return bluetraceAdvertisingData(this.o.serviceUuid, this.tag);
  }

  nextChangeAt(): number | null {
    return null;
  }

  advertised(): void {
    this.state = 'advertising';
  }

  failed(): void {
    this.state = 'retrying';
  }

  idle(state: 'controller-off' | 'paused' | 'stopped'): void {
    this.state = state === 'paused' ? 'noTempId' : state;
  }

  /** Serves the characteristic on the advertising controller's bleno. */
  attach(bleno: Bleno): void {
    this.bleno = bleno;
    const characteristic = new bleno.Characteristic({
      uuid: compactUuid(this.o.characteristicUuid),
      properties: ['read', 'write'],
      onReadRequest: (offset: number, cb: (code: number, data?: Buffer) => void) => this.onRead(offset, cb),
      onWriteRequest: (data: Buffer, offset: number, _noResponse: boolean, cb: (code: number) => void) => cb(this.onWrite(data, offset)),
    });
    bleno.on('stateChange', (state) => {
      if (state === 'poweredOn') bleno.setServices([new bleno.PrimaryService({ uuid: compactUuid(this.o.serviceUuid), characteristics: [characteristic] })]);
    });
    bleno.on('accept', () => this.onAccept());
    bleno.on('disconnect', () => this.onDisconnect());
  }

  private onAccept(): void {
    const bleno = this.bleno!;
    this.counters.connections++;
    this.tag = randomBytes(3).toString('hex').slice(0, 4);
    const timer = setTimeout(() => {
      this.counters.timedOut++;
      this.log.warn({ limitMs: this.o.connectionTimeoutMs }, 'BlueTrace phone held the connection too long; disconnecting');
      bleno.disconnect();
    }, this.o.connectionTimeoutMs);
    timer.unref();
    // Some controllers (BlueZ's emulator) never answer Read RSSI: bounded, then "not available".
    const rssi = new Promise<number>((resolve) => {
      const giveUp = setTimeout(() => resolve(RSSI_UNAVAILABLE), RSSI_WAIT_MS);
      try {
        bleno.updateRssi((err, value) => {
          clearTimeout(giveUp);
          resolve(err || typeof value !== 'number' ? RSSI_UNAVAILABLE : value);
        });
      } catch {
        resolve(RSSI_UNAVAILABLE); // the link went before the command could be sent
      }
    });
    this.connection = { wrote: false, logged: false, rssi, timer };
  }

  private onDisconnect(): void {
    const c = this.connection;
    this.connection = null;
    if (!c) return;
    clearTimeout(c.timer);
    if (!c.wrote) this.counters.disconnectedBeforeWrite++;
  }

  private onRead(offset: number, cb: (code: number, data?: Buffer) => void): void {
    const tempId = this.o.venueTempId(Date.now());
    if (tempId === null) return cb(ATT_UNLIKELY);
    const payload = readPayload(tempId, this.o.org, this.o.model);
    if (offset > payload.length) return cb(ATT_INVALID_OFFSET);
    if (offset === 0) this.counters.reads++;
    cb(ATT_SUCCESS, payload.subarray(offset));
  }

  private onWrite(data: Buffer, offset: number): number {
    const c = this.connection;
    if (c) c.wrote = true;
    if (offset !== 0 || data.length > MAX_PAYLOAD_BYTES) {
      this.counters.refused.tooLong++;
      return ATT_INVALID_LENGTH;
    }
    const phone = parsePayload(data, 'write', this.counters.refused);
    if (!phone) return ATT_SUCCESS; // answered, so the phone moves on; counted by reason
    if (c?.logged) {
      this.counters.repeatedWrites++;
      return ATT_SUCCESS;
    }
    if (c) c.logged = true;
    const time = this.o.now();
    const metadata = encodeMetadata({ role: ROLE_PERIPHERAL, rs: phone.rs!, org: phone.org, model: phone.model });
    const rssi = c?.rssi ?? Promise.resolve(RSSI_UNAVAILABLE);
    rssi
      .then((r) => {
        this.counters.exchanges++;
        this.o.onExchange({ protocol: PROTOCOL_BLUETRACE, tempId: phone.tempId, metadata, rssi: r, address: '', time, clockSynced: true });
      })
      .catch((err: unknown) => this.log.error({ err: (err as Error).message }, 'BlueTrace exchange (peripheral) not recorded'));
    return ATT_SUCCESS;
  }
}
