// Phones running a BlueTrace app, as OpenTrace's Android code behaves (facts in
// ../shared/reference/bluetrace_opentrace_facts.json): each advertises the service connectably
// with a short random string under manufacturer id 0x03FF (never its temp ID); scans 8 s every
// 36–43 s; then connects to each device it found advertising the service, reads the peer's
// {v, id, o, mp}, writes its own {v, id, o, mc, rs}, disconnects, gives up on a connection after
// 6 s and skips a device for 100 s after an exchange. Peers connecting to it read and write its
// characteristic the same way. Temp IDs are issued with the backend's key, as the app fetches
// them, so a test can decrypt what the gateway logged back to the phone it came from.
import { createHash } from 'node:crypto';
import {
  issueTempIds, IssuedTempId, parsePayload, newPayloadRefusals, readPayload, TEMPID_VALIDITY_S, writePayload,
} from '../core/bluetrace/index.js';
import { uuid128Bytes } from '../core/protocols/index.js';
import { ATT_CID, PhoneGattClient, PhoneGattServer } from './att.js';
import { Crowd, CROWD_MODEL, CrowdOptions, phone as crowdPhone, prng, seedFor } from './crowd.js';
import { Link, LinkEnd, REASON_REMOTE_USER, ROLE_CENTRAL } from './link.js';

/** How a phone behaves in an exchange; all but `opentrace` are hostile, for tests. */
export type PhoneBehaviour =
  | 'opentrace'
  /** Connects, then never reads nor writes. */
  | 'silent'
  /** Reads, then drops the link before writing. */
  | 'dropAfterRead'
  /** Writes bytes that are not JSON. */
  | 'notJson'
  /** Writes 600 bytes (a long write). */
  | 'tooLong'
  /** Writes its payload twice in one connection. */
  | 'repeat'
  /** Writes a temp ID that is not 84 base64 characters. */
  | 'badTempId'
  /** As a peripheral, answers reads with bytes that are not a payload. */
  | 'garbageRead';

/** Arrivals and walk-bys as the EN crowd's (`CrowdOptions`), and what makes them BlueTrace phones. */
export interface BluetracePhonesOptions extends CrowdOptions {
  /** The backend's 32-byte key, hex: phones' temp IDs are issued with it. */
  key: string;
  serviceUuid: string;
  characteristicUuid: string;
  /** Organisation code in the phones' payloads. */
  org: string;
  /** Whether phones scan and connect to what advertises the service (their central role); per phone when a function. */
  connect?: boolean | ((index: number) => boolean);
  /** Whether phones advertise the service, so a gateway can connect to them (their peripheral role); per phone when a function. */
  advertise?: boolean | ((index: number) => boolean);
  behaviour?: (index: number) => PhoneBehaviour;
  /** Drop phones once they leave (a long-running crowd); tests keep them to read their histories. */
  forgetDeparted?: boolean;
  /** OpenTrace's pacing, overridable so tests need not wait 40 s. */
  scanEveryMs?: [number, number];
  scanForMs?: number;
}

/** What the phones' medium (the virtual controller) offers them. */
export interface PhoneMedium {
  /** Devices advertising connectably now with this 128-bit service UUID in their data. */
  advertisersOf(service: Buffer): string[];
  /** Connects `phone` to the device at `address`; null when nothing there takes connections now. */
  connect(phone: LinkEnd, address: string, rssi: () => number): Link | null;
  /** One advert of a phone, heard by every scanning controller. */
  advertise(data: Buffer, rssi: number, address: string): void;
}

/** One exchange as a phone's history keeps it (OpenTrace's StreetPassRecord, as uploaded). */
export interface PhoneRecord {
  /** Unix ms. */
  timestamp: number;
  /** The peer's temp ID. */
  msg: string;
  org: string;
  modelP: string;
  modelC: string;
  rssi: number;
}

export interface PhoneCounters {
  exchangesAsCentral: number;
  exchangesAsPeripheral: number;
  connectFailures: number;
  exchangeFailures: number;
}

const CONNECTION_LIMIT_MS = 6000;
const SKIP_AFTER_EXCHANGE_MS = 100_000;

export class BluetracePhone implements LinkEnd {
  readonly addressType = 1;
  readonly addressString: string;
  readonly uid: string;
  readonly model: string;
  readonly history: PhoneRecord[] = [];
  readonly tempIds: IssuedTempId[];
  /** Whether it plays the central role (scans and connects). */
  readonly connects: boolean;
  /** Whether it plays the peripheral role (advertises and takes connections). */
  readonly advertises: boolean;
  private readonly advert: Buffer;
  private readonly service: Buffer;
  private readonly characteristic: Buffer;
  nextAdvertAt: number;
  nextScanAt: number;
  scanUntil = 0;
  private readonly found = new Set<string>();
  private readonly skipUntil = new Map<string, number>();
  private busy = false;
  private readonly servers = new Map<Link, PhoneGattServer>();
  private readonly clients = new Map<Link, PhoneGattClient>();
  /** Resolves the wait of connectToFound when its link goes down. */
  private readonly closing = new Map<Link, () => void>();

  constructor(
    readonly index: number,
    readonly arrival: number,
    readonly departure: number,
    private readonly rssiAt: (t: number) => number,
    private readonly o: BluetracePhonesOptions,
    private readonly medium: PhoneMedium,
    private readonly random: () => number,
    readonly behaviour: PhoneBehaviour,
    private readonly counters: PhoneCounters,
  ) {
    const h = createHash('sha256').update(`vgw-sim-bluetrace:${o.seed}:${index}`).digest();
    this.uid = h.subarray(0, 21).toString('base64');
    h[26] |= 0xc0; // random static address: top bits 11
    this.addressString = [...h.subarray(21, 27)].reverse().map((b) => b.toString(16).padStart(2, '0')).join(':');
    const perPhone = (v: boolean | ((i: number) => boolean) | undefined) => (typeof v === 'function' ? v(index) : v !== false);
    this.connects = perPhone(o.connect);
    this.advertises = perPhone(o.advertise);
    this.model = ['Pixel 7', 'SM-A515F', 'Redmi Note 9', 'CPH2239', 'iPhone13,2'][index % 5];
    this.tempIds = issueTempIds(Buffer.from(o.key, 'hex'), this.uid, Math.floor(arrival / 1000), Math.ceil((departure - arrival) / 1000 / TEMPID_VALIDITY_S) + 2);
    this.service = uuid128Bytes(o.serviceUuid);
    this.characteristic = uuid128Bytes(o.characteristicUuid);
    const tag = Buffer.from(h.subarray(27, 30).toString('hex').slice(0, 3), 'ascii');
    this.advert = Buffer.concat([
      Buffer.from([0x02, 0x01, 0x1a, 0x11, 0x07]), this.service,
      Buffer.from([0x02, 0x0a, 0x00]), // TX power level
      Buffer.from([1 + 2 + tag.length, 0xff, 0xff, 0x03]), tag,
    ]);
    this.nextAdvertAt = arrival;
    const [lo, hi] = o.scanEveryMs ?? [36_000, 43_000];
    this.nextScanAt = arrival + Math.floor(this.random() * (hi - lo));
  }

  /** The temp ID it broadcasts at `t` (its fetched batch covers its whole visit). */
  tempIdAt(t: number): string {
    const s = t / 1000;
    return (this.tempIds.find((x) => x.start <= s && s < x.expiry) ?? this.tempIds[this.tempIds.length - 1]).tempId;
  }

  rssi(t = Date.now()): number {
    return Math.max(-127, Math.min(20, Math.round(this.rssiAt(t))));
  }

  /** Advertises and scans up to `now`; at the end of a scan, connects to what it found. */
  tick(now: number): void {
    if (this.advertises) {
      while (this.nextAdvertAt <= now) {
        this.medium.advertise(this.advert, this.rssi(this.nextAdvertAt), this.addressString);
        this.nextAdvertAt += 400 + Math.floor(this.random() * 200);
      }
    }
    if (!this.connects) return;
    if (now >= this.nextScanAt && this.scanUntil === 0) this.scanUntil = now + (this.o.scanForMs ?? 8000);
    if (this.scanUntil > 0) {
      for (const a of this.medium.advertisersOf(this.service)) this.found.add(a);
      if (now >= this.scanUntil) {
        const [lo, hi] = this.o.scanEveryMs ?? [36_000, 43_000];
        this.nextScanAt = this.scanUntil + lo + Math.floor(this.random() * (hi - lo)) - (this.o.scanForMs ?? 8000);
        this.scanUntil = 0;
        void this.connectToFound(now);
      }
    }
  }

  private async connectToFound(now: number): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    const targets = [...this.found].filter((a) => (this.skipUntil.get(a) ?? 0) <= now);
    this.found.clear();
    for (const address of targets) {
      const link = this.medium.connect(this, address, () => this.rssi());
      if (!link) {
        this.counters.connectFailures++;
        continue;
      }
      if (link.up) {
        await new Promise<void>((resolve) => {
          const limit = setTimeout(() => link.close(this, REASON_REMOTE_USER), CONNECTION_LIMIT_MS);
          this.closing.set(link, () => {
            clearTimeout(limit);
            resolve();
          });
        });
      }
      this.skipUntil.set(address, Date.now() + SKIP_AFTER_EXCHANGE_MS);
    }
    this.busy = false;
  }

  linkUp(link: Link, role: number): void {
    if (role === ROLE_CENTRAL) {
      const client = new PhoneGattClient((pdu) => link.send(this, ATT_CID, pdu));
      this.clients.set(link, client);
      void this.exchangeAsCentral(link, client);
      return;
    }
    const refusals = newPayloadRefusals();
    let peerRssi = 127;
    this.servers.set(link, new PhoneGattServer(this.service, this.characteristic, {
      read: () => {
        peerRssi = this.rssi();
        return this.behaviour === 'garbageRead' ? Buffer.from('<html>', 'ascii') : readPayload(this.tempIdAt(Date.now()), this.o.org, this.model);
      },
      write: (value) => {
        const p = parsePayload(value, 'write', refusals);
        if (!p) return;
        this.counters.exchangesAsPeripheral++;
        this.history.push({ timestamp: Date.now(), msg: p.tempId.toString('base64'), org: p.org, modelP: this.model, modelC: p.model, rssi: peerRssi });
      },
    }));
  }

  private async exchangeAsCentral(link: Link, client: PhoneGattClient): Promise<void> {
    try {
      if (this.behaviour === 'silent') return; // holds the link until the peer gives up
      await client.exchangeMtu();
      const handle = await client.find(this.service, this.characteristic);
      const read = await client.read(handle);
      const peer = parsePayload(read, 'read', newPayloadRefusals());
      if (this.behaviour === 'dropAfterRead') {
        link.close(this, REASON_REMOTE_USER);
        return;
      }
      const rssi = this.rssi();
      const own = this.tempIdAt(Date.now());
      const payload =
        this.behaviour === 'notJson' ? Buffer.from('\u0000not json at all', 'utf8')
        : this.behaviour === 'tooLong' ? Buffer.from(JSON.stringify({ v: 2, id: own, o: this.o.org, mc: 'x'.repeat(520), rs: rssi }))
        : this.behaviour === 'badTempId' ? writePayload(own.slice(0, 40), this.o.org, this.model, rssi)
        : writePayload(own, this.o.org, this.model, rssi);
      await client.write(handle, payload);
      if (this.behaviour === 'repeat') await client.write(handle, payload);
      if (peer) {
        this.counters.exchangesAsCentral++;
        this.history.push({ timestamp: Date.now(), msg: peer.tempId.toString('base64'), org: peer.org, modelP: peer.model, modelC: this.model, rssi });
      }
      link.close(this, REASON_REMOTE_USER);
    } catch {
      this.counters.exchangeFailures++;
      link.close(this, REASON_REMOTE_USER);
    }
  }

  l2cap(link: Link, cid: number, payload: Buffer): void {
    if (cid !== ATT_CID) return;
    const client = this.clients.get(link);
    // A request from the peer's client, or the answer to ours (ATT: responses are odd opcodes).
    const isResponse = payload[0] === 0x01 || (payload[0] & 1) === 1;
    if (client && isResponse) return client.receive(payload);
    const server = this.servers.get(link);
    const rsp = server?.handle(payload);
    if (rsp) link.send(this, ATT_CID, rsp);
  }

  linkDown(link: Link): void {
    this.closing.get(link)?.();
    this.closing.delete(link);
    this.clients.get(link)?.fail();
    this.clients.delete(link);
    this.servers.delete(link);
  }
}

/** The population of BlueTrace phones: arrivals and walk-bys as the EN crowd's, on their own seed. */
export class BluetracePhones {
  readonly all: BluetracePhone[] = [];
  readonly counters: PhoneCounters = { exchangesAsCentral: 0, exchangesAsPeripheral: 0, connectFailures: 0, exchangeFailures: 0 };
  private next = 0;

  constructor(readonly options: BluetracePhonesOptions, private readonly medium: PhoneMedium) {}

  /** Phones in range at `now`. */
  present(now: number): BluetracePhone[] {
    return this.all.filter((p) => p.arrival <= now && now < p.departure);
  }

  byAddress(address: string, now: number): BluetracePhone | undefined {
    return this.present(now).find((p) => p.addressString === address);
  }

  tick(now: number): void {
    const o = this.options;
    while (o.phones === 0 || this.next < o.phones) {
      const p = crowdPhone({ ...o, seed: o.seed ^ 0x5eed }, this.next);
      if (p.arrival > now) break;
      const dwell = p.departure - p.arrival;
      const edge = CROWD_MODEL.rangeEdgeM;
      const walkSpeed = Math.sqrt(edge * edge - p.closestApproachM ** 2) / (dwell / 2);
      const midpoint = p.arrival + dwell / 2;
      const random = prng(seedFor(o.seed, p.index, 'bluetrace'));
      this.all.push(new BluetracePhone(
        this.next, p.arrival, p.departure, (t) => Crowd.meanRssi(p, walkSpeed, midpoint, t), o, this.medium, random,
        o.behaviour?.(this.next) ?? 'opentrace', this.counters,
      ));
      this.next++;
    }
    if (o.forgetDeparted) {
      let keep = 0;
      for (const p of this.all) if (now < p.departure) this.all[keep++] = p;
      this.all.length = keep;
    }
    for (const p of this.all) if (p.arrival <= now && now < p.departure) p.tick(now);
  }

  done(now: number): boolean {
    return this.options.phones > 0 && this.next >= this.options.phones && this.present(now).length === 0;
  }
}
