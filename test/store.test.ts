import Database from 'better-sqlite3';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ClosedEncounter } from '../daemon/encounters/index.js';
import { SCHEMA_VERSION } from '../daemon/store/schema.js';
import { Store, StoreOptions } from '../daemon/store/index.js';
import { tempDir } from './harness/tmp.js';

const dir = tempDir();
let n = 0;

function encounter(i: number, lastSeen: number): ClosedEncounter {
  const tempId = Buffer.alloc(16, i & 0xff);
  tempId.writeUInt32BE(i, 0);
  return {
    protocol: 0, tempId, metadata: Buffer.from([9, 9, 9, 9]), firstSeen: lastSeen - 5000, lastSeen,
    count: 20, rssiMin: -80, rssiMax: -50, rssiSum: -1300, rssiCount: 20, bucketMs: [1000, 2000, 0, 1500], clockSynced: true, closeReason: 'silence',
  };
}

function open(overrides: Partial<StoreOptions> = {}): { store: Store; clock: { t: number }; path: string } {
  const clock = { t: Date.UTC(2026, 10, 22) };
  const path = overrides.path ?? join(dir, `s${n++}.db`);
  const store = new Store({
    path, groupCommitMs: 1000, retentionMs: 14 * 86_400_000, purgeBatchSize: 500,
    batchMaxEncounters: 10, batchMaxAgeMs: 30_000, maxPendingEncounters: 1000, now: () => clock.t, ...overrides,
  });
  return { store, clock, path };
}

describe('store', () => {
  it('creates the schema in WAL mode and records its version', () => {
    const { store, path } = open();
    store.close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    db.close();
  });

  it('refuses a database from a newer version instead of corrupting it', () => {
    const { store, path } = open();
    store.close();
    const db = new Database(path);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => open({ path })).toThrow(/newer than this software/);
  });

  it('writes everything queued in one transaction per commit, and none when idle', () => {
    const { store, clock } = open();
    store.addEncounters([1, 2, 3].map((i) => encounter(i, clock.t)));
    store.addEncounters([4, 5].map((i) => encounter(i, clock.t)));
    expect(store.counters.write_transactions).toBe(0);
    store.commit();
    expect(store.counters.write_transactions).toBe(1);
    expect(store.counters.encounters_stored).toBe(5);
    store.commit();
    store.commit();
    expect(store.counters.write_transactions).toBe(1);
    store.close();
  });

  it('cuts batches by size and by age, with increasing sequence numbers, kept across restarts', () => {
    const { store, clock, path } = open();
    const cut: number[] = [];
    store.onBatches((b) => cut.push(...b.map((x) => x.encounterCount)));
    store.addEncounters(Array.from({ length: 23 }, (_, i) => encounter(i, clock.t)));
    store.commit();
    expect(cut).toEqual([10, 10]);
    clock.t += 29_000;
    store.commit();
    expect(cut).toEqual([10, 10]);
    clock.t += 1000;
    store.commit();
    expect(cut).toEqual([10, 10, 3]);
    const outbox = store.outbox();
    expect(outbox.map((b) => b.seq)).toEqual([1, 2, 3]);
    expect(store.batchEncounters(outbox[0].id).map((e) => e.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    store.close();
    const again = open({ path });
    expect(again.store.outbox().map((b) => b.id)).toEqual(outbox.map((b) => b.id));
    again.store.addEncounters(Array.from({ length: 10 }, (_, i) => encounter(100 + i, clock.t)));
    again.store.commit();
    expect(again.store.outbox().map((b) => b.seq)).toEqual([1, 2, 3, 4]);
    again.store.close();
  });

  it('removes a batch from the outbox only when acknowledged; unknown ids are counted', () => {
    const { store, clock } = open();
    store.addEncounters(Array.from({ length: 20 }, (_, i) => encounter(i, clock.t)));
    store.commit();
    const [first, second] = store.outbox();
    expect(store.addAck(first.id)).toBe(true);
    expect(store.addAck('01ARZ3NDEKTSV4RRFFQ69G5FAV')).toBe(false);
    expect(store.counters.acks_unknown).toBe(1);
    expect(store.outbox()).toHaveLength(2); // not before the commit
    store.commit();
    expect(store.outbox().map((b) => b.id)).toEqual([second.id]);
    // a duplicate ack changes nothing
    store.addAck(first.id);
    store.commit();
    expect(store.counters.batches_acked).toBe(1);
    store.close();
  });

  it('purges encounters past retention in small batches', () => {
    const { store, clock } = open({ purgeBatchSize: 7 });
    const old = clock.t - 15 * 86_400_000;
    store.addEncounters(Array.from({ length: 20 }, (_, i) => encounter(i, old)));
    store.addEncounters([encounter(99, clock.t)]);
    store.commit(); // stores them; the purge runs from the next commit on
    expect(store.counters.purged_encounters).toBe(0);
    store.commit();
    expect(store.counters.purged_encounters).toBe(7);
    store.commit();
    store.commit();
    expect(store.counters.purged_encounters).toBe(20);
    expect(store.encountersInRange(0, clock.t + 1).map((e) => e.tempId.readUInt32BE(0))).toEqual([99]);
    const tx = store.counters.write_transactions;
    store.commit();
    expect(store.counters.write_transactions).toBe(tx);
    store.close();
  });

  it('returns the encounters overlapping a range', () => {
    const { store, clock } = open();
    const t = clock.t;
    store.addEncounters([encounter(1, t - 60_000), encounter(2, t - 30_000), encounter(3, t)]);
    store.commit();
    // encounter k spans [lastSeen-5 s, lastSeen]
    const ids = (from: number, to: number) => store.encountersInRange(from, to).map((e) => e.tempId.readUInt32BE(0));
    expect(ids(t - 40_000, t - 10_000)).toEqual([2]);
    expect(ids(t - 35_000, t - 34_999)).toEqual([2]);
    expect(ids(t - 34_999 - 1, t - 35_000 + 1)).toEqual([2]);
    expect(ids(t - 120_000, t + 1)).toEqual([1, 2, 3]);
    expect(ids(t + 1, t + 2)).toEqual([]);
    store.close();
  });

  it('keeps queued encounters when a commit fails, and bounds them in memory', () => {
    const { store, clock } = open({ maxPendingEncounters: 1000 });
    store.addEncounters(Array.from({ length: 1500 }, (_, i) => encounter(i, clock.t)));
    expect(store.pendingCount).toBe(1000);
    expect(store.counters.dropped_disk_full).toBe(500);
    store.close();
  });
});
