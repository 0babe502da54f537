// A database lost, rolled back, corrupt or missing its meta rows: the store says what happened,
// starts a new life so that no (life, id) repeats, and keeps what can still be read.
import Database from 'better-sqlite3';
import { copyFileSync, existsSync, openSync, readdirSync, rmSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ClosedEncounter, Encounter } from '../../core/encounters/index.js';
import { lineagePath, Store, StoreOptions } from '../../daemon/store/index.js';
import { LEGACY_LIFE} from '../../core/wire/index.js';
import { toWire } from '../../core/encounters/index.js';
import { MIGRATIONS } from '../../daemon/store/schema.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-recovery-');
let n = 0;
const DAY = 86_400_000;

function encounter(i: number, lastSeen = Date.UTC(2026, 10, 22)): ClosedEncounter {
  const tempId = Buffer.alloc(16, 7);
  tempId.writeUInt32BE(i, 0);
  return {
    protocol: 0, tempId, metadata: Buffer.from([1, 2, 3, 4]), firstSeen: lastSeen - 5000, lastSeen,
    count: 10, rssiMin: -80, rssiMax: -50, rssiSum: -650, rssiCount: 10, bucketMs: [0, 1000, 2000, 2000], clockSynced: true, closeReason: 'silence',
  };
}

function open(path: string, overrides: Partial<StoreOptions> = {}): Store {
  return new Store({
    path, commitIntervalMs: 1000, retentionMs: 14 * DAY, unackedMaxMs: 30 * DAY, purgeBatchSize: 500,
    batchMaxEncounters: 10, batchMaxAgeMs: 0, maxPendingEncounters: 10_000, ...overrides,
  });
}

/** (life, id) of every encounter a store would send. */
function sent(store: Store): string[] {
  return store.outbox().flatMap((b) => store.batchEncounters(b.id).map((e) => `${e.life}/${e.id}`));
}

/** A crash: the connection goes away without the final commit. */
function crash(store: Store): void {
  (store as unknown as { db: Database.Database }).db.close();
}

describe('store recovery', () => {
  it('creates its database private to the service user (0600)', () => {
    const path = join(dir, `g${n++}.db`);
    open(path).close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('an unreadable lineage file is said in the status, not taken for a first start', () => {
    const path = join(dir, `g${n++}.db`);
    const a = open(path);
    a.addEncounters([encounter(1)]);
    a.commit();
    a.close();
    writeFileSync(lineagePath(path), '{"database": "01J'); // cut short: a failing card
    const b = open(path);
    expect(b.database.lastEvent).toMatchObject({ kind: 'lineage_unreadable' });
    expect(b.database.lastEvent?.detail).toMatch(/lineage file .*\.lineage is unreadable \(.*JSON.*\): whether this database is the one/);
    b.close();
    // rewritten at that start: the next one is quiet again
    const c = open(path);
    expect(c.database.lastEvent).toMatchObject({ kind: 'lineage_unreadable' }); // the last event kept, not a new one
    expect(c.database.lives).toBe(3);
    c.close();
  });

  it('a deleted database: a new one and a new life, said in the status, and no (life, id) repeats', () => {
    const path = join(dir, `g${n++}.db`);
    const a = open(path);
    a.addEncounters([1, 2, 3].map((i) => encounter(i)));
    a.commit();
    const before = sent(a);
    a.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
    const b = open(path);
    expect(b.database.lastEvent).toMatchObject({ kind: 'lost' });
    expect(b.database.lastEvent?.detail).toMatch(/missing/);
    b.addEncounters([4, 5, 6].map((i) => encounter(i)));
    b.commit();
    const after = sent(b);
    expect(after).toHaveLength(3);
    for (const key of after) expect(before).not.toContain(key);
    b.close();
  });

  it('a rolled-back database (an old copy put back, or its WAL lost) is noticed; ids of the lost life are never reused', () => {
    const path = join(dir, `g${n++}.db`);
    const a = open(path);
    a.addEncounters([1, 2].map((i) => encounter(i)));
    a.commit();
    a.close();
    copyFileSync(path, `${path}.copy`);
    const b = open(path);
    b.addEncounters([3, 4, 5].map((i) => encounter(i)));
    b.commit();
    const lostTimeline = sent(b);
    crash(b);
    copyFileSync(`${path}.copy`, path);
    rmSync(`${path}-wal`, { force: true });
    rmSync(`${path}-shm`, { force: true });
    const c = open(path);
    expect(c.database.lastEvent).toMatchObject({ kind: 'rolled_back' });
    c.addEncounters([6, 7, 8].map((i) => encounter(i)));
    c.commit();
    const now = sent(c);
    // The encounters of the first life are the same ones (same life and id): dedupe is right
    // for them; the new ones reuse no (life, id) the lost timeline sent.
    expect(now).toHaveLength(5);
    for (const key of now.slice(-3)) expect(lostTimeline).not.toContain(key);
    expect(new Set(now).size).toBe(now.length);
    c.close();
  });

  it('a corrupt database is set aside for forensics, its unacknowledged batches salvaged under their own ids, and the unit carries on', () => {
    const path = join(dir, `g${n++}.db`);
    const a = open(path, { batchMaxEncounters: 50 });
    a.addEncounters(Array.from({ length: 2000 }, (_, i) => encounter(i)));
    a.commit();
    const [first, ...rest] = a.outbox();
    a.addAck(first.id);
    a.commit();
    const unacked = sent(a);
    expect(rest).toHaveLength(39);
    a.close();
    // Flip bytes in the middle of the file: some pages of encounters become garbage.
    const size = statSync(path).size;
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, Math.floor(size / 2 / 4096) * 4096);
    closeSync(fd);
    const b = open(path, { batchMaxEncounters: 50 });
    expect(b.database.lastEvent).toMatchObject({ kind: 'corrupt' });
    expect(b.database.lastEvent?.detail).toMatch(/set aside as .*corrupt-/);
    expect(readdirSync(dir).some((f) => f.startsWith(`g${n - 1}.db.corrupt-`))).toBe(true);
    const salvaged = sent(b);
    expect(salvaged.length).toBeGreaterThan(1000); // most pages were fine
    expect(salvaged.length).toBeLessThan(unacked.length); // one page was not
    for (const key of salvaged) expect(unacked).toContain(key); // same life and id: deduped at the collector
    expect(b.counters.salvagedEncounters).toBe(salvaged.length);
    b.addEncounters([encounter(9000)]);
    b.commit();
    const db = new Database(path, { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
    b.close();
  });

  it('a file that is not a database at all is set aside too', () => {
    const path = join(dir, `g${n++}.db`);
    open(path).close();
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from('this is not an SQLite file at all, just text'), 0, 44, 0);
    closeSync(fd);
    const b = open(path);
    expect(b.database.lastEvent).toMatchObject({ kind: 'corrupt' });
    b.addEncounters([encounter(1)]);
    b.commit();
    expect(sent(b)).toHaveLength(1);
    b.close();
  });

  it('a restored open encounter goes out on the wire exactly as it would have without the crash', () => {
    const path = join(dir, `g${n++}.db`);
    let x = 12345;
    const rand = (k: number) => {
      x = (x * 1103515245 + 12345) % 2147483648;
      return x % k;
    };
    const open_: Encounter[] = Array.from({ length: 300 }, (_, i) => {
      const firstSeen = Date.UTC(2026, 10, 22, 9) + rand(3_600_000);
      const duration = rand(1_800_000);
      const b = [rand(duration / 4 + 1), rand(duration / 4 + 1), rand(duration / 4 + 1), rand(duration / 4 + 1)];
      const count = 1 + rand(5000);
      const rssiCount = rand(count + 1);
      const rssiMax = -30 - rand(40);
      const rssiMin = rssiMax - rand(40);
      const tempId = Buffer.alloc(16, i);
      tempId.writeUInt32BE(i, 0);
      return {
        protocol: 0, tempId, metadata: Buffer.from([i, 1, 2, 3]), firstSeen, lastSeen: firstSeen + duration, count,
        rssiMin: rssiCount ? rssiMin : 127, rssiMax: rssiCount ? rssiMax : 127, rssiSum: rssiCount * Math.round((rssiMin + rssiMax) / 2) - rand(rssiCount + 1),
        rssiCount, bucketMs: b, clockSynced: rand(4) > 0,
      };
    });
    const a = open(path, { openEncounters: () => open_, now: () => Date.UTC(2026, 10, 22, 11) });
    a.commit();
    crash(a);
    const b = open(path, { openEncounters: () => [] });
    b.commit();
    const restored = b.outbox().flatMap((x) => b.batchEncounters(x.id));
    expect(restored).toHaveLength(300);
    const wire = (e: Encounter) => ({ ...toWire({ ...e, id: 0 }), id: 0 });
    const expected = new Map(open_.map((e) => [e.tempId.toString('hex'), wire(e)]));
    for (const e of restored) expect(wire(e)).toEqual(expected.get(e.tempId.toString('hex')));
    b.close();
  });

  it('the temp IDs of open encounters stay bounded as phones come and go, and a crash just after that table is emptied and rewritten restores every open encounter', () => {
    const path = join(dir, `g${n++}.db`);
    const t0 = Date.UTC(2026, 10, 22, 9);
    let now = t0;
    let present: Encounter[] = [];
    const a = open(path, { openEncounters: () => present, now: () => now });
    const db = (a as unknown as { db: Database.Database }).db;
    const rowsOf = () => db.prepare('SELECT count(*) FROM open_ids').pluck().get() as number;
    let previous = 0;
    let emptied = 0;
    for (let c = 0; c < 80 && emptied === 0; c++) {
      now = t0 + c * 60_000;
      // 100 phones arrive every minute and stay five minutes; the ones still here were heard just now.
      const arrivals = Array.from({ length: 100 }, (_, k) => {
        const tempId = Buffer.alloc(16, 3);
        tempId.writeUInt32BE(c * 100 + k, 0);
        return { protocol: 0, tempId, metadata: Buffer.from([k, 0, 0, 1]), firstSeen: now - 1000 * k, lastSeen: now, count: 1, rssiMin: -70, rssiMax: -60, rssiSum: -65, rssiCount: 1, bucketMs: [0, 0, 0, 0], clockSynced: true };
      });
      present = [...present.filter((e) => e.firstSeen > now - 300_000), ...arrivals].map((e) => ({
        ...e, lastSeen: now, count: e.count + 7, rssiSum: e.rssiSum - 7 * 65, rssiCount: e.rssiCount + 7, bucketMs: [0, 0, 0, now - e.firstSeen],
      }));
      a.commit();
      const rows = rowsOf();
      // Never more than the live rows plus the dead allowed before the table is rewritten.
      expect(rows).toBeLessThanOrEqual(4000 + 2 * present.length);
      if (rows < previous) emptied = c;
      previous = rows;
    }
    expect(emptied).toBeGreaterThan(0);
    expect(rowsOf()).toBe(present.length);
    crash(a);
    const b = open(path, { openEncounters: () => [] });
    b.commit();
    const wire = (e: Encounter) => ({ ...toWire({ ...e, id: 0 }), id: 0 });
    const restored = b.outbox().flatMap((x) => b.batchEncounters(x.id)).map(wire);
    expect(restored.sort((x, y) => x.tempId.compare(y.tempId))).toEqual(present.map(wire).sort((x, y) => x.tempId.compare(y.tempId)));
    b.close();
  });

  it('a database from before lives (schema 1) is upgraded: its batches keep the all-zero life, leftovers go out in it, bucket times become seconds', () => {
    const path = join(dir, `g${n++}.db`);
    const old = new Database(path);
    old.exec(MIGRATIONS[0] as string);
    old.pragma('user_version = 1');
    const row = old.prepare(`INSERT INTO encounters VALUES (?, 0, ?, ?, ?, ?, 10, -80, -60, -700, 10, '[1000,2600,0,400]', 1)`);
    for (let id = 1; id <= 5; id++) row.run(id, Buffer.alloc(16, id), Buffer.alloc(4), 1_795_000_000_000, 1_795_000_004_000);
    old.prepare(`INSERT INTO batches VALUES ('01KAAAAAAAAAAAAAAAAAAAAAAA', 1, 1, 2, 1795000010000, 1795000011000)`).run();
    old.prepare(`INSERT INTO batches VALUES ('01KAAAAAAAAAAAAAAAAAAAAAAB', 2, 3, 4, 1795000020000, NULL)`).run();
    old.prepare(`UPDATE meta SET value = 3 WHERE key = 'next_seq'`).run();
    old.close();
    const s = open(path);
    const outbox = s.outbox();
    expect(outbox.map((b) => [b.id, b.life, b.seq])).toEqual([
      ['01KAAAAAAAAAAAAAAAAAAAAAAB', LEGACY_LIFE, 2],
      [outbox[1].id, LEGACY_LIFE, 3], // encounter 5, left unbatched, cut at start in its own life
    ]);
    expect(s.batchEncounters(outbox[1].id).map((e) => [e.id, e.life, e.bucketMs])).toEqual([[5, LEGACY_LIFE, [1000, 3000, 0, 0]]]);
    expect(s.database.life).not.toBe(LEGACY_LIFE);
    s.addEncounters([encounter(6)]);
    s.commit();
    expect(sent(s).slice(-1)).toEqual([`${s.database.life}/6`]);
    s.close();
  });

  it('lives killed before their first encounter (a crash loop) do not stop the next start', () => {
    const path = join(dir, `g${n++}.db`);
    crash(open(path));
    crash(open(path));
    const c = open(path);
    expect(c.database.lives).toBe(3);
    expect(c.database.lastEvent).toBeNull();
    c.addEncounters([encounter(1)]);
    c.commit();
    expect(sent(c)).toEqual([`${c.database.life}/1`]);
    c.close();
  });

  it('missing meta rows are rebuilt and said; ids go on above what is stored', () => {
    const path = join(dir, `g${n++}.db`);
    const a = open(path);
    a.addEncounters([1, 2, 3].map((i) => encounter(i)));
    a.commit();
    a.close();
    const db = new Database(path);
    db.exec('DELETE FROM meta');
    db.close();
    const b = open(path);
    expect(b.database.lastEvent).toMatchObject({ kind: 'meta_rebuilt' });
    b.addEncounters([4].map((i) => encounter(i)));
    b.commit();
    expect(sent(b).map((k) => Number(k.split('/')[1]))).toEqual([1, 2, 3, 4]);
    b.close();
  });

  it('encounters open at a crash come back from the checkpoint of the last commit, once', () => {
    const path = join(dir, `g${n++}.db`);
    let open_: Encounter[] = [1, 2, 3].map((i) => encounter(i));
    const a = open(path, { openEncounters: () => open_ });
    a.addEncounters([encounter(10)]);
    a.commit();
    open_ = [encounter(1), encounter(2)]; // 3 closed after the checkpoint ...
    a.addEncounters([encounter(3)]);
    a.commit(); // ... and was committed with a new checkpoint in one transaction
    crash(a);
    const b = open(path, { openEncounters: () => [] });
    expect(b.counters.restoredOpen).toBe(2);
    b.commit();
    const tempIds = b.outbox().flatMap((x) => b.batchEncounters(x.id).map((e) => e.tempId.readUInt32BE(0))).sort((x, y) => x - y);
    expect(tempIds).toEqual([1, 2, 3, 10]);
    b.close();
    // A clean stop leaves no checkpoint behind: nothing restored twice.
    const c = open(path);
    expect(c.counters.restoredOpen).toBe(0);
    c.close();
    expect(existsSync(lineagePath(path))).toBe(true);
  });
});
