// A seeded, deterministic crowd of phones walking past the gateway, each advertising
// Exposure Notification frames: real RPIs and AEMs from a per-phone TEK, RPI and random
// address rotating every 10 minutes, an advert every 200-270 ms, RSSI from a log-distance
// path-loss model along a straight walk-by with Gaussian noise.
import { createHash } from 'node:crypto';
import type { AdvertSink } from '../daemon/radio/index.js';
import {
  associatedEncryptedMetadata,
  bleMetadata,
  deriveAemk,
  deriveRpik,
  EN_INTERVAL_MS,
  rollingProximityIdentifier,
} from '../core/protocols/index.js';

export interface CrowdOptions {
  seed: number;
  /** Phones in total; 0 = endless. */
  phones: number;
  arrivalsPerMinute: number;
  minDwellS: number;
  maxDwellS: number;
  /** Unix ms at which phone 0 may arrive. */
  anchor: number;
}

/** Model constants: documented in the README, used by tests to check RSSI statistics. */
export const CROWD_MODEL = {
  advertIntervalMinMs: 200,
  advertIntervalMaxMs: 270,
  rssiAt1mMin: -62,
  rssiAt1mMax: -56,
  pathLossExponent: 2,
  noiseSigmaDb: 2,
  closestApproachMinM: 0.5,
  closestApproachMaxM: 5,
  /** Distance at which a phone enters and leaves range. */
  rangeEdgeM: 15,
  txPowerMinDbm: -8,
  txPowerMaxDbm: 8,
} as const;

/** mulberry32: small, fast, good enough for a simulation, and identical everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function seedFor(seed: number, phone: number, stream: string): number {
  return createHash('sha256').update(`${seed}:${phone}:${stream}`).digest().readUInt32LE(0);
}

export interface Phone {
  index: number;
  tek: Buffer;
  arrival: number;
  departure: number;
  closestApproachM: number;
  rssiAt1m: number;
  txPowerDbm: number;
  /** Offset of this phone's rotation boundaries, so phones do not all rotate at once. */
  rotationPhaseMs: number;
}

interface ActivePhone extends Phone {
  rpik: Buffer;
  aemk: Buffer;
  walkSpeed: number;
  midpoint: number;
  nextAdvertAt: number;
  random: () => number;
  rotation: number;
  advert: Buffer;
  address: string;
}

export function phone(options: CrowdOptions, index: number): Phone {
  const r = prng(seedFor(options.seed, index, 'phone'));
  const gapMs = 60_000 / options.arrivalsPerMinute;
  const arrival = Math.floor(options.anchor + index * gapMs + r() * gapMs);
  const dwellMs = Math.floor((options.minDwellS + r() * (options.maxDwellS - options.minDwellS)) * 1000);
  const m = CROWD_MODEL;
  return {
    index,
    tek: createHash('sha256').update(`vgw-sim-tek:${options.seed}:${index}`).digest().subarray(0, 16),
    arrival,
    departure: arrival + dwellMs,
    closestApproachM: m.closestApproachMinM + r() * (m.closestApproachMaxM - m.closestApproachMinM),
    rssiAt1m: m.rssiAt1mMin + r() * (m.rssiAt1mMax - m.rssiAt1mMin),
    txPowerDbm: Math.round(m.txPowerMinDbm + r() * (m.txPowerMaxDbm - m.txPowerMinDbm)),
    rotationPhaseMs: Math.floor(r() * EN_INTERVAL_MS),
  };
}

/** The EN interval whose RPI a phone broadcasts at time t. */
export function rotationAt(p: Phone, t: number): number {
  return Math.floor((t + p.rotationPhaseMs) / EN_INTERVAL_MS);
}

/** Flags (LE General Discoverable, no BR/EDR), 16-bit UUID list, service data: as phones send. */
export function enAdvertisingData(rpi: Uint8Array, aem: Uint8Array): Buffer {
  return Buffer.concat([
    Buffer.from([0x02, 0x01, 0x1a, 0x03, 0x03, 0x6f, 0xfd, 0x17, 0x16, 0x6f, 0xfd]),
    rpi,
    aem,
  ]);
}

function rotate(p: ActivePhone, rotation: number): void {
  p.rotation = rotation;
  const rpi = rollingProximityIdentifier(p.rpik, rotation);
  const aem = associatedEncryptedMetadata(p.aemk, rpi, bleMetadata(p.txPowerDbm));
  p.advert = enAdvertisingData(rpi, aem);
  const a = createHash('sha256').update(p.tek).update(String(rotation)).digest();
  a[0] = (a[0] & 0x3f) | 0x40; // resolvable private address: top bits 01
  p.address = [...a.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Box-Muller from the phone's own stream. */
function gaussian(random: () => number): number {
  const u = 1 - random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

export class Crowd {
  private nextPhone = 0;
  private readonly active: ActivePhone[] = [];
  private readonly gapMs: number;

  constructor(readonly options: CrowdOptions) {
    this.gapMs = 60_000 / options.arrivalsPerMinute;
  }

  /** Phones whose walk-by has not ended by `time` (for the first call: skip past ones). */
  private admit(until: number, from: number): void {
    if (this.nextPhone === 0 && from > this.options.anchor) {
      // Restarted mid-crowd: phones that left before `from` need not be replayed.
      const longest = this.options.maxDwellS * 1000 + this.gapMs;
      this.nextPhone = Math.max(0, Math.floor((from - this.options.anchor - longest) / this.gapMs));
    }
    const total = this.options.phones;
    while (total === 0 || this.nextPhone < total) {
      const p = phone(this.options, this.nextPhone);
      if (p.arrival > until) break;
      this.nextPhone++;
      if (p.departure <= from) continue;
      const dwell = p.departure - p.arrival;
      const edge = CROWD_MODEL.rangeEdgeM;
      const active: ActivePhone = {
        ...p,
        rpik: deriveRpik(p.tek),
        aemk: deriveAemk(p.tek),
        walkSpeed: Math.sqrt(edge * edge - p.closestApproachM ** 2) / (dwell / 2),
        midpoint: p.arrival + dwell / 2,
        random: prng(seedFor(this.options.seed, p.index, 'adverts')),
        nextAdvertAt: p.arrival,
        rotation: -1,
        advert: Buffer.alloc(0),
        address: '',
      };
      active.nextAdvertAt += Math.floor(active.random() * CROWD_MODEL.advertIntervalMaxMs);
      this.active.push(active);
    }
  }

  /** The RSSI model without noise, for a phone at time t. */
  static meanRssi(p: Pick<ActivePhone, 'closestApproachM' | 'rssiAt1m'>, walkSpeed: number, midpoint: number, t: number): number {
    const along = walkSpeed * (t - midpoint);
    const d = Math.sqrt(p.closestApproachM ** 2 + along * along);
    return p.rssiAt1m - 10 * CROWD_MODEL.pathLossExponent * Math.log10(d);
  }

  /**
   * Emits every advert with from < time ≤ until, per phone in time order. Adverts at or
   * before `from` are generated but not emitted, so each phone's random stream stays the same.
   */
  advance(from: number, until: number, emit: AdvertSink): void {
    this.admit(until, from);
    const m = CROWD_MODEL;
    let keep = 0;
    for (let i = 0; i < this.active.length; i++) {
      const p = this.active[i];
      while (p.nextAdvertAt <= until && p.nextAdvertAt < p.departure) {
        const t = p.nextAdvertAt;
        const noise = gaussian(p.random) * m.noiseSigmaDb;
        p.nextAdvertAt += m.advertIntervalMinMs + Math.floor(p.random() * (m.advertIntervalMaxMs - m.advertIntervalMinMs + 1));
        if (t <= from) continue;
        const rotation = rotationAt(p, t);
        if (rotation !== p.rotation) rotate(p, rotation);
        const rssi = Math.max(-127, Math.min(20, Math.round(Crowd.meanRssi(p, p.walkSpeed, p.midpoint, t) + noise)));
        emit(p.advert, rssi, p.address, t);
      }
      if (p.nextAdvertAt < p.departure) this.active[keep++] = p;
    }
    this.active.length = keep;
  }

  /** True once a finite crowd has passed by entirely. */
  done(): boolean {
    return this.options.phones > 0 && this.nextPhone >= this.options.phones && this.active.length === 0;
  }
}
