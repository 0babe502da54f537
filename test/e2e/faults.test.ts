// The faults a venue unit really meets, with the real daemon (a child process), a real
// Mosquitto and a real collector: clock steps (libfaketime), a deleted WAL after a SIGKILL, a
// deleted database, a corrupt one. Each must deliver every committed encounter, reuse no id,
// and say what happened.
import Database from 'better-sqlite3';
import { closeSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Collector } from '../../collector/index.js';
import { collectorSqlite, startCollector } from '../harness/collector.js';
import { waitGatewaySettled } from '../harness/gateway-db.js';
import { provisionTestGateway, TestIdentity } from '../harness/identity.js';
import { runVgw, spawnVgw, Spawned, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { useLocalBroker } from '../harness/broker.js';
import { fakeClockEnv, haveFaketime } from '../harness/faketime.js';
import { tempDir } from '../harness/tmp.js';
import { requirePackage } from '../harness/system-packages.js';

const dir = tempDir('vgw-faults-');
const broker = useLocalBroker(dir);
const SPEED = 40;

interface Unit {
  name: string;
  db: string;
  identity: TestIdentity;
  collector: Collector;
  /** Config with the real broker, and one whose broker does not exist (an outage). */
  online: string;
  offline: string;
}

async function unit(name: string, seed: number, phones: number, clockOffsetMs = 0): Promise<Unit> {
  const prefix = `faults-${name}/v1`;
  const identity = provisionTestGateway(dir, `gw-${name}`, `venue-${name}`);
  const db = join(dir, `${name}.db`);
  const base = (url: string) => ({
    gateway: { id: `gw-${name}`, venue: `venue-${name}` },
    secretsFile: identity.secretsFile,
    broker: { url, reconnectS: 0.5, connectTimeoutS: 2 },
    topicPrefix: prefix,
    radio: { simulated: { seed, phones, arrivalsPerMinute: 30, minDwellS: 30, maxDwellS: 120, speed: SPEED, anchor: Date.now() + clockOffsetMs + 1500 } },
    clock: { syncCheck: 'assume-synced' },
    store: { path: db, checkpointS: 0.25 },
    health: { controlSocket: join(dir, `${name}.sock`) },
    uplink: { batchMaxEncounters: 16, batchMaxAgeS: 1, resendInitialS: 1, resendMaxS: 4, statusIntervalS: 1 },
    log: { level: 'info' },
  });
  const online = writeJson(join(dir, `${name}.json`), base(broker().url));
  const offline = writeJson(join(dir, `${name}-offline.json`), base('mqtt://127.0.0.1:9'));
  const collector = await startCollector(broker().url, `collector-${name}`, prefix, join(dir, `${name}-collector.db`), [identity.record]);
  return { name, db, identity, collector, online, offline };
}

/** `vgw run` with optional libfaketime settings (the monotonic clock stays real, as under NTP). */
function run(config: string, faketime?: Record<string, string>): Spawned {
  const env = faketime ? { ...process.env, ...fakeClockEnv(faketime) } : process.env;
  return spawnVgw(['run', '-c', config], env);
}

function gatewayEncounters(db: string): number {
  const g = new Database(db, { readonly: true });
  try {
    return g.prepare('SELECT count(*) FROM encounters').pluck().get() as number;
  } finally {
    g.close();
  }
}

/** Encounter ids by `sql`, from a gateway's file or a collector's database. */
function ids(sql: string, from: string | Database.Database, ...params: string[]): number[] {
  const db = typeof from === 'string' ? new Database(from, { readonly: true }) : from;
  try {
    return db.prepare(sql).pluck().all(...params) as number[];
  } finally {
    if (typeof from === 'string') db.close();
  }
}

function collectorCount(u: Unit): number {
  return collectorSqlite(u.collector).prepare('SELECT count(*) FROM encounters WHERE gateway = ?').pluck().get(`gw-${u.name}`) as number;
}

async function statusJson(config: string): Promise<Record<string, any>> {
  const r = await runVgw(['status', '-c', config, '--json']);
  expect(r.status, r.stdout + r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, any>;
}

/** Runs the unit offline until encounters are committed, then stops it cleanly; returns how many. */
async function recordOffline(u: Unit, faketime?: Record<string, string>): Promise<number> {
  const d = run(u.offline, faketime);
  await waitFor('encounters committed offline', () => gatewayEncounters(u.db) >= 20, 30_000);
  expect(await stopGracefully(d)).toBe(0);
  return gatewayEncounters(u.db);
}

describe('clock steps (libfaketime) never delete unsent encounters', () => {
  beforeAll(() => requirePackage(haveFaketime, 'libfaketime', 'faketime'));
  it.each([
    ['restart with the clock 30 days ahead (NTP stepping a stale clock forward)', 'step-fwd', 0, { FAKETIME: '+0' }, { FAKETIME: '+30d' }],
    ['recorded 20 days in the past (fake-hwclock at boot), then the clock corrected', 'step-back', -20 * 86_400_000, { FAKETIME: '-20d' }, undefined],
  ] as const)('%s: every committed encounter is delivered', async (_what, name, offset, first, second) => {
    const u = await unit(name, 11 + name.length, 400, offset);
    const committed = await recordOffline(u, first);
    const d = run(u.online, second);
    await waitFor('everything delivered', () => collectorCount(u) >= committed, 60_000);
    await waitGatewaySettled(u.online);
    expect(collectorCount(u)).toBe(committed);
    const status = (await statusJson(u.online));
    expect(status.counters.store.purgedUnacked).toBe(0);
    expect(await stopGracefully(d)).toBe(0);
    expect(u.collector.counters.batchesRejected).toBe(0);
    await u.collector.stop();
  });

  it('a step of 30 days while running, with the broker out, then a restart: every committed encounter is delivered', async () => {
    const u = await unit('step-live', 23, 400);
    const file = join(dir, 'step-live.faketime');
    writeFileSync(file, '+0\n');
    const d = run(u.offline, { FAKETIME_TIMESTAMP_FILE: file });
    await waitFor('encounters committed', () => gatewayEncounters(u.db) >= 20, 30_000);
    // (The simulated crowd's time follows the wall clock, so the step ahead ends it: every encounter
    // closes. A step back with encounters waiting for a batch is in test/unit/store.test.ts.)
    for (const step of ['+30d', '-30d', '+0']) {
      const before = gatewayEncounters(u.db);
      writeFileSync(file, `${step}\n`);
      await waitFor(`after the step to ${step}, everything closed is batched`, async () => {
        const { encounters, store } = (await statusJson(u.offline)).counters as { encounters: { open: number }; store: { pending: number; unbatched: number } };
        return encounters.open === 0 && store.pending === 0 && store.unbatched === 0;
      }, 30_000);
      expect(gatewayEncounters(u.db)).toBeGreaterThanOrEqual(before); // nothing purged by the step
    }
    expect(await stopGracefully(d)).toBe(0);
    // The restarted unit records more of the crowd (its clock is real again): what counts is that
    // every encounter committed before it is at the collector.
    const committed = ids('SELECT id FROM encounters', u.db);
    const again = run(u.online);
    await waitFor('every committed encounter delivered', () => {
      const delivered = new Set(ids('SELECT id FROM encounters WHERE gateway = ?', collectorSqlite(u.collector), `gw-${u.name}`));
      return committed.every((id) => delivered.has(id));
    }, 60_000);
    expect(await stopGracefully(again)).toBe(0);
    await u.collector.stop();
  });
});

describe('a lost, rolled-back or corrupt database', () => {
  it.each([
    ['its WAL deleted after a SIGKILL', 'wal-lost', ['-wal', '-shm'], 'rolled_back'],
    ['the database deleted', 'db-lost', ['', '-wal', '-shm'], 'lost'],
  ] as const)('%s: a new life; the collector takes everything new, refuses nothing; status and doctor say so', async (_what, name, remove, kind) => {
    const u = await unit(name, 31 + name.length, 0);
    const d = run(u.online);
    await waitFor('batches delivered', () => collectorCount(u) >= 30, 30_000);
    d.proc.kill('SIGKILL');
    await d.exited();
    for (const suffix of remove) rmSync(u.db + suffix, { force: true });
    const again = run(u.online);
    await waitFor('the restarted daemon', () => statusJson(u.online), 20_000);
    const status = (await statusJson(u.online));
    expect(status.counters.store.database.lastEvent.kind).toBe(kind);
    const newLife = status.counters.store.database.life as string;
    const ofNewLife = () => collectorSqlite(u.collector).prepare('SELECT count(*) FROM encounters WHERE gateway = ? AND life = ?').pluck().get(`gw-${name}`, newLife) as number;
    await waitFor('more than 20 of the new life at the collector', () => ofNewLife() > 20, 30_000);
    expect(await stopGracefully(again)).toBe(0);
    // The new life's encounters are at the collector under their own (life, id): every one the
    // gateway saw acknowledged, nothing it did not commit, nothing dropped as a duplicate.
    const g = new Database(u.db, { readonly: true });
    const life = g.prepare('SELECT life FROM lives ORDER BY first_id DESC, rowid DESC LIMIT 1').pluck().get() as string;
    const committed = new Set(g.prepare('SELECT id FROM encounters WHERE id >= (SELECT first_id FROM lives WHERE life = ?)').pluck().all(life) as number[]);
    const acked = g.prepare(
      `SELECT e.id FROM encounters e JOIN batches b ON e.id BETWEEN b.first_id AND b.last_id WHERE b.life = ? AND b.acked_at IS NOT NULL ORDER BY e.id`,
    ).pluck().all(life) as number[];
    g.close();
    expect(acked.length).toBeGreaterThan(20);
    const atCollector = collectorSqlite(u.collector).prepare('SELECT id FROM encounters WHERE gateway = ? AND life = ? ORDER BY id').pluck().all(`gw-${name}`, life) as number[];
    expect(atCollector.filter((id) => acked.includes(id))).toEqual(acked);
    for (const id of atCollector) expect(committed.has(id)).toBe(true);
    expect(u.collector.counters.batchesOutOfSequence).toBe(0);
    expect(u.collector.counters.batchesRejected).toBe(0);
    expect(u.collector.counters.encountersDuplicate).toBe(0);
    const doctor = await runVgw(['doctor', '-c', u.online]);
    expect(doctor.stdout).toMatch(new RegExp(`database.*${kind}`));
    await u.collector.stop();
  });

  it('a corrupt database: set aside, the daemon runs on a new one and says so; no crash loop', async () => {
    const u = await unit('corrupt', 41, 0);
    const d = run(u.online);
    await waitFor('batches delivered', () => collectorCount(u) >= 30, 30_000);
    expect(await stopGracefully(d)).toBe(0);
    const size = statSync(u.db).size;
    const fd = openSync(u.db, 'r+');
    writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, Math.max(4096, Math.floor(size / 2 / 4096) * 4096));
    closeSync(fd);
    const before = collectorCount(u);
    const again = run(u.online);
    await waitFor('new encounters delivered', () => collectorCount(u) >= before + 20, 30_000);
    const status = (await statusJson(u.online));
    expect(status.counters.store.database.lastEvent.kind).toBe('corrupt');
    expect((await runVgw(['status', '-c', u.online])).stdout).toMatch(/LAST EVENT corrupt/);
    expect(again.proc.exitCode).toBeNull(); // still running
    expect(await stopGracefully(again)).toBe(0);
    expect(again.output()).toMatch(/database problem found and handled/);
    expect(u.collector.counters.batchesOutOfSequence).toBe(0);
    await u.collector.stop();
  });
});
