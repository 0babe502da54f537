// Pull answers read and sent in pieces, from a real store with two lives.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toWire, type ClosedEncounter } from '../../core/encounters/index.js';
import { Store } from '../../daemon/store/index.js';
import { PullPart, streamPull } from '../../daemon/uplink/pull-stream.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-pull-');
const T0 = Date.UTC(2026, 10, 22, 8);

function encounter(i: number): ClosedEncounter {
  const tempId = Buffer.alloc(16, 3);
  tempId.writeUInt32BE(i, 0);
  // encounter i spans [T0 + 10 s·i, T0 + 10 s·i + 5 s]
  return {
    protocol: 0, tempId, metadata: Buffer.alloc(4), firstSeen: T0 + i * 10_000, lastSeen: T0 + i * 10_000 + 5000,
    count: 3, rssiMin: -70, rssiMax: -60, rssiSum: -195, rssiCount: 3, bucketMs: [0, 0, 5000, 0], clockSynced: true, closeReason: 'silence',
  };
}

function open(path: string, batchMaxAgeMs = 0): Store {
  return new Store({
    path, commitIntervalMs: 1000, retentionMs: 400 * 86_400_000, unackedMaxMs: 400 * 86_400_000, purgeBatchSize: 500,
    batchMaxEncounters: 100, batchMaxAgeMs, maxPendingEncounters: 100_000, now: () => T0 + 86_400_000,
  });
}

describe('pull streaming', () => {
  it('sends exactly the overlapping encounters, in parts of one life each, the last part marked; nothing batched yet is missed', async () => {
    const path = join(dir, 'g.db');
    const a = open(path);
    a.addEncounters(Array.from({ length: 1500 }, (_, i) => encounter(i)));
    a.commit();
    const life1 = a.database.life;
    a.close();
    const b = open(path, 3_600_000);
    b.addEncounters(Array.from({ length: 730 }, (_, i) => encounter(1500 + i)));
    b.commit(); // 7 full batches; 30 stored but not batched yet
    expect(b.stats().unbatched).toBe(30);
    const life2 = b.database.life;
    const parts: PullPart[] = [];
    // [encounter 1000 + 1 ms, encounter 2210's first second): 1000 ... 2209
    const from = T0 + 1000 * 10_000 + 5000;
    const to = T0 + 2210 * 10_000;
    const sent = await streamPull(b, from, to, 64, life2, async (p) => void parts.push(p));
    expect(sent).toBe(parts.reduce((n, p) => n + p.encounters.length, 0));
    const ids = parts.flatMap((p) => p.encounters.map((e) => e.tempId.readUInt32BE(0)));
    expect(ids).toEqual(Array.from({ length: 1210 }, (_, i) => 1000 + i));
    expect(parts.map((p) => p.index)).toEqual(parts.map((_, i) => i));
    expect(parts.filter((p) => p.last).map((p) => p.index)).toEqual([parts.length - 1]);
    for (const p of parts) {
      expect(p.encounters.length).toBeLessThanOrEqual(64);
      expect(p.encounters.every((e) => e.life === p.life)).toBe(true);
    }
    expect(parts[0].life).toBe(life1);
    expect(parts[parts.length - 1].life).toBe(life2);
    expect(b.pullPlan(from, to).upperBound).toBeGreaterThanOrEqual(1210);
    b.close();
  });

  it('the range applies to the times on the wire (whole seconds): a consumer predicts every answer from what it stored', async () => {
    const s = open(join(dir, 'wire-bounds.db'));
    // Sightings off the whole second, so the wire's floor and ceiling move every bound.
    const list = Array.from({ length: 40 }, (_, i) => ({ ...encounter(i), firstSeen: T0 + i * 10_000 + 300, lastSeen: T0 + i * 10_000 + 4_700 }));
    s.addEncounters(list);
    s.commit();
    const stored = list.map((e, i) => toWire({ ...e, id: i + 1 }));
    let checked = 0;
    for (const base of [T0 + 50_000, T0 + 54_000, T0 + 55_000, T0 + 120_000]) {
      for (const dFrom of [-1000, -1, 0, 1, 300, 999]) {
        for (const span of [1, 999, 1000, 5_000, 40_001]) {
          const from = base + dFrom;
          const to = from + span;
          const expected = stored.filter((e) => e.lastSeen >= from && e.firstSeen < to).map((e) => e.id);
          const parts: PullPart[] = [];
          await streamPull(s, from, to, 64, s.database.life, async (p) => void parts.push(p));
          expect(parts.flatMap((p) => p.encounters.map((e) => e.id)), `[${from - T0}, ${to - T0})`).toEqual(expected);
          checked += expected.length;
        }
      }
    }
    expect(checked).toBeGreaterThan(100);
    // On the edge: encounter 5 ends at 54.7 s, 55 s on the wire, so a pull from 55 s holds it.
    expect(s.encountersInRange(T0 + 55_000, T0 + 56_000).map((e) => e.id)).toEqual([6]);
    s.close();
  });

  it('encounters not batched yet count toward the pull limit only where they overlap the range', () => {
    const s = open(join(dir, 'unbatched-limit.db'), 3_600_000);
    s.addEncounters(Array.from({ length: 30 }, (_, i) => encounter(i)));
    s.commit();
    expect(s.stats().unbatched).toBe(30);
    expect(s.pullPlan(T0 + 1_000_000, T0 + 2_000_000)).toEqual({ ranges: [], upperBound: 0 });
    expect(s.pullPlan(T0, T0 + 25_000).upperBound).toBe(3);
    s.close();
  });

  it('an empty range is one empty part, marked last', async () => {
    const s = open(join(dir, 'empty.db'));
    const parts: PullPart[] = [];
    expect(await streamPull(s, 0, 1, 64, s.database.life, async (p) => void parts.push(p))).toBe(0);
    expect(parts).toEqual([{ index: 0, last: true, life: s.database.life, encounters: [] }]);
    s.close();
  });
});
