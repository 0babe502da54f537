// An unmodified noble central and an unmodified bleno peripheral, each on its own controller
// behind an H4 transport, doing one BlueTrace-shaped exchange: the central finds the service,
// connects, reads the characteristic, writes its own value and disconnects. Used against the
// project's virtual controller and against BlueZ's btvirt (one process holds one bleno: call
// this once per test file).
import { createRequire } from 'node:module';
import { assignTransport, compactUuid, installHciSocket, parseTransport } from '../../daemon/radio/index.js';
import { waitFor } from './processes.js';

export interface GattPairResult {
  read: Buffer;
  peripheralGot: Buffer[];
  accepted: string[];
  disconnected: string[];
  linkRssi: number;
  /** Connect to the write's response. */
  exchangeMs: number;
}

type Cb = (...args: unknown[]) => void;
export interface Bleno {
  state: string;
  /** Its controller's address, once read ('unknown' before). */
  address: string;
  on(e: string, f: Cb): void;
  PrimaryService: new (o: object) => unknown;
  Characteristic: new (o: object) => unknown & { RESULT_SUCCESS: number };
  setServices(s: unknown[], cb: Cb): void;
  startAdvertising(name: string, uuids: string[], cb: Cb): void;
  stopAdvertising(cb?: Cb): void;
}
export interface NoblePeripheral {
  address: string;
  connectAsync(): Promise<void>;
  disconnectAsync(): Promise<void>;
  updateRssiAsync(): Promise<number>;
  discoverSomeServicesAndCharacteristicsAsync(s: string[], c: string[]): Promise<{ characteristics: Array<{ readAsync(): Promise<Buffer>; writeAsync(b: Buffer, withoutResponse: boolean): Promise<void> }> }>;
}
export interface Noble {
  state: string;
  on(e: string, f: Cb): void;
  startScanningAsync(uuids: string[], dup: boolean): Promise<void>;
  stopScanningAsync(): Promise<void>;
  _bindings: { _hci: { _socket: { close(): void } } };
}

const require = createRequire(import.meta.url);
let blenoTransport: string | null = null;
let blenoListening = false;
let nextDeviceId = 10;

/**
 * This process's bleno, on its controller: bleno is one object per process, bound to the device
 * id it was loaded with, so every test of a file shares it (on the first transport asked for).
 */
export async function blenoOn(transport: string): Promise<Bleno> {
  installHciSocket();
  if (blenoTransport === null) {
    blenoTransport = transport;
    assignTransport(9, { transport: parseTransport(transport) });
    process.env.BLENO_HCI_DEVICE_ID = '9';
  } else if (blenoTransport !== transport) {
    throw new Error(`this process's bleno is on ${blenoTransport}, not ${transport}`);
  }
  const bleno = require('@abandonware/bleno') as Bleno;
  // bleno opens its controller when its first listener comes; one is enough
  if (!blenoListening) bleno.on('stateChange', () => undefined);
  blenoListening = true;
  await waitFor('bleno powered on', () => (bleno.state === 'poweredOn' ? true : undefined), 10_000);
  return bleno;
}

/** A new noble on its own controller behind `transport`; close it with `closeNoble`. */
export async function nobleOn(transport: string): Promise<Noble> {
  installHciSocket();
  const deviceId = nextDeviceId++;
  assignTransport(deviceId, { transport: parseTransport(transport) });
  const noble = (require('@abandonware/noble/with-custom-binding') as (o: object) => Noble)({ deviceId });
  await waitFor('noble powered on', () => (noble.state === 'poweredOn' ? true : undefined), 10_000);
  return noble;
}

export function closeNoble(noble: Noble): void {
  noble._bindings._hci._socket.close();
}

export async function gattPair(centralTransport: string, peripheralTransport: string, service: string, characteristic: string, readValue: Buffer, writeValue: Buffer): Promise<GattPairResult> {
  const bleno = await blenoOn(peripheralTransport);
  const peripheralGot: Buffer[] = [];
  const accepted: string[] = [];
  const disconnected: string[] = [];
  bleno.on('accept', (a) => accepted.push(String(a)));
  bleno.on('disconnect', (a) => disconnected.push(String(a)));
  const uuid = compactUuid;
  await new Promise<void>((resolve, reject) => {
    const c = new bleno.Characteristic({
      uuid: uuid(characteristic),
      properties: ['read', 'write'],
      onReadRequest: (offset: number, cb: (code: number, data?: Buffer) => void) => cb(0, readValue.subarray(offset)),
      onWriteRequest: (data: Buffer, _offset: number, _noResponse: boolean, cb: (code: number) => void) => {
        peripheralGot.push(Buffer.from(data));
        cb(0);
      },
    });
    bleno.setServices([new bleno.PrimaryService({ uuid: uuid(service), characteristics: [c] })], (err) => (err ? reject(err) : resolve()));
  });
  await new Promise<void>((resolve, reject) => bleno.startAdvertising('vgw', [uuid(service)], (err) => (err ? reject(err) : resolve())));
  const noble = await nobleOn(centralTransport);
  const found = new Promise<NoblePeripheral>((resolve) => noble.on('discover', (p) => resolve(p as NoblePeripheral)));
  await noble.startScanningAsync([uuid(service)], false);
  const peripheral = await found;
  await noble.stopScanningAsync();
  const t0 = performance.now();
  await peripheral.connectAsync();
  const { characteristics } = await peripheral.discoverSomeServicesAndCharacteristicsAsync([uuid(service)], [uuid(characteristic)]);
  const read = await characteristics[0].readAsync();
  await characteristics[0].writeAsync(writeValue, false);
  const exchangeMs = performance.now() - t0;
  // btvirt never answers Read RSSI: bounded, 127 (not available) then.
  const linkRssi = await Promise.race([peripheral.updateRssiAsync(), new Promise<number>((r) => setTimeout(() => r(127), 1000))]);
  await peripheral.disconnectAsync();
  await waitFor('bleno to see the disconnection', () => (disconnected.length > 0 ? true : undefined), 5000);
  bleno.stopAdvertising();
  closeNoble(noble);
  return { read, peripheralGot, accepted, disconnected, linkRssi, exchangeMs };
}
