// Retention (store.retentionDays, store.unackedMaxDays; its counters and settings say "purge"),
// inside the store's commit transaction: whole batches at a time, a few hundred encounters a commit.
import type { StoreStatements } from './statements.js';

export interface RetentionContext {
  stmt: StoreStatements;
  options: { retentionMs: number; unackedMaxMs: number; purgeBatchSize: number; clockSynced?: () => boolean };
  /** Service time now (ms): unacknowledged batches expire by it, which no clock step moves. */
  serviceMs: number;
}

/** What one pass deleted; `more` when it stopped at purgeBatchSize with more expired. */
export interface RetentionPass {
  encounters: number;
  unacked: number;
  batches: number;
  more: boolean;
  ids: string[];
}

/**
 * Retention (store.retentionDays, store.unackedMaxDays; its counters and settings say "purge"):
 * deletes expired batches whole, up to about purgeBatchSize encounters. Acknowledged: once
 * `retentionMs` old by a synchronised clock (only if every sighting had one), or by service
 * time. Unacknowledged: only after `unackedMaxMs` of service time, which no clock step moves.
 */
export function deleteExpired({ stmt, options, serviceMs }: RetentionContext, now: number): RetentionPass {
  const synced = options.clockSynced?.() ?? true;
  const expired = stmt.expired.all(
    synced ? 1 : 0, now - options.retentionMs, serviceMs - options.retentionMs,
    serviceMs - options.unackedMaxMs, options.purgeBatchSize,
  ) as Array<{ id: string; firstId: number; lastId: number; unacked: number }>;
  const out = { encounters: 0, unacked: 0, batches: 0, more: false, ids: [] as string[] };
  let purgedThrough = stmt.meta.get('purged_through') as number;
  for (const b of expired) {
    if (out.encounters >= options.purgeBatchSize) {
      out.more = true;
      break;
    }
    const n = stmt.deleteRange.run(b.firstId, b.lastId).changes;
    stmt.deleteBatch.run(b.id);
    out.encounters += n;
    out.batches++;
    out.ids.push(b.id);
    if (b.unacked) out.unacked += n;
    purgedThrough = Math.max(purgedThrough, b.lastId);
  }
  if (expired.length === options.purgeBatchSize) out.more = true;
  if (out.batches > 0) stmt.setMeta.run(purgedThrough, 'purged_through');
  return out;
}
