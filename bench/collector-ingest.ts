// collector_encounters_per_s: how fast `vgw collect` stores a fleet's backlog, into SQLite and
// into PostgreSQL, with one collector and with two in a shared group. The collectors subscribe
// once (their persistent sessions stay at the broker), stop, and a publisher queues a backlog of
// signed 256-encounter batches from 200 gateways for them; then they start again as processes of
// their own, and the clock runs from their start until the database holds every batch.
// Everything runs on this machine at once: Mosquitto, PostgreSQL, the collectors.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import pg from 'pg';
import { ulid } from 'ulid';
import { toWire } from '../core/encounters/index.js';
import { newIdentity, signBytes, signingKeyFromSeed, writeNewBackendKey, type RegistrationRecord } from '../core/trust/index.js';
import { encodeBatch, gatewayTopics } from '../core/wire/index.js';
import { LocalBroker, LocalPostgres } from '../simulators/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '..', 'cli', 'main.js');
const GATEWAYS = 200;
const BATCHES = Number(process.argv[2] ?? 2000);
// 256: a busy venue's full batches; a fleet's average is a few encounters a batch (docs/scaling.md)
const PER_BATCH = Number(process.argv[3] ?? 256);
const tag = PER_BATCH === 256 ? '' : `_batch${PER_BATCH}`;
const dir = mkdtempSync(join(tmpdir(), 'vgw-bench-ingest-'));
const broker = await LocalBroker.start(join(dir, 'broker'), 'max_queued_messages 1000000\nmax_queued_bytes 0');
const postgres = await LocalPostgres.start();

// The backlog: signed batches of 200 gateways, made once and published for each run.
const records: RegistrationRecord[] = [];
const messages: Array<{ topic: string; payload: Buffer }> = [];
const gateways = Array.from({ length: GATEWAYS }, (_, i) => {
  const { secrets, record } = newIdentity({ gateway: `ingest-gw-${i}`, venue: `ingest-venue-${i}`, beacon: { exponent: 10, epochS: 0, txPowerDbm: -20 } });
  records.push(record);
  const key = signingKeyFromSeed(Buffer.from(secrets.signingKey, 'hex'));
  return { id: record.gateway, venue: record.venue, life: ulid(), seq: 0, nextId: 1, sign: (d: Buffer) => signBytes(key, d) };
});
const now = Date.now();
for (let b = 0; b < BATCHES; b++) {
  const g = gateways[b % GATEWAYS];
  const encounters = Array.from({ length: PER_BATCH }, () => {
    const id = g.nextId++;
    const lastSeen = now - 3_600_000 + (id % 3600) * 1000;
    return toWire({
      id, protocol: 0, tempId: Buffer.from(ulid().slice(0, 16)), metadata: Buffer.alloc(4), firstSeen: lastSeen - 300_000, lastSeen, count: 75,
      rssiMin: -85, rssiMax: -60, rssiSum: -72 * 75, rssiCount: 75, bucketMs: [20_000, 100_000, 150_000, 30_000], clockSynced: true,
    });
  });
  messages.push({ topic: gatewayTopics('PREFIX', g.venue, g.id).batch, payload: encodeBatch({ kind: 'batch', id: ulid(), gateway: g.id, venue: g.venue, life: g.life, seq: ++g.seq, createdAt: now }, encounters, g.sign) });
}
const registry = join(dir, 'registry.json');
writeFileSync(registry, JSON.stringify(records));
// the key the collectors sign their acks with (protocol 3); nothing here reads the acks
const controlKeyFile = join(dir, 'backend.key');
writeNewBackendKey(controlKeyFile);

/** A `vgw collect` process, and when it said it was connected (its backlog starts arriving then). */
function collector(config: string): Promise<{ child: ChildProcess; connectedAt: number }> {
  const child = spawn(process.execPath, [cli, 'collect', '-c', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('"collector connected"')) {
        out = '';
        resolve({ child, connectedAt: Date.now() });
      }
    });
    child.once('exit', (code) => reject(new Error(`collector exited with ${code}`)));
  });
}

const stop = (c: ChildProcess) => new Promise<void>((r) => (c.exitCode !== null ? r() : (c.once('exit', () => r()), c.kill('SIGTERM'))));

async function storedBatches(database: string): Promise<number> {
  if (database.startsWith('postgres')) {
    const client = new pg.Client(database);
    await client.connect();
    try {
      return Number((await client.query('SELECT count(*) AS n FROM batches')).rows[0].n);
    } finally {
      await client.end();
    }
  }
  const db = new Database(database, { readonly: true });
  try {
    return db.prepare('SELECT count(*) FROM batches').pluck().get() as number;
  } finally {
    db.close();
  }
}

/** Stores the backlog with one collector per entry of `databases`; `name` (e.g. postgres_2) names its figures. */
async function run(name: string, databases: string[]): Promise<void> {
  const prefix = `ingest-${name}/v2`;
  const configs = databases.map((database, i) => {
    const path = join(dir, `${name}-${i}.json`);
    writeFileSync(path, JSON.stringify({
      broker: { url: broker.url, clientId: `ingest-${name}-${i}` },
      topicPrefix: prefix,
      collector: { database, registry, controlKeyFile, http: { port: 0 }, ...(databases.length > 1 ? { shareGroup: `ingest${name}` } : {}) },
      log: { level: 'info' },
    }));
    return path;
  });
  // Subscribe once, then stop: the broker queues the backlog for their sessions.
  for (const c of await Promise.all(configs.map(collector))) await stop(c.child);
  const publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `ingest-pub-${name}` });
  for (let i = 0; i < messages.length; i += 100) {
    await Promise.all(messages.slice(i, i + 100).map((m) => publisher.publishAsync(m.topic.replace('PREFIX', prefix), m.payload, { qos: 1 })));
  }
  await publisher.endAsync();
  const running = await Promise.all(configs.map(collector));
  const t0 = Math.min(...running.map((r) => r.connectedAt));
  const unique = [...new Set(databases)];
  for (;;) {
    const stored = (await Promise.all(unique.map(storedBatches))).reduce((a, b) => a + b, 0);
    if (stored >= BATCHES) break;
    if (Date.now() - t0 > 600_000) throw new Error(`${name}: ${stored} of ${BATCHES} batches after 600 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const seconds = (Date.now() - t0) / 1000;
  for (const c of running) await stop(c.child);
  report[`collector_batches_per_s_${name}${tag}`] = Math.round(BATCHES / seconds);
  report[`collector_encounters_per_s_${name}${tag}`] = Math.round((BATCHES * PER_BATCH) / seconds);
}

const report: Record<string, number> = {};
report[`collector_ingest_backlog_encounters${tag}`] = BATCHES * PER_BATCH;
await run('sqlite_1', [join(dir, 'one.db')]);
// Two collectors on SQLite write two files (a file has one writer at a time).
await run('sqlite_2', [join(dir, 'two-a.db'), join(dir, 'two-b.db')]);
const pg1 = await postgres.createDatabase('ingest_one');
await run('postgres_1', [pg1]);
const pg2 = await postgres.createDatabase('ingest_two');
await run('postgres_2', [pg2, pg2]);
// What an encounter costs on disk once stored, indexes included (for docs/scaling.md): the
// encounters' partitions alone, and the whole database (batch records, lives, hourly counts).
{
  const client = new pg.Client(pg2);
  await client.connect();
  const { rows } = await client.query(
    `SELECT (SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('encounters'))::bigint AS encounters,
            pg_total_relation_size('batches')::bigint AS batches, (SELECT count(*) FROM batches)::bigint AS nb,
            pg_database_size(current_database())::bigint AS database, (SELECT count(*) FROM encounters)::bigint AS n`,
  );
  await client.end();
  report[`collector_postgres_encounter_bytes${tag}`] = Math.round(Number(rows[0].encounters) / Number(rows[0].n));
  report[`collector_postgres_batch_record_bytes${tag}`] = Math.round(Number(rows[0].batches) / Number(rows[0].nb));
  report[`collector_postgres_database_bytes_per_encounter${tag}`] = Math.round(Number(rows[0].database) / Number(rows[0].n));
  const one = join(dir, 'one.db');
  const sqlite = new Database(one);
  sqlite.pragma('wal_checkpoint(TRUNCATE)');
  const n = sqlite.prepare('SELECT count(*) FROM encounters').pluck().get() as number;
  sqlite.close();
  report[`collector_sqlite_database_bytes_per_encounter${tag}`] = Math.round(statSync(one).size / n);
}
await broker.stop();
await postgres.destroy();
rmSync(dir, { recursive: true, force: true });
process.stdout.write(JSON.stringify(report) + '\n');
