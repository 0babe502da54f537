// Batch cutting, inside the store's commit transaction: encounter ids are contiguous and a batch is
// a run of them within one life, so a batch is two ids and a sequence number. The limits are the
// uplink's settings (uplink.batchMaxEncounters, uplink.batchMaxAgeS): the uplink sends what is cut here.
import { ulid } from 'ulid';
import type { StoreStatements } from './statements.js';
import type { Life, WrittenState } from './written-state.js';

export interface OutboxBatch {
  id: string;
  life: string;
  seq: number;
  createdAt: number;
  encounterCount: number;
}

export interface CutContext {
  stmt: StoreStatements;
  written: WrittenState;
  options: { batchMaxEncounters: number; batchMaxAgeMs: number };
  /** Service time now (ms): a batch records it, and retention of unacknowledged batches counts by it. */
  serviceMs: number;
  /** The steady clock now (ms): batch age counts by it, so a wall-clock step back does not hold batches. */
  steady: number;
}

/** Index into `lives` of the life `id` belongs to: the latest to start at or below it. */
export function lifeIndex(lives: readonly Life[], id: number): number {
  let lo = 0;
  let hi = lives.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (lives[mid].firstId <= id) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * Cuts due batches, inside the commit's transaction, so a batch exists exactly when its rows
 * do. Their limits are the uplink's settings (uplink.batchMaxEncounters, uplink.batchMaxAgeS):
 * the uplink sends what the store cuts. A batch never spans two lives; `all` cuts everything waiting.
 */
export function cutBatches({ stmt, written, options, serviceMs, steady }: CutContext, now: number, all: boolean): OutboxBatch[] {
  const max = options.batchMaxEncounters;
  const ageDue = all || (written.oldestUnbatchedAt !== null && steady - written.oldestUnbatchedAt >= options.batchMaxAgeMs);
  const cut: OutboxBatch[] = [];
  while ((written.lastId - written.batchedThrough) > 0) {
    const firstId = written.batchedThrough + 1;
    const index = lifeIndex(written.lives, firstId);
    const life = written.lives[index];
    const lifeEnd = index + 1 < written.lives.length ? written.lives[index + 1].firstId - 1 : Infinity;
    const lastId = Math.min(written.lastId, written.batchedThrough + max, lifeEnd);
    const count = lastId - firstId + 1;
    if (count < max && lastId === written.lastId && !ageDue) break;
    const summary = stmt.batchSummary.get(firstId, lastId) as { firstSeen: number | null; lastSeen: number | null; synced: number | null };
    const batch: OutboxBatch = { id: ulid(now), life: life.life, seq: life.nextSeq, createdAt: now, encounterCount: count };
    stmt.insertBatch.run(batch.id, life.life, batch.seq, firstId, lastId, now, Math.round(serviceMs), summary.firstSeen ?? now, summary.lastSeen ?? now, summary.synced ?? 1);
    life.nextSeq++;
    written.batchedThrough = lastId;
    cut.push(batch);
  }
  if ((written.lastId - written.batchedThrough) === 0) written.oldestUnbatchedAt = null;
  else if (cut.length > 0 && ageDue) written.oldestUnbatchedAt = steady;
  return cut;
}
