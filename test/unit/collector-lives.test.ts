// The collector keys encounters by (gateway, life, id) and sequence numbers by life: a gateway
// that lost its database starts a new life and nothing of it is dropped or refused.
import { join } from 'node:path';
import { ulid } from 'ulid';
import { describe, expect, it } from 'vitest';
import { CollectorDb } from '../../collector/index.js';
import type { WireEncounter } from '../../core/encounters/index.js';
import type { Batch } from '../../core/wire/index.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-collector-');
const signer = Buffer.alloc(32, 1);

function encounter(id: number): WireEncounter {
  return {
    id, protocol: 0, tempId: Buffer.alloc(16, id), metadata: Buffer.alloc(4), firstSeen: 1_795_000_000_000, lastSeen: 1_795_000_060_000,
    count: 10, rssiMin: -80, rssiMax: -60, rssiMean: -70, attenuationS: [0, 30, 30, 0], clockSynced: true,
  };
}

function batch(life: string, seq: number, ids: number[]): Batch {
  return { kind: 'batch', id: ulid(), gateway: 'gw-1', venue: 'v-1', life, seq, createdAt: Date.now(), encounters: ids.map(encounter), hash: Buffer.alloc(32) };
}

describe('collector and gateway lives', () => {
  it('the same ids in a new life are new encounters; seq is bound per life; gaps are counted per life, a late first batch included', () => {
    const db = new CollectorDb(join(dir, 'c.db'));
    const a = ulid();
    const b = ulid();
    expect(db.ingest(batch(a, 1, [1, 2]), signer)).toEqual({ outcome: 'stored', stored: 2 });
    expect(db.ingest(batch(a, 2, [3]), signer)).toEqual({ outcome: 'stored', stored: 1 });
    // the database was lost: ids and seq start again, in a new life
    expect(db.ingest(batch(b, 1, [1, 2, 3]), signer)).toEqual({ outcome: 'stored', stored: 3 });
    // within a life, a new batch id on a used seq is still refused
    expect(db.ingest(batch(a, 2, [4]), signer)).toMatchObject({ outcome: 'out_of_sequence' });
    // a life whose first batch to arrive is seq 3: two batches missing, one gap
    const c = ulid();
    db.ingest(batch(c, 3, [10]), signer);
    db.ingest(batch(c, 5, [12]), signer);
    const lives = db.db.prepare('SELECT life, last_seq, seq_gaps FROM lives ORDER BY first_seen_at, life').all() as Array<{ life: string; last_seq: number; seq_gaps: number }>;
    expect(Object.fromEntries(lives.map((l) => [l.life, [l.last_seq, l.seq_gaps]]))).toEqual({ [a]: [2, 0], [b]: [1, 0], [c]: [5, 2] });
    const gateway = db.db.prepare('SELECT life, lives, seq_gaps FROM gateways WHERE gateway = ?').get('gw-1');
    expect(gateway).toEqual({ life: c, lives: 3, seq_gaps: 2 });
    expect(db.db.prepare('SELECT count(*) FROM encounters').pluck().get()).toBe(8); // 3 + 3 + 2
    db.close();
  });
});
