// Power cuts across a whole life of a gateway and its collector. One run is recorded (both
// processes under powercut.c, on one timeline): the gateway upgrades a schema-1 database at
// start, ingests a crowd, cuts, publishes and commits acks, stops, and starts again two days
// later (libfaketime) to purge what it kept; the collector starts on a new database, stores
// and acknowledges. Cut points are taken all along that record; at each, the side that lost
// power gets the files a disk could hold (synced, or synced plus some unsynced writes), the
// other side the files as a kill there would leave them. Both are restarted from those files
// and left to drain, then checked against what the record says was promised.
import Database from 'better-sqlite3';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalBroker } from '../../simulators/index.js';
import { MIGRATIONS } from '../../daemon/store/schema.js';
import { startCollector } from './collector.js';
import { fakeClockEnv } from './faketime.js';
import { EncounterRow, gatewayEncounters, outboxPending } from './gateway-db.js';
import { provisionTestGateway, TestIdentity, testBackendKeyFile } from './identity.js';
import { buildState, Op, readRecord, recorderEnv } from './powercut.js';
import { sleep, spawnVgw, stopGracefully, waitFor, writeJson } from './processes.js';
import { seeded } from './random.js';

const GATEWAY_TAG = 1;
const COLLECTOR_TAG = 2;
const DAY_MS = 86_400_000;
/** The second life runs this much later by the wall clock: past the 1-day retention. */
const LATER = '+2d';

export interface Recording {
  ops: Op[];
  root: string;
  gatewayDisk: string;
  collectorDisk: string;
  /** The schema-1 database the gateway found at its first start. */
  initial: Map<string, Buffer>;
  identity: TestIdentity;
  gateway: string;
  venue: string;
  /** Op ranges of the gateway's process lives, with the clock offset each ran at. */
  lives: Array<{ from: number; to: number; faketime: string | null }>;
}

/** The clock a gateway life ran at: real, or `faketime` away under libfaketime. */
function clockEnv(faketime: string | null): Record<string, string> {
  return faketime === null ? {} : fakeClockEnv({ FAKETIME: faketime });
}

function gatewayConfig(path: string, o: {
  gateway: string; venue: string; secretsFile: string; url: string; prefix: string; clientId: string; db: string; socket: string;
  anchor: number; level: string; purgeBatchSize: number;
}): string {
  return writeJson(path, {
    gateway: { id: o.gateway, venue: o.venue },
    secretsFile: o.secretsFile,
    broker: { url: o.url, reconnectS: 0.2, connectTimeoutS: 5, clientId: o.clientId },
    topicPrefix: o.prefix,
    radio: { simulated: { seed: 41, phones: 0, arrivalsPerMinute: 40, minDwellS: 20, maxDwellS: 90, speed: 20, anchor: o.anchor } },
    clock: { syncCheck: 'assume-synced' },
    store: { path: o.db, checkpointS: 0.4, retentionDays: 1, unackedMaxDays: 1, purgeBatchSize: o.purgeBatchSize },
    health: { controlSocket: o.socket },
    uplink: { batchMaxEncounters: 8, batchMaxAgeS: 0.5, resendInitialS: 0.5, resendMaxS: 1, statusIntervalS: 30 },
    log: { level: o.level },
  });
}

/** A database as a gateway of schema 1 left it: two batches in the outbox, one encounter unbatched. */
function legacyDatabase(path: string): void {
  const db = new Database(path);
  db.exec(MIGRATIONS[0] as string);
  db.pragma('user_version = 1');
  const at = Date.now() - 3_600_000;
  const row = db.prepare(`INSERT INTO encounters VALUES (?, 0, ?, ?, ?, ?, 12, -80, -60, -840, 12, '[1000,2600,0,400]', 1)`);
  for (let id = 1; id <= 5; id++) row.run(id, Buffer.alloc(16, 0xa0 + id), Buffer.alloc(4), at + id * 1000, at + id * 1000 + 4000);
  db.prepare(`INSERT INTO batches VALUES ('01KAAAAAAAAAAAAAAAAAAAAAAA', 1, 1, 2, ?, NULL)`).run(at + 10_000);
  db.prepare(`INSERT INTO batches VALUES ('01KAAAAAAAAAAAAAAAAAAAAAAB', 2, 3, 4, ?, NULL)`).run(at + 20_000);
  db.prepare(`UPDATE meta SET value = 3 WHERE key = 'next_seq'`).run();
  db.close();
}

/** Records one life of a gateway and its collector, `lifeS` seconds per gateway process. */
export async function recordLife(root: string, broker: LocalBroker, lib: string, lifeS: number): Promise<Recording> {
  const gateway = 'gw-pc';
  const venue = 'venue-pc';
  const disks = join(root, 'disks');
  const gatewayDisk = join(disks, 'gateway');
  const collectorDisk = join(disks, 'collector');
  mkdirSync(gatewayDisk, { recursive: true });
  mkdirSync(collectorDisk, { recursive: true });
  const identity = provisionTestGateway(root, gateway, venue);
  const registry = writeJson(join(root, 'registry.json'), [identity.record]);
  const db = join(gatewayDisk, 'gateway.db');
  legacyDatabase(db);
  const initial = new Map([[db, readFileSync(db)]]);
  const log = join(root, 'record.bin');
  const prefix = 'pc-record/v1';
  const collectorConfig = writeJson(join(root, 'collector.json'), {
    broker: { url: broker.url, reconnectS: 0.2, clientId: 'collector-pc-record' },
    topicPrefix: prefix,
    collector: { controlKeyFile: testBackendKeyFile(root), database: join(collectorDisk, 'collector.db'), registry, http: { port: 0 } },
    log: { level: 'debug' },
  });
  const collector = spawnVgw(['collect', '-c', collectorConfig], { ...process.env, ...recorderEnv(lib, disks, log, COLLECTOR_TAG) });
  await waitFor('the collector connected', () => collector.output().includes('collector connected'), 20_000);
  const lives: Recording['lives'] = [];
  const opsSoFar = () => (existsSync(log) ? readRecord(log).length : 0);
  for (const faketime of [null, LATER] as const) {
    const shift = faketime === null ? 0 : 2 * DAY_MS;
    const config = gatewayConfig(join(root, `gateway-${lives.length}.json`), {
      gateway, venue, secretsFile: identity.secretsFile, url: broker.url, prefix, clientId: 'vgw-pc-record', db,
      socket: join(root, 'gw.sock'), anchor: Date.now() + shift, level: 'debug', purgeBatchSize: 8,
    });
    const from = opsSoFar();
    const recorder = recorderEnv(lib, disks, log, GATEWAY_TAG);
    const clock = clockEnv(faketime);
    const env = { ...process.env, ...clock, ...recorder, LD_PRELOAD: [recorder.LD_PRELOAD, clock.LD_PRELOAD].filter(Boolean).join(':') };
    const daemon = spawnVgw(['run', '-c', config], env);
    await sleep(lifeS * 1000);
    // The first life stops as systemd stops it; the second is killed (the cut that ends the record).
    if (faketime === null) await stopGracefully(daemon);
    else {
      daemon.proc.kill('SIGKILL');
      await daemon.exited();
    }
    lives.push({ from, to: opsSoFar(), faketime });
    if (!daemon.output().includes('daemon started')) throw new Error(`gateway life ${lives.length} did not start:\n${daemon.output().slice(-3000)}`);
  }
  await sleep(500);
  await stopGracefully(collector);
  return { ops: readRecord(log), root, gatewayDisk, collectorDisk, initial, identity, gateway, venue, lives };
}

export interface Cut {
  at: number;
  side: 'gateway' | 'collector';
  phase: string;
}

function logLine(op: Op): Record<string, unknown> | null {
  if (op.kind !== 'log') return null;
  try {
    return JSON.parse(op.data.toString().split('\n')[0]) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** What the side was doing at op `at`: read from its next log line (or the ack it just sent). */
function phaseAt(ops: Op[], at: number, side: Cut['side']): string {
  const tag = side === 'gateway' ? GATEWAY_TAG : COLLECTOR_TAG;
  const prev = ops[at - 1];
  if (side === 'collector' && prev?.kind === 'ack' && prev.tag === tag) return 'collector: ack sent';
  for (let i = at; i < ops.length; i++) {
    const op = ops[i];
    if (op.kind !== 'log' || op.tag !== tag) continue;
    const line = logLine(op);
    const msg = String(line?.msg ?? '');
    if (side === 'collector') {
      if (msg === 'batch stored' || msg.startsWith('batch already stored')) return 'collector: batch commit';
      if (msg === 'collector connected') return 'collector: start, migrations';
      if (msg === 'collector stopped') return 'collector: stop (WAL checkpoint at close)';
      continue;
    }
    if (msg === 'daemon started') return 'gateway: start (schema upgrade, recovery, new life)';
    if (msg === 'daemon stopped') return 'gateway: stop (WAL checkpoint at close)';
    if (msg === 'batch published') return 'gateway: publish';
    if (msg === 'ack received') return 'gateway: ack received';
    if (msg === 'committed') {
      if (Number(line!.purged) > 0) return 'gateway: retention purge';
      if (Number(line!.acked) > 0) return 'gateway: ack commit';
      if (Number(line!.cut) > 0) return 'gateway: batch cut';
      if (Number(line!.encounters) > 0) return 'gateway: ingest (group commit)';
      if (line!.checkpoint === true) return 'gateway: checkpoint of open encounters';
      return 'gateway: commit';
    }
  }
  return `${side}: last writes before the kill`;
}

/** Cut points: around every sync of either side, and just after every ack the collector sent. */
export function cutPoints(r: Recording): Cut[] {
  const sideOfFile = (file: number) => (file >>> 24 === GATEWAY_TAG ? 'gateway' : 'collector');
  const at = new Map<string, Cut>();
  const add = (i: number, side: Cut['side']) => {
    if (i <= 0 || i > r.ops.length) return;
    if (side === 'gateway' && !r.lives.some((l) => i > l.from && i <= l.to)) return;
    at.set(`${side}@${i}`, { at: i, side, phase: phaseAt(r.ops, i, side) });
  };
  r.ops.forEach((op, i) => {
    if (op.kind === 'sync') {
      add(i, sideOfFile(op.file));
      add(i + 1, sideOfFile(op.file));
    } else if (op.kind === 'ack' && op.tag === COLLECTOR_TAG) add(i + 1, 'collector');
    else if (op.kind === 'log' && op.tag === GATEWAY_TAG) {
      const msg = logLine(op)?.msg;
      if (msg === 'ack received' || msg === 'batch published') add(i + 1, 'gateway');
    }
  });
  return [...at.values()].sort((a, b) => a.at - b.at);
}

/** `n` cuts spread over every phase in turn, so each phase of the life gets its share. */
export function chooseCuts(cuts: Cut[], n: number): Cut[] {
  const byPhase = new Map<string, Cut[]>();
  for (const c of cuts) byPhase.set(c.phase, [...(byPhase.get(c.phase) ?? []), c]);
  const queues = [...byPhase.values()].map((list) => {
    // Evenly spread: the middle first, then the halves' middles, and so on.
    const order: Cut[] = [];
    const spread = (lo: number, hi: number) => {
      if (lo > hi) return;
      const mid = (lo + hi) >> 1;
      order.push(list[mid]);
      spread(lo, mid - 1);
      spread(mid + 1, hi);
    };
    spread(0, list.length - 1);
    return order;
  });
  const chosen: Cut[] = [];
  for (let round = 0; chosen.length < n && queues.some((q) => q.length > round); round++) {
    for (const q of queues) if (round < q.length && chosen.length < n) chosen.push(q[round]);
  }
  return chosen;
}

const key = (r: { life: string; id: number }) => `${r.life}/${r.id}`;
/** Whether the collector's row is the gateway's encounter as the wire carries it (whole seconds). */
function sameEncounter(atCollector: EncounterRow, atGateway: EncounterRow): boolean {
  const firstSeen = Math.floor(atGateway.first_seen / 1000) * 1000;
  const lastSeen = Math.max(firstSeen, Math.ceil(atGateway.last_seen / 1000) * 1000);
  return atCollector.temp_id.equals(atGateway.temp_id) && atCollector.first_seen === firstSeen && atCollector.last_seen === lastSeen
    && atCollector.count === atGateway.count;
}

const LOSS_EVENTS = "kind IN ('corrupt', 'lost', 'replaced', 'rolled_back', 'unacked_purged')";

/** Opens a copy of the files (SQLite may change them while recovering) and reads it. */
function inspect<T>(dir: string, file: string, scratch: string, read: (db: Database.Database) => T): { ok: string; value: T | null } {
  rmSync(scratch, { recursive: true, force: true });
  cpSync(dir, scratch, { recursive: true });
  let db: Database.Database | undefined;
  try {
    db = new Database(join(scratch, file));
    const ok = String(db.pragma('integrity_check', { simple: true }));
    return { ok, value: ok === 'ok' ? read(db) : null };
  } catch (err) {
    return { ok: `does not open: ${(err as Error).message}`, value: null };
  } finally {
    db?.close();
  }
}

export interface StateResult {
  failures: string[];
  encounters: number;
}

/**
 * Builds the state a cut leaves, restarts both sides from it, drains, and checks: both
 * databases open and pass integrity_check; every batch acknowledged before the cut is at the
 * collector; after the drain the collector holds every encounter the gateway held (the same
 * content under the same life and id), no batch was refused for a reused sequence number, the
 * gateway's new life is one the collector never saw, and no cut looks like a lost database.
 */
export async function checkCut(r: Recording, cut: Cut, variant: 'synced' | 'some unsynced', n: number, broker: LocalBroker, seed: number): Promise<StateResult> {
  const random = seeded(seed);
  const base = join(r.root, `state-${n}`);
  const g = join(base, 'gateway');
  const c = join(base, 'collector');
  const lost = variant === 'synced' ? () => false : () => random(0, 1) < 0.5;
  const alive = () => true;
  mkdirSync(g, { recursive: true });
  mkdirSync(c, { recursive: true });
  buildState(r.ops, cut.at, r.gatewayDisk, g, cut.side === 'gateway' ? lost : alive, r.initial);
  buildState(r.ops, cut.at, r.collectorDisk, c, cut.side === 'collector' ? lost : alive);
  const failures: string[] = [];
  const fail = (what: string) => failures.push(`${cut.phase}, ${cut.side} cut at op ${cut.at} (${variant}): ${what}`);

  const acked = new Set<string>();
  for (let i = 0; i < cut.at; i++) {
    const op = r.ops[i];
    if (op.kind !== 'ack' || op.tag !== COLLECTOR_TAG) continue;
    const m = /"acks":\[([^\]]*)\]/.exec(op.data.toString('latin1'));
    for (const id of m?.[1].match(/[0-9A-Z]{26}/g) ?? []) acked.add(id);
  }
  const gwBefore = existsSync(join(g, 'gateway.db'))
    ? inspect(g, 'gateway.db', join(base, 'check-g'), (db) => ({
      encounters: gatewayEncounters(db),
      lives: db.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'lives'").pluck().get() === 1
        ? db.prepare('SELECT life FROM lives').pluck().all() as string[] : [],
      lossEvents: db.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'events'").pluck().get() === 1
        ? db.prepare(`SELECT count(*) FROM events WHERE ${LOSS_EVENTS}`).pluck().get() as number : 0,
    }))
    : { ok: 'ok', value: { encounters: [] as EncounterRow[], lives: [] as string[], lossEvents: 0 } };
  if (gwBefore.ok !== 'ok') fail(`gateway database: ${gwBefore.ok}`);
  const colBefore = existsSync(join(c, 'collector.db'))
    ? inspect(c, 'collector.db', join(base, 'check-c'), (db) => {
      const hasTables = db.prepare("SELECT count(*) FROM sqlite_schema WHERE name IN ('batches', 'lives')").pluck().get() === 2;
      return {
        batches: new Set(hasTables ? (db.prepare('SELECT id FROM batches').pluck().all() as string[]) : []),
        lives: new Set(hasTables ? (db.prepare('SELECT life FROM lives').pluck().all() as string[]) : []),
      };
    })
    : { ok: 'ok', value: { batches: new Set<string>(), lives: new Set<string>() } };
  if (colBefore.ok !== 'ok') fail(`collector database: ${colBefore.ok}`);
  const heldBefore = colBefore.value;
  if (heldBefore) {
    const missing = [...acked].filter((id) => !heldBefore.batches.has(id));
    if (missing.length > 0) fail(`${missing.length} of ${acked.size} batches the collector had acknowledged are not in its database`);
  }
  if (failures.length > 0) return { failures, encounters: 0 };

  // Restart both from the state: the collector as the test's own instance, the gateway as
  // `vgw run` at the clock its life had, its crowd not yet arrived. Topics, client ids and
  // sessions are the state's own, so no message of another state reaches them.
  const prefix = `pc-state-${n}/v1`;
  const collector = await startCollector(broker.url, `collector-pc-${n}`, prefix, join(c, 'collector.db'), [r.identity.record]);
  const life = [...r.lives].reverse().find((l) => l.from < cut.at) ?? r.lives[0];
  const config = gatewayConfig(join(base, 'gateway.json'), {
    gateway: r.gateway, venue: r.venue, secretsFile: r.identity.secretsFile, url: broker.url, prefix, clientId: `vgw-pc-${n}`,
    db: join(g, 'gateway.db'), socket: join(base, 'gw.sock'), anchor: Date.now() + 30 * DAY_MS, level: 'warn', purgeBatchSize: 500,
  });
  const daemon = spawnVgw(['run', '-c', config], { ...process.env, ...clockEnv(life.faketime) });
  let after: { encounters: EncounterRow[]; newLife: string; lossEvents: number } | null = null;
  try {
    after = await waitFor('the gateway outbox drained', () => {
      if (daemon.proc.exitCode !== null) throw new Error(`the gateway exited (${daemon.proc.exitCode}): ${daemon.output().slice(-2000)}`);
      const db = new Database(join(g, 'gateway.db'), { readonly: true, fileMustExist: true });
      try {
        const pending = outboxPending(db);
        // The restarted gateway has started once it has a life of its own.
        const newLife = (db.prepare('SELECT life FROM lives').pluck().all() as string[]).find((l) => !gwBefore.value!.lives.includes(l));
        if (pending > 0 || newLife === undefined) return undefined;
        return {
          encounters: gatewayEncounters(db),
          newLife,
          lossEvents: db.prepare(`SELECT count(*) FROM events WHERE ${LOSS_EVENTS}`).pluck().get() as number,
        };
      } finally {
        db.close();
      }
    }, 30_000);
  } catch (err) {
    fail((err as Error).message);
  }
  const stopped = await stopGracefully(daemon);
  await collector.stop();
  if (stopped !== 0) fail(`the restarted gateway exited with ${stopped}: ${daemon.output().slice(-2000)}`);
  if (collector.counters.batchesOutOfSequence > 0) fail(`${collector.counters.batchesOutOfSequence} batches refused: sequence number reused`);
  if (collector.counters.batchesRejected > 0) fail(`${collector.counters.batchesRejected} batches refused by the collector`);
  if (!after || !gwBefore.value) return { failures, encounters: 0 };
  if (after.lossEvents > gwBefore.value.lossEvents) fail('the restarted gateway recorded a lost, rolled-back or corrupt database');
  if (colBefore.value?.lives.has(after.newLife) === true) fail(`the gateway's new life ${after.newLife} was already used`);
  const cdb = new Database(join(c, 'collector.db'), { readonly: true });
  const atCollector = new Map((cdb.prepare('SELECT life, id, temp_id, first_seen, last_seen, count FROM encounters WHERE gateway = ?').all(r.gateway) as EncounterRow[]).map((e) => [key(e), e]));
  cdb.close();
  const expected = new Map([...gwBefore.value.encounters, ...after.encounters].map((e) => [key(e), e]));
  let missing = 0;
  let differ = 0;
  for (const [k, e] of expected) {
    const held = atCollector.get(k);
    if (!held) missing++;
    else if (!sameEncounter(held, e)) differ++;
  }
  if (missing > 0) fail(`${missing} of ${expected.size} encounters the gateway committed are not at the collector after the drain`);
  if (differ > 0) fail(`${differ} encounters differ between the gateway and the collector under one life and id (an id reused)`);
  rmSync(base, { recursive: true, force: true });
  return { failures, encounters: expected.size };
}

export interface PowerCutReport {
  states: number;
  cutPoints: number;
  operations: number;
  encounters: number;
  phases: Record<string, number>;
  failures: string[];
}

/** The phases the issue names, each of which a run must have cut into. */
export const PHASES = [
  'gateway: start (schema upgrade, recovery, new life)', 'gateway: ingest (group commit)', 'gateway: batch cut', 'gateway: publish',
  'gateway: ack received', 'gateway: ack commit', 'gateway: retention purge', 'gateway: checkpoint of open encounters',
  'collector: batch commit', 'collector: ack sent', 'collector: start, migrations',
];

/** Records a life, then builds, restarts and checks `states` crash states (two per cut point). */
export async function powerCuts(dir: string, broker: LocalBroker, lib: string, states: number, lifeS: number): Promise<PowerCutReport> {
  const record = await recordLife(dir, broker, lib, lifeS);
  const cuts = cutPoints(record);
  const phases: Record<string, number> = {};
  const failures: string[] = [];
  let n = 0;
  let encounters = 0;
  for (const cut of chooseCuts(cuts, Math.ceil(states / 2))) {
    for (const variant of ['synced', 'some unsynced'] as const) {
      const result = await checkCut(record, cut, variant, n, broker, 1000 + n);
      n++;
      encounters += result.encounters;
      phases[cut.phase] = (phases[cut.phase] ?? 0) + 1;
      failures.push(...result.failures);
    }
  }
  return { states: n, cutPoints: cuts.length, operations: record.ops.length, encounters, phases, failures };
}
