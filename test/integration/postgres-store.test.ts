// The collector's PostgreSQL store on a real server: the same answers as the SQLite store for the
// same batches, versioned migrations, day partitions dropped by retention, and collectors that
// commit overlapping groups at once storing each batch and each encounter exactly once.
import { join } from 'node:path';
import pg from 'pg';
import { ulid } from 'ulid';
import { describe, expect, it } from 'vitest';
import { type ArrivedBatch, CollectorDb, DAY_MS, type IngestResult, type LifeRow, partitionName, PostgresCollectorStore } from '../../collector/index.js';
import type { VenueEncounter, WireEncounter } from '../../core/encounters/index.js';
import type { Batch } from '../../core/wire/index.js';
import { usePostgres } from '../harness/postgres.js';
import { seeded } from '../harness/random.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-pgstore-');
const postgres = usePostgres();
const signer = Buffer.alloc(32, 1);
const DAY0 = Date.UTC(2026, 10, 20);

function encounter(id: number, firstSeen: number, random = () => 0.5): WireEncounter {
  const rssiMin = -90 + Math.floor(random() * 20);
  return {
    id, protocol: random() < 0.8 ? 0 : 1, tempId: Buffer.from(Array.from({ length: 16 }, () => Math.floor(random() * 256))), metadata: Buffer.from([0x40, 0xf4, 0, 0]),
    firstSeen, lastSeen: firstSeen + 1000 * Math.floor(random() * 600), count: 1 + Math.floor(random() * 50),
    rssiMin, rssiMax: rssiMin + 10, rssiMean: Math.round((rssiMin + 5.3) * 10) / 10, attenuationS: [Math.floor(random() * 100), 0, 7, 1], clockSynced: random() < 0.9,
  };
}

function batch(gateway: string, life: string, seq: number, encounters: WireEncounter[], kind: 'batch' | 'pull' = 'batch'): Batch {
  return { kind, id: ulid(), gateway, venue: `venue-${gateway}`, life, seq, createdAt: DAY0, encounters, hash: Buffer.alloc(32), sig: Buffer.alloc(64, 7) };
}

const uniform = (seed: number) => {
  const next = seeded(seed);
  return () => next(0, 1);
};
const arrived = (b: Batch): ArrivedBatch => ({ batch: b, signer });

async function all(store: { encounters(): AsyncIterable<VenueEncounter> }): Promise<VenueEncounter[]> {
  const out: VenueEncounter[] = [];
  for await (const e of store.encounters()) out.push(e);
  return out.sort((a, b) => a.firstSeen - b.firstSeen || (a.gateway! < b.gateway! ? -1 : a.gateway! > b.gateway! ? 1 : a.id - b.id));
}

describe('PostgreSQL collector store', () => {
  it('answers as the SQLite store does: stored, duplicate, out of sequence, a batch twice in one group; the same encounters read back field by field', async () => {
    const url = await postgres().database('same');
    const pgStore = await PostgresCollectorStore.open(url, { pageSize: 7 }); // small pages: the keyset paging is exercised
    const sqlite = new CollectorDb(join(dir, 'same.db'));
    const random = uniform(41);
    const lifeA = ulid();
    const lifeB = ulid();
    let id = 0;
    const make = (gw: string, life: string, seq: number, n: number) =>
      batch(gw, life, seq, Array.from({ length: n }, () => encounter(++id, DAY0 + Math.floor(random() * 3 * DAY_MS), random)));
    const b1 = make('gw-1', lifeA, 1, 5);
    const b2 = make('gw-1', lifeA, 2, 3);
    const b3 = make('gw-2', lifeB, 1, 4);
    const forged = { ...make('gw-1', lifeA, 2, 2) }; // a new id on a used seq
    const pullPart = { ...batch('gw-2', lifeB, 0, b3.encounters.slice(0, 2), 'pull'), part: 0, last: true }; // re-sends two stored encounters
    const groups: ArrivedBatch[][] = [[arrived(b1), arrived(b2), arrived(b1)], [arrived(b3), arrived(forged)], [arrived(b2), arrived(pullPart)]];
    for (const group of groups) {
      const a = await pgStore.commit(group);
      const b = await sqlite.commit(group);
      expect(a).toEqual(b);
    }
    expect(await pgStore.commit([arrived(b1)])).toEqual([{ outcome: 'duplicate', stored: 0 }]);
    const results = (await sqlite.commit(groups[0])).map((r) => (r as IngestResult).outcome);
    expect(results).toEqual(['duplicate', 'duplicate', 'duplicate']);
    const fromPg = await all(pgStore);
    expect(fromPg).toHaveLength(12);
    expect(fromPg).toEqual(await all(sqlite));
    // by temp ID, as vgw match asks
    const wanted = [b1.encounters[2].tempId, b3.encounters[0].tempId];
    expect((await pgStore.withTempIds(wanted)).map((e) => e.id).sort()).toEqual([b1.encounters[2].id, b3.encounters[0].id].sort());
    const lives = (await pgStore.pool.query('SELECT gateway, life, last_seq, batches FROM lives ORDER BY gateway')).rows;
    expect(lives).toEqual([
      { gateway: 'gw-1', life: lifeA, last_seq: 2, batches: 2 },
      { gateway: 'gw-2', life: lifeB, last_seq: 1, batches: 1 },
    ]);
    await pgStore.close();
    sqlite.close();
  });

  it('commits are durable before any ack: synchronous_commit is on in its sessions even where the database turned it off', async () => {
    const url = await postgres().database('durable');
    const admin = new pg.Client(url);
    await admin.connect();
    await admin.query(`ALTER DATABASE ${new URL(url).pathname.slice(1)} SET synchronous_commit = off`);
    await admin.end();
    const plain = new pg.Client(url);
    await plain.connect();
    expect((await plain.query('SHOW synchronous_commit')).rows[0].synchronous_commit).toBe('off');
    await plain.end();
    const store = await PostgresCollectorStore.open(url);
    expect((await store.pool.query('SHOW synchronous_commit')).rows[0].synchronous_commit).toBe('on');
    await store.close();
  });

  it('migrations are versioned: applied once, recorded, and a schema newer than the software is refused', async () => {
    const url = await postgres().database('migrations');
    const first = await PostgresCollectorStore.open(url);
    const again = await PostgresCollectorStore.open(url);
    const rows = (await first.pool.query('SELECT version, description FROM schema_migrations ORDER BY version')).rows;
    expect(rows.map((r) => r.version)).toEqual([1, 2, 3, 4]);
    await again.close();
    await first.pool.query("INSERT INTO schema_migrations (version, description) VALUES (99, 'from the future')");
    await first.close();
    await expect(PostgresCollectorStore.open(url)).rejects.toThrow(/schema version 99 is newer than this software \(4\); upgrade venue-gateway/);
  });

  it('encounters are partitioned by day; retention drops whole days and keeps the rest, and a batch id keeps deduping through its grace', async () => {
    const url = await postgres().database('retention');
    const store = await PostgresCollectorStore.open(url);
    const life = ulid();
    const days = [0, 1, 2, 5];
    const batches = days.map((d, i) => batch('gw-r', life, i + 1, [encounter(10 * d + 1, DAY0 + d * DAY_MS + 3_600_000), encounter(10 * d + 2, DAY0 + d * DAY_MS + 7_200_000)]));
    await store.commit(batches.map(arrived));
    expect(await store.partitionDays()).toEqual(days.map((d) => DAY0 / DAY_MS + d));
    const names = (await store.pool.query(`SELECT tablename FROM pg_tables WHERE tablename LIKE 'encounters_d%' ORDER BY 1`)).rows.map((r) => r.tablename);
    expect(names).toEqual(['encounters_d20261120', 'encounters_d20261121', 'encounters_d20261122', 'encounters_d20261125']);
    expect(partitionName(DAY0 / DAY_MS)).toBe('encounters_d20261120');
    // 14 days of retention, seen from the start of day 16 + 1 h: days 0 and 1 have ended 14 days ago
    const now = DAY0 + 16 * DAY_MS + 3_600_000;
    expect(await store.purgeExpired(now, 14)).toEqual({ days: 2, batchesDeleted: 0 });
    expect((await all(store)).map((e) => e.id)).toEqual([21, 22, 51, 52]);
    // the SQLite store removes the same days
    const sqlite = new CollectorDb(join(dir, 'retention.db'));
    await sqlite.commit(batches.map(arrived));
    expect(await sqlite.purgeExpired(now, 14)).toEqual({ days: 2, batchesDeleted: 0 });
    expect((await all(sqlite)).map((e) => e.id)).toEqual([21, 22, 51, 52]);
    expect(await sqlite.commit([arrived(batches[0])])).toEqual([{ outcome: 'duplicate', stored: 0 }]);
    sqlite.db.prepare('UPDATE batches SET received_at = ?').run(DAY0);
    expect(await sqlite.purgeExpired(DAY0 + (14 + 31) * DAY_MS + 1, 14)).toMatchObject({ batchesDeleted: 4 });
    sqlite.close();
    expect(await store.partitionDays()).toEqual([DAY0 / DAY_MS + 2, DAY0 / DAY_MS + 5]);
    // a re-send of a purged day's batch is still known by its id: acked again, not stored again
    expect(await store.commit([arrived(batches[0])])).toEqual([{ outcome: 'duplicate', stored: 0 }]);
    expect((await all(store)).map((e) => e.id)).toEqual([21, 22, 51, 52]);
    // past the grace (31 days beyond retention, by arrival time) the batch records go too
    await store.pool.query('UPDATE batches SET received_at = $1', [DAY0]);
    expect(await store.purgeExpired(DAY0 + (14 + 31) * DAY_MS + 1, 14)).toMatchObject({ batchesDeleted: 4 });
    // a clock far off (year 275,000) gets a partition too, named by its day number
    const far = 8.64e15 - DAY_MS;
    expect(await store.commit([arrived(batch('gw-r', life, 9, [encounter(99, far)]))])).toEqual([{ outcome: 'stored', stored: 1 }]);
    expect(partitionName(Math.floor(far / DAY_MS))).toBe(`encounters_n${Math.floor(far / DAY_MS)}`);
    expect(await store.partitionDays()).toContain(Math.floor(far / DAY_MS));
    await store.close();
  });

  it('two collectors committing overlapping groups at once (each batch delivered to both, in different orders) store each batch and each encounter once', async () => {
    const url = await postgres().database('race');
    const stores = await Promise.all([PostgresCollectorStore.open(url), PostgresCollectorStore.open(url), PostgresCollectorStore.open(url)]);
    const random = uniform(7);
    const gateways = Array.from({ length: 20 }, (_, g) => ({ gateway: `gw-${g}`, life: ulid(), seq: 0, id: 0 }));
    const batches: Batch[] = [];
    for (let i = 0; i < 400; i++) {
      const g = gateways[Math.floor(random() * gateways.length)];
      batches.push(batch(g.gateway, g.life, ++g.seq, Array.from({ length: 1 + Math.floor(random() * 30) }, () => encounter(++g.id, DAY0 + Math.floor(random() * 4 * DAY_MS), random))));
    }
    const shuffled = (list: Batch[]) => list.map((b) => [random(), b] as const).sort((x, y) => x[0] - y[0]).map(([, b]) => b);
    const groupsOf = (list: Batch[]) => Array.from({ length: Math.ceil(list.length / 25) }, (_, i) => list.slice(i * 25, i * 25 + 25).map(arrived));
    const outcomes = await Promise.all(stores.map(async (s) => {
      const out: Array<IngestResult | Error> = [];
      for (const group of groupsOf(shuffled(batches))) out.push(...(await s.commit(group)));
      return out;
    }));
    const flat = outcomes.flat();
    expect(flat.filter((r) => r instanceof Error)).toEqual([]);
    expect(flat.filter((r) => (r as IngestResult).outcome === 'stored')).toHaveLength(batches.length);
    expect(flat.filter((r) => (r as IngestResult).outcome === 'duplicate')).toHaveLength(2 * batches.length);
    const total = batches.reduce((n, b) => n + b.encounters.length, 0);
    expect(flat.reduce((n, r) => n + (r as IngestResult).stored, 0)).toBe(total);
    const { rows } = await stores[0].pool.query('SELECT count(*)::int AS n, count(DISTINCT (gateway, life, id))::int AS distinct_ids FROM encounters');
    expect(rows[0]).toEqual({ n: total, distinct_ids: total });
    const lives = (await stores[0].pool.query('SELECT gateway, last_seq, batches FROM lives')).rows;
    expect(lives).toHaveLength(gateways.length);
    for (const l of lives) {
      const g = gateways.find((x) => x.gateway === l.gateway)!;
      expect(l).toEqual({ gateway: g.gateway, last_seq: g.seq, batches: g.seq });
    }
    await Promise.all(stores.map((s) => s.close()));
  });

  it('fleet views: encounters per venue per hour counted once each (three stores racing, re-sends), lives and statuses the same in SQLite; retention removes the hours', async () => {
    const url = await postgres().database('fleetviews');
    const stores = await Promise.all([PostgresCollectorStore.open(url), PostgresCollectorStore.open(url), PostgresCollectorStore.open(url)]);
    const sqlite = new CollectorDb(join(dir, 'fleetviews.db'));
    const random = uniform(23);
    const gateways = Array.from({ length: 6 }, (_, g) => ({ gateway: `gw-${g}`, life: ulid(), seq: 0, id: 0 }));
    const batches: Batch[] = [];
    for (let i = 0; i < 120; i++) {
      const g = gateways[Math.floor(random() * gateways.length)];
      batches.push(batch(g.gateway, g.life, ++g.seq, Array.from({ length: 1 + Math.floor(random() * 20) }, () => encounter(++g.id, DAY0 + Math.floor(random() * 30 * 3_600_000), random))));
    }
    // one gateway lost batches 2 and 3 of its life: they never arrive
    const lossy = gateways[0];
    const lost = new Set(batches.filter((b) => b.gateway === lossy.gateway && (b.seq === 2 || b.seq === 3)).map((b) => b.id));
    const delivered = batches.filter((b) => !lost.has(b.id));
    // the ground truth, from the batches themselves
    const truth = new Map<string, number>();
    for (const b of delivered) for (const e of b.encounters) {
      const key = `${b.venue}@${Math.floor(e.firstSeen / 3_600_000) * 3_600_000}`;
      truth.set(key, (truth.get(key) ?? 0) + 1);
    }
    const groupsOf = (list: Batch[]) => Array.from({ length: Math.ceil(list.length / 16) }, (_, i) => list.slice(i * 16, i * 16 + 16).map(arrived));
    await Promise.all(stores.map(async (s, k) => {
      for (const group of groupsOf(k === 1 ? [...delivered].reverse() : delivered)) await s.commit(group);
    }));
    for (const group of groupsOf(delivered)) await sqlite.commit(group);
    await sqlite.commit(groupsOf(delivered)[0]); // a re-send counts nothing
    const asMap = (rows: Array<{ venue: string; hour: number; encounters: number }>) => new Map(rows.map((r) => [`${r.venue}@${r.hour}`, r.encounters]));
    const window = [DAY0 - DAY_MS, DAY0 + 3 * DAY_MS] as const;
    expect(asMap(await stores[0].venueHours(...window))).toEqual(truth);
    expect(asMap(await sqlite.venueHours(...window))).toEqual(truth);
    // only the hours asked for
    const firstHour = await stores[2].venueHours(DAY0, DAY0 + 3_600_000);
    expect(firstHour.every((r) => r.hour === DAY0)).toBe(true);
    expect(firstHour.reduce((n, r) => n + r.encounters, 0)).toBe([...truth].filter(([k]) => k.endsWith(`@${DAY0}`)).reduce((n, [, v]) => n + v, 0));

    const byGateway = <T extends { gateway: string }>(rows: T[]) => [...rows].sort((a, b) => (a.gateway < b.gateway ? -1 : 1));
    const lives = byGateway(await stores[1].lives());
    // lastBatchAt is when a batch arrived at each store: all else is the same
    const counted = (rows: LifeRow[]) => byGateway(rows).map(({ lastBatchAt, ...rest }) => (expect(lastBatchAt).toBeGreaterThan(DAY0), rest));
    expect(counted(lives)).toEqual(counted(await sqlite.lives()));
    expect(lives.find((l) => l.gateway === lossy.gateway)).toMatchObject({ lastSeq: lossy.seq, batches: lossy.seq - 2, venue: `venue-${lossy.gateway}` });
    for (const g of gateways.slice(1)) expect(lives.find((l) => l.gateway === g.gateway)).toMatchObject({ life: g.life, lastSeq: g.seq, batches: g.seq });

    // statuses: the newest kept whichever store writes it; since stays while the state does
    const row = (gateway: string, state: 'online' | 'offline', receivedAt: number) =>
      ({ gateway, venue: `venue-${gateway}`, state, reason: state === 'offline' ? 'connection lost' : null, since: receivedAt, receivedAt, document: JSON.stringify({ gateway, state, receivedAt }) });
    for (const store of [stores[0], sqlite]) {
      await store.saveStatuses([row('gw-1', 'online', 1000), row('gw-2', 'online', 1000)]);
      await store.saveStatuses([row('gw-1', 'online', 31_000), row('gw-2', 'offline', 40_000)]);
      await store.saveStatuses([row('gw-1', 'offline', 20_000)]); // older than what is held: ignored
      const held = byGateway(await store.statuses());
      expect(held.map((s) => [s.gateway, s.state, s.since, s.receivedAt])).toEqual([['gw-1', 'online', 1000, 31_000], ['gw-2', 'offline', 40_000, 40_000]]);
      expect(JSON.parse(held[0].document)).toEqual({ gateway: 'gw-1', state: 'online', receivedAt: 31_000 });
      await store.ping();
    }

    // retention removes the counts of the days it removes
    const now = DAY0 + 15 * DAY_MS + 1;
    for (const store of [stores[0], sqlite]) {
      await store.purgeExpired(now, 14);
      const left = await store.venueHours(...window);
      expect(left.length).toBeGreaterThan(0);
      expect(left.every((r) => r.hour >= DAY0 + DAY_MS)).toBe(true);
    }
    sqlite.close();
    await Promise.all(stores.map((s) => s.close()));
    await expect(stores[0].ping()).rejects.toThrow();
  });

  it('a commit that fails leaves nothing behind and says so (the collector then acks nothing)', async () => {
    const url = await postgres().database('fails');
    const store = await PostgresCollectorStore.open(url);
    const life = ulid();
    const good = batch('gw-f', life, 1, [encounter(1, DAY0)]);
    // an encounter the schema refuses (count beyond int4): the whole group rolls back
    const bad = batch('gw-f', life, 2, [{ ...encounter(2, DAY0), count: 2 ** 40 }]);
    await expect(store.commit([arrived(good), arrived(bad)])).rejects.toThrow(/out of range/);
    const { rows } = await store.pool.query('SELECT (SELECT count(*) FROM batches)::int AS b, (SELECT count(*) FROM encounters)::int AS e');
    expect(rows[0]).toEqual({ b: 0, e: 0 });
    expect(await store.commit([arrived(good)])).toEqual([{ outcome: 'stored', stored: 1 }]);
    await store.close();
    await expect(PostgresCollectorStore.open(url.replace(/\/[^/]+$/, '/no_such_db'))).rejects.toThrow(/no_such_db/);
  });
});
