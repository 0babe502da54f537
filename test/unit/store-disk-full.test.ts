// A real full disk: a 1 MiB tmpfs (mounting needs root, as in CI; skipped otherwise).
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, rmdirSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ClosedEncounter } from '../../core/encounters/index.js';
import { Store } from '../../daemon/store/index.js';

const mountPoint = mkdtempSync(join(tmpdir(), 'vgw-full-'));
const mounted = process.getuid?.() === 0 && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]).status === 0;
afterAll(() => {
  if (mounted) spawnSync('umount', [mountPoint]);
  rmdirSync(mountPoint);
});

function encounters(from: number, n: number): ClosedEncounter[] {
  return Array.from({ length: n }, (_, i) => {
    const tempId = Buffer.alloc(16);
    tempId.writeUInt32BE(from + i, 0);
    return {
      protocol: 0, tempId, metadata: Buffer.alloc(4, 7), firstSeen: Date.now() - 5000, lastSeen: Date.now(), count: 9,
      rssiMin: -80, rssiMax: -60, rssiSum: -630, rssiCount: 9, bucketMs: [0, 1000, 2000, 0], clockSynced: true, closeReason: 'silence',
    };
  });
}

function fillDisk(path: string): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

describe.skipIf(!mounted)('store on a full disk (skipped unless root can mount a 1 MiB tmpfs)', () => {
  it('keeps queued encounters, never corrupts the file, and catches up when space returns', () => {
    const path = join(mountPoint, 'gateway.db');
    const store = new Store({
      path, commitIntervalMs: 1000, retentionMs: 14 * 86_400_000, unackedMaxMs: 400 * 86_400_000, purgeBatchSize: 500,
      batchMaxEncounters: 256, batchMaxAgeMs: 30_000, maxPendingEncounters: 100_000,
    });
    store.addEncounters(encounters(0, 200));
    store.commit();
    const filler = join(mountPoint, 'filler');
    fillDisk(filler);
    store.addEncounters(encounters(200, 3000));
    expect(() => store.commit()).toThrow(/full|disk|SQLITE/i);
    expect(store.counters.commitFailures).toBe(1);
    expect(store.pendingCount).toBe(3000);
    // What was committed before is intact and readable.
    const reader = new Database(path, { readonly: true });
    expect(reader.prepare('SELECT count(*) FROM encounters').pluck().get()).toBe(200);
    expect(reader.pragma('integrity_check', { simple: true })).toBe('ok');
    reader.close();
    unlinkSync(filler);
    store.commit();
    expect(store.pendingCount).toBe(0);
    store.close();
    const db = new Database(path, { readonly: true });
    const ids = db.prepare('SELECT id FROM encounters ORDER BY id').pluck().all() as number[];
    expect(ids).toEqual(Array.from({ length: 3200 }, (_, i) => i + 1));
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
    rmSync(path, { force: true });
  });
});
