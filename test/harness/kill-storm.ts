// A kill -9 storm: the daemon (and, in the soak, the collector) killed at random moments while
// a seeded crowd passes, restarted each time, then left to drain. Checked against the crowd's
// ground truth and the gateway's own database: nothing committed lost, nothing doubled, the
// database intact at every kill.
import Database from 'better-sqlite3';
import pg from 'pg';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { CrowdOptions, LocalBroker } from '../../simulators/index.js';
import { crowdEnd, crowdTruth } from './crowd-truth.js';
import { countSoFar, EncounterRow, gatewayEncounters, outboxPending } from './gateway-db.js';
import { provisionTestGateway, testBackendKeyFile } from './identity.js';
import { sleep, spawnVgw, Spawned, stopGracefully, waitFor, writeJson } from './processes.js';
import { seeded } from './random.js';

export interface StormOptions {
  dir: string;
  broker: LocalBroker;
  kills: number;
  /** Kill a collector too, every this many daemon kills (0: never); with several, each in turn. */
  collectorKillEvery: number;
  /** Collectors in one shared-subscription group (default 1). */
  collectors?: number;
  /** A postgres:// URL for the collectors to share; an SQLite file of their own by default. */
  database?: string;
  seed: number;
  /** Simulated seconds per real second. */
  speed: number;
}

export interface StormReport {
  kills: number;
  collectorKills: number;
  committed: number;
  atCollector: number;
  lost: number;
  duplicates: number;
  truthTempIds: number;
  recordedTempIds: number;
  /** Phones in range for at least UP_OVERLAP_MS of some life's run, whose encounters a checkpoint must have kept. */
  heardWhileUp: number;
  /** Of those, the ones nowhere at the collector: a loss by any measure. */
  missedWhileUp: number;
  lives: number;
}

/** Longer than a checkpoint (0.25 s) plus the radio's start after the store's: a phone in range this long while a life ran is on disk. */
const UP_OVERLAP_MS = 1000;

/** What the collectors stored for one gateway, read straight from their database. */
async function collectedEncounters(database: string, gateway: string): Promise<EncounterRow[]> {
  const query = 'SELECT life, id, temp_id, first_seen, last_seen, count FROM encounters WHERE gateway = $1';
  if (database.startsWith('postgres')) {
    const client = new pg.Client({ connectionString: database, types: { getTypeParser: (oid: number, format?: 'text' | 'binary') => (oid === 20 ? Number : pg.types.getTypeParser(oid, format)) } as never });
    await client.connect();
    try {
      return (await client.query<EncounterRow>(query, [gateway])).rows;
    } finally {
      await client.end();
    }
  }
  const cdb = new Database(database, { readonly: true });
  try {
    return cdb.prepare(query.replace('$1', '?')).all(gateway) as EncounterRow[];
  } finally {
    cdb.close();
  }
}

export async function killStorm(o: StormOptions): Promise<StormReport> {
  const random = seeded(o.seed);
  const prefix = `storm-${o.seed}/v1`;
  const name = `storm-${o.seed}`;
  const identity = provisionTestGateway(o.dir, `gw-${name}`, `venue-${name}`);
  const registry = writeJson(join(o.dir, `${name}-registry.json`), [identity.record]);
  const gatewayDb = join(o.dir, `${name}.db`);
  const collectorDb = join(o.dir, `${name}-collector.db`);
  // The crowd lasts the whole storm: arrivals over the kills, each phone in range 30-120 s.
  const stormS = o.kills * 2.2 + 5;
  const phones = Math.max(20, Math.round((stormS * o.speed) / 60 * 12));
  const crowd: CrowdOptions = { seed: o.seed, phones, arrivalsPerMinute: 12, minDwellS: 30, maxDwellS: 120, anchor: Date.now() + 3000 };
  const truth = crowdTruth(crowd);
  const config = writeJson(join(o.dir, `${name}.json`), {
    gateway: { id: `gw-${name}`, venue: `venue-${name}` },
    secretsFile: identity.secretsFile,
    broker: { url: o.broker.url, reconnectS: 0.2, connectTimeoutS: 5 },
    topicPrefix: prefix,
    radio: { simulated: { ...crowd, speed: o.speed } },
    clock: { syncCheck: 'assume-synced' },
    store: { path: gatewayDb, checkpointS: 0.25 },
    health: { controlSocket: join(o.dir, `${name}.sock`) },
    uplink: { batchMaxEncounters: 16, batchMaxAgeS: 0.5, resendInitialS: 0.5, resendMaxS: 2, statusIntervalS: 5 },
    log: { level: 'warn' },
  });
  const collectorCount = o.collectors ?? 1;
  const collectorConfigs = Array.from({ length: collectorCount }, (_, i) =>
    writeJson(join(o.dir, `${name}-collector-${i}.json`), {
      broker: { url: o.broker.url, reconnectS: 0.2, clientId: `collector-${name}-${i}` },
      topicPrefix: prefix,
      collector: { controlKeyFile: testBackendKeyFile(o.dir), database: o.database ?? collectorDb, registry, http: { port: 0 }, ...(collectorCount > 1 ? { shareGroup: `storm${o.seed}` } : {}) },
      log: { level: 'warn' },
    }),
  );
  const collectors: Spawned[] = collectorConfigs.map((c) => spawnVgw(['collect', '-c', c]));
  await sleep(1000);
  let collectorKills = 0;
  const livesSoFar = () => countSoFar(gatewayDb, 'SELECT count(*) FROM lives');
  // When each life ran (unix ms): started as its lives row says, until its kill or stop.
  const lastLifeStart = () => countSoFar(gatewayDb, 'SELECT max(started_at) FROM lives');
  const uptime: Array<[number, number]> = [];
  for (let k = 0; k < o.kills; k++) {
    const daemon = spawnVgw(['run', '-c', config]);
    // The kills fall in ingest and flush: each after its life has started (on a loaded machine
    // Node alone can take most of a second to start, and a kill before the store opens makes no life).
    await waitFor(`life ${k + 1} started`, () => livesSoFar() > k, 30_000);
    await sleep(random(200, 1700));
    uptime.push([lastLifeStart(), Date.now()]);
    daemon.proc.kill('SIGKILL');
    await daemon.exited();
    const db = new Database(gatewayDb, { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true }), `integrity at kill ${k + 1}`).toBe('ok');
    } finally {
      db.close();
    }
    if (o.collectorKillEvery > 0 && k % o.collectorKillEvery === o.collectorKillEvery - 1) {
      const victim = collectorKills % collectorCount;
      collectors[victim].proc.kill('SIGKILL');
      await collectors[victim].exited();
      collectorKills++;
      if (!o.database) {
        const cdb = new Database(collectorDb, { readonly: true });
        try {
          expect(cdb.pragma('integrity_check', { simple: true }), `collector integrity at kill ${collectorKills}`).toBe('ok');
        } finally {
          cdb.close();
        }
      }
      collectors[victim] = spawnVgw(['collect', '-c', collectorConfigs[victim]]);
    }
  }
  // Left running: the crowd passes, every encounter closes and the outbox drains.
  const daemon = spawnVgw(['run', '-c', config]);
  const endWall = crowd.anchor + (crowdEnd(truth) + 61_000 - crowd.anchor) / o.speed;
  await sleep(Math.max(0, endWall - Date.now()) + 1000);
  await waitFor('the gateway outbox drained', () => {
    const db = new Database(gatewayDb, { readonly: true });
    try {
      return outboxPending(db) === 0;
    } finally {
      db.close();
    }
  }, 120_000);
  // A clean stop sends what it closes and waits for the acks: everything the gateway ever
  // committed, the stop's own last encounters included, is then at the collector.
  const lastStart = lastLifeStart();
  expect(await stopGracefully(daemon), `signal ${daemon.proc.signalCode}; ${daemon.output().slice(-3000)}`).toBe(0);
  uptime.push([lastStart, Date.now()]);
  const committed = (() => {
    const db = new Database(gatewayDb, { readonly: true });
    try {
      expect(outboxPending(db), 'acknowledged before the gateway stopped').toBe(0);
      return { rows: gatewayEncounters(db), lives: db.prepare('SELECT count(*) FROM lives').pluck().get() as number };
    } finally {
      db.close();
    }
  })();
  await sleep(1000);
  for (const c of collectors) expect(await stopGracefully(c), c.output().slice(-3000)).toBe(0);
  const collected = await collectedEncounters(o.database ?? collectorDb, `gw-${name}`);
  const at = new Set(collected.map((r) => `${r.life}/${r.id}`));
  const lost = committed.rows.filter((r) => !at.has(`${r.life}/${r.id}`)).length;
  // A duplicate: two rows at the collector for one sighting — the same temp ID in overlapping
  // encounters, or more adverts than the phone sent.
  let duplicates = 0;
  const perRpi = new Map<string, EncounterRow[]>();
  for (const r of collected) perRpi.set(r.temp_id.toString('hex'), [...(perRpi.get(r.temp_id.toString('hex')) ?? []), r]);
  for (const [rpi, list] of perRpi) {
    list.sort((a, b) => a.first_seen - b.first_seen);
    for (let i = 1; i < list.length; i++) if (list[i].first_seen < list[i - 1].last_seen) duplicates++;
    if (list.reduce((n, r) => n + r.count, 0) > (truth.get(rpi)?.count ?? 0)) duplicates++;
  }
  // Phones whose time in range (simulated, so scaled back to the wall) overlapped a life's run long
  // enough: how many a storm must record does not depend on how long this machine takes to start Node.
  const wall = (sim: number) => crowd.anchor + (sim - crowd.anchor) / o.speed;
  const heardWhileUp = [...truth.values()].filter((t) => uptime.some(([from, to]) => Math.min(to, wall(t.last)) - Math.max(from, wall(t.first)) >= UP_OVERLAP_MS));
  return {
    kills: o.kills,
    collectorKills,
    committed: committed.rows.length,
    atCollector: collected.length,
    lost,
    duplicates,
    truthTempIds: truth.size,
    recordedTempIds: [...truth.keys()].filter((rpi) => perRpi.has(rpi)).length,
    heardWhileUp: heardWhileUp.length,
    missedWhileUp: heardWhileUp.filter((t) => !perRpi.has(t.rpi)).length,
    lives: committed.lives,
  };
}
