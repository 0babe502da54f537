// The fleet simulator: N gateways in one process, each with its own keys, registration record,
// client id and MQTT session, and the real gateway code between its encounters and the broker —
// the real Uplink (publish until acked, resend backoff, acks, status and Last Will, pulls), the
// real codec and Ed25519 signing, full-jitter reconnects — over an outbox in memory that keeps the
// store's cadence (memory-outbox.ts). Encounters arrive at a venue traffic mix (venue-mix.ts). It
// can stop and restart the broker mid-run, and it reports what reached the backend: loss,
// duplicates and latency, against its own record of every encounter it made.
import { createHash, randomBytes } from 'node:crypto';
import type { Encounter, StoredEncounter } from '../core/encounters/index.js';
import type { Logger } from '../core/log/index.js';
import { newIdentity, type RegistrationRecord, signingKeyFromSeed } from '../core/trust/index.js';
import type { StatusCounters } from '../core/wire/status.js';
import { trustedKey, type UpdateRequest } from '../core/wire/index.js';
import { Uplink } from '../daemon/uplink/index.js';
import type { LocalBroker } from './local-broker.js';
import { MemoryOutbox } from './memory-outbox.js';
import { SimulatedRemoteConfig } from './remote-unit.js';
import { SimulatedUpdater } from './update-unit.js';
import { type Config, configVersion } from '../core/config/index.js';
import type { SigningKey } from '../core/trust/index.js';
import { assignVenueKinds, meanEncountersPerHour, poisson, VENUE_MIX, type VenueKind } from './venue-mix.js';

export interface FleetOptions {
  brokerUrl: string;
  prefix: string;
  gateways: number;
  /** Traffic multiplier over the mix's rates (1: business hours). */
  speed: number;
  seed: number;
  /** Seconds over which the gateways first connect (units are not all switched on in one second). */
  rampS: number;
  batchMaxEncounters: number;
  batchMaxAgeS: number;
  /** store.checkpointS: closed encounters are batched at the next commit. */
  commitIntervalS: number;
  resendInitialS: number;
  resendMaxS: number;
  statusIntervalS: number;
  reconnectS: number;
  reconnectMaxS: number;
  /** The backend's public keys, which the gateways trust (their collectors sign acks with one). */
  backendKeys: Buffer[];
  /** remote.healthGateS of the units: how long a configuration on trial has to reach the broker. */
  healthGateS: number;
  /** Software updates (simulators/update-unit.ts): absent, the units take none. */
  updates?: {
    /** The version every unit runs at first. */
    version: string;
    releaseKeys: Buffer[];
    ca?: Buffer;
    /** Versions that crash at start. */
    crashing: string[];
    healthGateS: number;
    /** The service's RestartSec. */
    restartS: number;
  };
}

export const FLEET_DEFAULTS: Omit<FleetOptions, 'brokerUrl' | 'prefix' | 'gateways' | 'backendKeys'> = {
  speed: 1,
  seed: 1,
  rampS: 10,
  // the gateway's own defaults (vgw config docs)
  batchMaxEncounters: 256,
  batchMaxAgeS: 30,
  commitIntervalS: 60,
  resendInitialS: 5,
  resendMaxS: 300,
  statusIntervalS: 30,
  reconnectS: 2,
  reconnectMaxS: 30,
  healthGateS: 180,
};

interface SimGateway {
  id: string;
  venue: string;
  kind: VenueKind;
  record: RegistrationRecord;
  outbox: MemoryOutbox;
  uplink: Uplink;
  signingKey: SigningKey;
  /** The backend's configuration of this unit (the real unit's rules, in memory). */
  remote: SimulatedRemoteConfig;
  /** What the unit runs: its file, or the backend's settings over it (null: the simulator's settings). */
  config: Config | null;
  /** Its software updates (null: the fleet takes none). */
  updater: SimulatedUpdater | null;
  /** Counters of uplinks replaced by a restart (a new configuration). */
  retired: { batchesPublished: number; batchesResent: number };
  /** When each encounter closed (by id): latency is measured from there. */
  closedAt: number[];
  /** Temp IDs by id, hex: the ground truth the backend's rows are checked against. */
  tempIds: string[];
  started: boolean;
}

export interface ReconnectReport {
  downS: number;
  /** Batches waiting in outboxes when the broker came back. */
  backlogBatches: number;
  /** From the broker's restart until every gateway is connected again. */
  allConnectedS: number | null;
  /** From the broker's restart until every batch cut before it is acknowledged. */
  drainS: number | null;
}

export interface FleetReport {
  gateways: number;
  mix: Array<{ kind: string; venues: number; encountersPerHour: number }>;
  speed: number;
  runS: number;
  encountersMade: number;
  encountersAcked: number;
  batchesCut: number;
  batchesPublished: number;
  batchesResent: number;
  /** Mean size of an online status document (retained, re-published every statusIntervalS). */
  statusBytes: number;
  /** From an encounter's closing to its batch's ack at the gateway (the ack follows the backend's commit). */
  latencyMs: { p50: number; p99: number; max: number } | null;
  reconnect: ReconnectReport | null;
  /** Filled by verify(). */
  atBackend?: { rows: number; lost: number; duplicates: number; foreign: number };
}

const quantile = (sorted: Float64Array, q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

export class FleetSim {
  readonly gateways: SimGateway[];
  private readonly options: FleetOptions;
  private readonly random: () => number;
  private tickTimer: NodeJS.Timeout | null = null;
  private latencies = new Float64Array(1 << 16);
  private latencyCount = 0;
  private encountersAcked = 0;
  private startedAt = 0;
  reconnect: ReconnectReport | null = null;

  constructor(options: Partial<FleetOptions> & Pick<FleetOptions, 'brokerUrl' | 'prefix' | 'gateways' | 'backendKeys'>, private readonly log: Logger) {
    this.options = { ...FLEET_DEFAULTS, ...options };
    let x = this.options.seed >>> 0 || 1;
    this.random = () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) / 4294967296;
    };
    const kinds = assignVenueKinds(this.options.gateways);
    const width = String(this.options.gateways).length;
    this.gateways = kinds.map((kind, i) => this.makeGateway(i, kind, width));
  }

  /** The registration records, for the collectors' registry. */
  get records(): RegistrationRecord[] {
    return this.gateways.map((g) => g.record);
  }

  private makeGateway(i: number, kind: VenueKind, width: number): SimGateway {
    const n = String(i + 1).padStart(width, '0');
    const id = `sim-gw-${n}`;
    const venue = `sim-${kind.name}-${n}`;
    const { secrets, record: identity } = newIdentity({ gateway: id, venue, beacon: { exponent: 10, epochS: 0, txPowerDbm: -20 } });
    // The venue type is a group, as a fleet would have one for its configuration layers.
    const record: RegistrationRecord = { ...identity, groups: [kind.name] };
    const key = signingKeyFromSeed(Buffer.from(secrets.signingKey, 'hex'));
    const o = this.options;
    const outbox = new MemoryOutbox(
      { batchMaxEncounters: o.batchMaxEncounters, batchMaxAgeMs: o.batchMaxAgeS * 1000, commitIntervalMs: o.commitIntervalS * 1000 },
      Date.now(),
      this.random() * o.commitIntervalS * 1000,
    );
    const g: SimGateway = {
      id, venue, kind, record, outbox, uplink: undefined as unknown as Uplink, signingKey: key, remote: undefined as unknown as SimulatedRemoteConfig, config: null, updater: null,
      retired: { batchesPublished: 0, batchesResent: 0 }, closedAt: [], tempIds: [], started: false,
    };
    g.remote = new SimulatedRemoteConfig({
      fileJson: {
        gateway: { id, venue }, secretsFile: '/simulated/secrets.json', topicPrefix: o.prefix,
        broker: { url: o.brokerUrl, reconnectS: o.reconnectS, reconnectMaxS: o.reconnectMaxS }, uplink: { statusIntervalS: o.statusIntervalS }, remote: { healthGateS: o.healthGateS },
      },
      restart: (config) => this.restartUplink(g, config),
      publishStatus: () => g.uplink.publishStatus(),
      healthy: () => g.uplink.connected,
    });
    const u = o.updates;
    if (u) {
      g.updater = new SimulatedUpdater({
        version: u.version, releaseKeys: u.releaseKeys, ...(u.ca ? { ca: u.ca } : {}), crashing: new Set(u.crashing), healthGateMs: u.healthGateS * 1000, restartMs: u.restartS * 1000,
        restart: (version) => this.restartRelease(g, version), healthy: () => g.uplink.connected, publishStatus: () => g.uplink.publishStatus(), log: this.log,
      });
    }
    g.uplink = this.newUplink(g);
    outbox.onAcked((ids) => {
      const now = Date.now();
      for (const batchId of ids) {
        for (const e of outbox.batchEncounters(batchId)) this.recordLatency(now - g.closedAt[e.id - 1]);
      }
    });
    return g;
  }

  /** The unit's uplink with the settings it runs (the simulator's, or the backend's over them). */
  private newUplink(g: SimGateway): Uplink {
    const o = this.options;
    const c = g.config;
    return new Uplink(
      {
        broker: { url: c?.broker.url ?? o.brokerUrl, clientId: `vgw-${g.id}`, keepaliveS: 60, connectTimeoutS: 30, reconnectS: o.reconnectS, reconnectMaxS: o.reconnectMaxS },
        prefix: o.prefix,
        venue: g.venue,
        gateway: g.id,
        maxInflightBatches: 8,
        resendInitialMs: o.resendInitialS * 1000,
        resendMaxMs: o.resendMaxS * 1000,
        statusIntervalMs: (c?.uplink.statusIntervalS ?? o.statusIntervalS) * 1000,
        maxRequestBytes: 65_536,
        maxPullEncounters: 200_000,
        batchMaxEncounters: o.batchMaxEncounters,
        signingKey: g.signingKey,
        trustedKeys: o.backendKeys.map(trustedKey),
        requestMaxSkewMs: 300_000,
        // on the simulator's settings their digest is the version; with the backend's, that config's
        config: c ? { version: configVersion(c), source: 'file' } : { version: `sha256:${createHash('sha256').update(JSON.stringify(o)).digest('hex').slice(0, 12)}`, source: 'simulated' },
        onConfig: (message) => g.remote.offered(message),
        remoteConfig: () => g.remote.status(),
        ...(g.updater ? { software: { version: g.updater.running ?? '', commit: 'simulated' }, onUpdate: (request: UpdateRequest) => g.updater!.requested(request) } : {}),
      },
      g.outbox,
      () => this.statusCounters(g),
      this.log,
    );
  }

  /** A "restart" into `config`: the uplink reconnects with it; the outbox (the unit's store) carries on. */
  private async restartUplink(g: SimGateway, config: Config): Promise<void> {
    await this.retireUplink(g);
    g.config = config;
    g.uplink = this.newUplink(g);
    if (g.started) g.uplink.start();
  }

  /** A restart into another release (`version`), or a start of one that crashed (null: the unit stays down until the next). */
  private async restartRelease(g: SimGateway, version: string | null): Promise<void> {
    await this.retireUplink(g);
    g.uplink = this.newUplink(g);
    if (version !== null && g.started) g.uplink.start();
  }

  private async retireUplink(g: SimGateway): Promise<void> {
    const old = g.uplink;
    g.retired.batchesPublished += old.counters.batchesPublished;
    g.retired.batchesResent += old.counters.batchesResent;
    await old.stop({ timeoutMs: 1000 });
  }

  private recordLatency(ms: number): void {
    if (this.latencyCount === this.latencies.length) {
      const grown = new Float64Array(this.latencies.length * 2);
      grown.set(this.latencies);
      this.latencies = grown;
    }
    this.latencies[this.latencyCount++] = ms;
    this.encountersAcked++;
  }

  /** What a simulated unit says in its retained status: a simulated radio and a synchronised clock. */
  private statusCounters(g: SimGateway): StatusCounters {
    const made = g.closedAt.length;
    return {
      radio: { state: 'simulated' },
      clock: { synchronized: true, source: 'fleet-sim', steps: 0 },
      beacon: { state: 'disabled' },
      bluetrace: { state: 'disabled' },
      health: { ready: true, watchdog: { enabled: false, pings: 0, withheld: 0, lastWithheldReason: null } },
      adverts: { received: made * 40, withTempId: made * 40 },
      heard: { exposureNotification: made * 40, eddystone: 0, ibeacon: 0, opentrace: 0, other: 0 },
      drops: { adTruncated: 0, adTooLong: 0, enWrongSize: 0, serviceDataTooShort: 0, rssiInvalid: 0 },
      encounters: { open: 0, sightings: made * 40, opened: made, closedSilence: made, closedMaxDuration: 0, closedEvicted: 0, closedShutdown: 0, closedClockStep: 0 },
      store: {
        ...g.outbox.counters, purgedEncounters: 0, purgedUnacked: 0, commitFailures: 0, droppedDiskFull: 0, restoredOpen: 0, salvagedEncounters: 0, readErrors: 0,
        ...g.outbox.stats(), database: g.outbox.database,
      },
      uplink: { ...g.uplink.counters, inflight: g.uplink.inflightCount, connected: g.uplink.connected },
      control: { ...g.uplink.control.counters, refused: { ...g.uplink.control.counters.refused } },
      ...(g.updater ? { update: g.updater.status() } : {}),
    };
  }

  /** Connects the gateways over `rampS`, then makes traffic every second until stop(). */
  async start(): Promise<void> {
    this.startedAt = Date.now();
    const spacing = (this.options.rampS * 1000) / Math.max(1, this.gateways.length);
    this.tickTimer = setInterval(() => this.tick(), 1000);
    for (const g of this.gateways) {
      g.uplink.start();
      g.started = true;
      if (spacing > 0) await new Promise((r) => setTimeout(r, spacing));
    }
  }

  /** One second of traffic: closed encounters for each venue, then each outbox's commit (when due). */
  private tick(): void {
    const now = Date.now();
    for (const g of this.gateways) {
      if (!g.started) continue;
      const n = poisson((g.kind.encountersPerHour * this.options.speed) / 3600, this.random);
      if (n > 0) {
        const closed: Encounter[] = [];
        for (let i = 0; i < n; i++) closed.push(this.encounter(g.kind, now));
        for (const e of g.outbox.addEncounters(closed)) {
          g.closedAt.push(now);
          g.tempIds.push(e.tempId.toString('hex'));
        }
      }
      g.outbox.tick(now, (e: StoredEncounter) => g.closedAt[e.id - 1]);
    }
  }

  private encounter(kind: VenueKind, now: number): Encounter {
    const dwellMs = 1000 * (kind.dwellS[0] + this.random() * (kind.dwellS[1] - kind.dwellS[0]));
    // One RPI's part of the stay: at most 15 minutes.
    const durationMs = Math.min(dwellMs, 900_000) * (0.3 + 0.7 * this.random());
    const rssiMax = -50 - Math.floor(this.random() * 30);
    const count = Math.max(1, Math.floor(durationMs / 4000));
    return {
      protocol: 0, tempId: randomBytes(16), metadata: randomBytes(4), firstSeen: now - 60_000 - durationMs, lastSeen: now - 60_000,
      count, rssiMin: rssiMax - 15, rssiMax, rssiSum: (rssiMax - 8) * count, rssiCount: count, bucketMs: [0, durationMs / 2, durationMs / 2, 0], clockSynced: true,
    };
  }

  get connectedCount(): number {
    return this.gateways.filter((g) => g.uplink.connected).length;
  }

  get backlogBatches(): number {
    return this.gateways.reduce((n, g) => n + g.outbox.outbox().length, 0);
  }

  /**
   * Stops the broker for `downS` seconds, restarts it, and measures how long the fleet takes to
   * reconnect and to drain what it cut before the restart.
   */
  async restartBroker(broker: LocalBroker, downS: number, timeoutS = 300): Promise<ReconnectReport> {
    await broker.stop();
    await new Promise((r) => setTimeout(r, downS * 1000));
    await broker.restart();
    const restartedAt = Date.now();
    const waiting = new Set<string>();
    for (const g of this.gateways) for (const b of g.outbox.outbox()) waiting.add(b.id);
    const report: ReconnectReport = { downS, backlogBatches: waiting.size, allConnectedS: null, drainS: null };
    const deadline = restartedAt + timeoutS * 1000;
    while (Date.now() < deadline && (report.allConnectedS === null || report.drainS === null)) {
      await new Promise((r) => setTimeout(r, 100));
      const elapsed = (Date.now() - restartedAt) / 1000;
      if (report.allConnectedS === null && this.connectedCount === this.gateways.length) report.allConnectedS = elapsed;
      if (report.drainS === null) {
        let left = 0;
        for (const g of this.gateways) for (const b of g.outbox.outbox()) if (waiting.has(b.id)) left++;
        if (left === 0) report.drainS = elapsed;
      }
    }
    this.reconnect = report;
    return report;
  }

  /** Stops making traffic, commits and batches what is left, and waits until every outbox is empty. */
  async drain(timeoutS = 300): Promise<boolean> {
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.tickTimer = null;
    const end = Date.now() + timeoutS * 1000;
    for (const g of this.gateways) g.outbox.flush(Date.now());
    while (Date.now() < end) {
      if (this.gateways.every((g) => g.outbox.stats().pending === 0)) return true;
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  }

  /**
   * Takes gateways out of service as a technician would: no more traffic, what they hold is
   * batched and delivered, then each stops cleanly (its retained status says offline, stopped).
   */
  async stopGateways(ids: readonly string[], timeoutS = 60): Promise<boolean> {
    const chosen = this.gateways.filter((g) => ids.includes(g.id));
    for (const g of chosen) {
      g.started = false;
      g.outbox.flush(Date.now());
    }
    const end = Date.now() + timeoutS * 1000;
    while (Date.now() < end && chosen.some((g) => g.outbox.stats().pending > 0)) await new Promise((r) => setTimeout(r, 100));
    await Promise.all(chosen.map((g) => g.uplink.stop()));
    return chosen.every((g) => g.outbox.stats().pending === 0);
  }

  async stop(): Promise<void> {
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.tickTimer = null;
    for (const g of this.gateways) {
      g.remote.stop();
      g.updater?.stop();
    }
    await Promise.all(this.gateways.map((g) => g.uplink.stop()));
  }

  report(): FleetReport {
    const sorted = this.latencies.slice(0, this.latencyCount).sort();
    const perKind = VENUE_MIX.map((k) => ({ kind: k.name, venues: this.gateways.filter((g) => g.kind.name === k.name).length, encountersPerHour: k.encountersPerHour * this.options.speed }));
    return {
      gateways: this.gateways.length,
      mix: perKind,
      speed: this.options.speed,
      runS: (Date.now() - this.startedAt) / 1000,
      encountersMade: this.gateways.reduce((n, g) => n + g.closedAt.length, 0),
      encountersAcked: this.encountersAcked,
      batchesCut: this.gateways.reduce((n, g) => n + g.outbox.counters.batchesCut, 0),
      batchesPublished: this.gateways.reduce((n, g) => n + g.retired.batchesPublished + g.uplink.counters.batchesPublished, 0),
      batchesResent: this.gateways.reduce((n, g) => n + g.retired.batchesResent + g.uplink.counters.batchesResent, 0),
      statusBytes: Math.round(this.gateways.reduce((n, g) => n + g.uplink.signedStatus('online').length, 0) / Math.max(1, this.gateways.length)),
      latencyMs: sorted.length > 0 ? { p50: Math.round(quantile(sorted, 0.5)), p99: Math.round(quantile(sorted, 0.99)), max: Math.round(sorted[sorted.length - 1]) } : null,
      reconnect: this.reconnect,
    };
  }

  /**
   * Checks the backend's rows against what the gateways made: `rows` yields (gateway, id, temp ID
   * hex) for every stored encounter of this fleet.
   */
  async verify(rows: AsyncIterable<{ gateway: string; id: number; tempId: string }>): Promise<NonNullable<FleetReport['atBackend']>> {
    const byId = new Map(this.gateways.map((g) => [g.id, g]));
    const seen = new Set<string>();
    let count = 0;
    let duplicates = 0;
    let foreign = 0;
    for await (const r of rows) {
      count++;
      const g = byId.get(r.gateway);
      if (!g || g.tempIds[r.id - 1] !== r.tempId) {
        foreign++;
        continue;
      }
      const key = `${r.gateway}/${r.id}`;
      if (seen.has(key)) duplicates++;
      else seen.add(key);
    }
    const made = this.gateways.reduce((n, g) => n + g.closedAt.length, 0);
    return { rows: count, lost: made - seen.size, duplicates, foreign };
  }

  /** Encounters per hour the fleet makes at this speed. */
  get expectedPerHour(): number {
    return meanEncountersPerHour() * this.options.speed * this.gateways.length;
  }
}
