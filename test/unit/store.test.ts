import Database from 'better-sqlite3';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ClosedEncounter } from '../../core/encounters/index.js';
import { SCHEMA_VERSION } from '../../daemon/store/schema.js';
import { Store, StoreOptions } from '../../daemon/store/index.js';
import { tempDir } from '../harness/tmp.js';

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

interface Clocks {
  t: number;
  /** Monotonic ms: service time advances with it only. */
  steady: number;
  synced: boolean;
}

function open(overrides: Partial<StoreOptions> = {}, clocks?: Clocks): { store: Store; clock: Clocks; path: string } {
  const clock = clocks ?? { t: Date.UTC(2026, 10, 22), steady: 0, synced: true };
  const path = overrides.path ?? join(dir, `s${n++}.db`);
  const store = new Store({
    path, commitIntervalMs: 1000, retentionMs: 14 * DAY, unackedMaxMs: 30 * DAY, purgeBatchSize: 500,
    batchMaxEncounters: 10, batchMaxAgeMs: 30_000, maxPendingEncounters: 1000,
    now: () => clock.t, steadyNow: () => clock.steady, clockSynced: () => clock.synced, ...overrides,
  });
  return { store, clock, path };
}

const DAY = 86_400_000;

/** Time passing: the wall clock and the steady clock move together (a step moves only the wall clock). */
function pass(clock: Clocks, ms: number): void {
  clock.t += ms;
  clock.steady += ms;
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

  it('refuses a database a newer release migrated beyond what it can run on, instead of corrupting it; runs on one it only expanded', () => {
    const { store, path } = open();
    store.close();
    const db = new Database(path);
    // a newer release's expanding migration (docs/operating.md, "Releases"): this one still runs on it
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    open({ path }).store.close();
    // a newer release's contracting migration: it needs software that knows it
    const again = new Database(path);
    again.prepare('UPDATE schema_compat SET oldest_reader = ?').run(SCHEMA_VERSION + 1);
    again.close();
    expect(() => open({ path })).toThrow(/newer than this software/);
  });

  it('writes everything queued in one transaction per commit, and none when idle', () => {
    const { store, clock } = open();
    store.addEncounters([1, 2, 3].map((i) => encounter(i, clock.t)));
    store.addEncounters([4, 5].map((i) => encounter(i, clock.t)));
    expect(store.counters.writeTransactions).toBe(0);
    store.commit();
    expect(store.counters.writeTransactions).toBe(1);
    expect(store.counters.encountersStored).toBe(5);
    store.commit();
    store.commit();
    expect(store.counters.writeTransactions).toBe(1);
    store.close();
  });

  it('cuts batches by size and by age; a restart starts a new life, cuts its leftovers and never reuses an id', () => {
    const { store, clock, path } = open();
    const cut: number[] = [];
    store.onBatches((b) => cut.push(...b.map((x) => x.encounterCount)));
    store.addEncounters(Array.from({ length: 23 }, (_, i) => encounter(i, clock.t)));
    store.commit();
    expect(cut).toEqual([10, 10]);
    pass(clock, 29_000);
    store.commit();
    expect(cut).toEqual([10, 10]);
    pass(clock, 1000);
    store.commit();
    expect(cut).toEqual([10, 10, 3]);
    const outbox = store.outbox();
    expect(outbox.map((b) => b.seq)).toEqual([1, 2, 3]);
    const life1 = store.database.life;
    expect(outbox.every((b) => b.life === life1)).toBe(true);
    expect(store.batchEncounters(outbox[0].id).map((e) => e.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // Two more wait for a batch when the daemon stops: the next start sends them at once, in the old life.
    store.addEncounters([encounter(50, clock.t), encounter(51, clock.t)]);
    store.commit();
    store.close();
    const again = open({ path }, clock);
    const life2 = again.store.database.life;
    expect(life2).not.toBe(life1);
    const after = again.store.outbox();
    expect(after.slice(0, 3).map((b) => b.id)).toEqual(outbox.map((b) => b.id));
    expect(after[3]).toMatchObject({ life: life1, seq: 4, encounterCount: 2 });
    again.store.addEncounters(Array.from({ length: 10 }, (_, i) => encounter(100 + i, clock.t)));
    again.store.commit();
    const fifth = again.store.outbox()[4];
    expect(fifth).toMatchObject({ life: life2, seq: 1 });
    expect(again.store.batchEncounters(fifth.id).map((e) => e.id)).toEqual([26, 27, 28, 29, 30, 31, 32, 33, 34, 35]);
    expect(again.store.batchEncounters(fifth.id).every((e) => e.life === life2)).toBe(true);
    again.store.close();
  });

  it('takes an acknowledged batch out of the outbox at once, and durably at the next commit; unknown ids are counted', () => {
    const { store, clock, path } = open();
    store.addEncounters(Array.from({ length: 20 }, (_, i) => encounter(i, clock.t)));
    store.commit();
    const [first, second] = store.outbox();
    expect(store.addAck(first.id)).toBe(true);
    expect(store.addAck('01ARZ3NDEKTSV4RRFFQ69G5FAV')).toBe(false);
    expect(store.counters.acksUnknown).toBe(1);
    // not sent again while the ack waits for the commit
    expect(store.outbox().map((b) => b.id)).toEqual([second.id]);
    expect(store.stats().outboxBatches).toBe(2);
    store.commit();
    expect(store.stats().outboxBatches).toBe(1);
    // a duplicate ack changes nothing
    store.addAck(first.id);
    store.commit();
    expect(store.counters.batchesAcked).toBe(1);
    store.close();
    const again = open({ path }, clock);
    expect(again.store.outbox().map((b) => b.id)).toEqual([second.id]);
    again.store.close();
  });

  it('cuts a batch by its age on the steady clock: a wall-clock step back does not hold it for the size of the step', () => {
    const { store, clock } = open();
    const cut: number[] = [];
    store.onBatches((b) => cut.push(...b.map((x) => x.encounterCount)));
    store.addEncounters(Array.from({ length: 3 }, (_, i) => encounter(i, clock.t)));
    store.commit();
    clock.t -= 30 * DAY; // NTP corrects a clock that ran a month ahead
    pass(clock, 29_999);
    store.commit();
    expect(cut).toEqual([]);
    pass(clock, 1);
    store.commit();
    expect(cut).toEqual([3]);
    // and a step forward does not cut early
    store.addEncounters([encounter(7, clock.t)]);
    store.commit();
    clock.t += 30 * DAY;
    store.commit();
    expect(cut).toEqual([3]);
    pass(clock, 30_000);
    store.commit();
    expect(cut).toEqual([3, 1]);
    store.close();
  });

  it('never deletes an unacknowledged encounter because the clock stepped, however far', () => {
    const { store, clock, path } = open();
    store.addEncounters(Array.from({ length: 25 }, (_, i) => encounter(i, clock.t)));
    store.commit();
    pass(clock, 30_000);
    store.commit();
    expect(store.outbox()).toHaveLength(3);
    for (const step of [30 * DAY, 365 * DAY, -400 * DAY, 400 * DAY]) {
      clock.t += step;
      clock.steady += 61_000; // a minute of service: the purge looks
      store.commit();
      expect(store.counters.purgedEncounters).toBe(0);
    }
    store.close();
    // ...nor across a restart with the clock 30 days ahead
    clock.t += 30 * DAY;
    const again = open({ path }, clock);
    clock.steady += 61_000;
    again.store.commit();
    expect(again.store.outbox().reduce((n, b) => n + b.encounterCount, 0)).toBe(25);
    expect(again.store.counters.purgedEncounters).toBe(0);
    again.store.close();
  });

  it('purges acknowledged encounters past retention, in small batches, by a synchronised clock', () => {
    const { store, clock } = open({ purgeBatchSize: 7, batchMaxEncounters: 5 });
    store.addEncounters(Array.from({ length: 20 }, (_, i) => encounter(i, clock.t)));
    store.commit();
    for (const b of store.outbox()) store.addAck(b.id);
    store.addEncounters([encounter(99, clock.t + 14 * DAY)]); // younger, stays
    store.commit();
    pass(clock, 30_000);
    store.commit();
    expect(store.outbox()).toHaveLength(1);
    expect(store.counters.purgedEncounters).toBe(0);
    // 14 days and a bit later, the clock not synchronised: a date from it proves nothing
    clock.t += 14 * DAY + 1;
    clock.synced = false;
    clock.steady += 61_000;
    store.commit();
    expect(store.counters.purgedEncounters).toBe(0);
    clock.synced = true;
    clock.steady += 61_000;
    store.commit();
    // whole batches of 5 until at least 7 encounters went: 10 per commit
    expect(store.counters.purgedEncounters).toBe(10);
    store.commit(); // more was left: the purge goes on at once
    expect(store.counters.purgedEncounters).toBe(20);
    expect(store.encountersInRange(0, clock.t + 15 * DAY).map((e) => e.tempId.readUInt32BE(0))).toEqual([99]);
    const tx = store.counters.writeTransactions;
    store.commit();
    expect(store.counters.writeTransactions).toBe(tx);
    store.close();
  });

  it('ages data recorded under an unsynchronised clock by service time, and drops unacknowledged data only past unackedMaxMs of service, saying so', () => {
    const { store, clock } = open({ batchMaxEncounters: 5 });
    const unsynced = Array.from({ length: 5 }, (_, i) => ({ ...encounter(i, clock.t - 400 * DAY), clockSynced: false }));
    store.addEncounters(unsynced); // recorded with a clock a year behind
    store.addEncounters(Array.from({ length: 5 }, (_, i) => encounter(10 + i, clock.t)));
    store.commit();
    const [old, fresh] = store.outbox();
    store.addAck(old.id);
    const events: string[] = [];
    store.onEvent((e) => events.push(e.kind));
    clock.steady += 61_000;
    store.commit();
    expect(store.counters.purgedEncounters).toBe(0); // its dates are not evidence
    clock.steady += 14 * DAY;
    store.commit();
    expect(store.counters.purgedEncounters).toBe(5); // 14 days of service later
    expect(store.outbox().map((b) => b.id)).toEqual([fresh.id]);
    clock.steady += 16 * DAY; // 30 days of service with no ack
    store.commit();
    expect(store.counters.purgedUnacked).toBe(5);
    expect(store.outbox()).toEqual([]);
    expect(events).toEqual(['unacked_purged']);
    expect(store.database.lastEvent?.detail).toMatch(/never acknowledged within 30 days/);
    store.close();
  });

  it('counts service time across restarts, not the time the unit was off', () => {
    const { store, clock, path } = open();
    clock.steady += 5 * DAY;
    store.addEncounters([encounter(1, clock.t)]);
    store.commit();
    store.close();
    clock.steady = 0; // a reboot restarts the monotonic clock
    const again = open({ path }, clock);
    clock.steady += DAY;
    again.store.commit();
    expect(again.store.database.serviceS).toBe(6 * 86_400);
    again.store.close();
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
    expect(store.counters.droppedDiskFull).toBe(500);
    store.close();
  });
});
