// Reading a gateway's database from a test, as the collector would see its contents.
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { LEGACY_LIFE, type StatusCounters } from '../../core/wire/index.js';
import { runVgw, waitFor } from './processes.js';

/**
 * How many rows a gateway's database holds by `sql` (a count), read beside the running daemon;
 * 0 while the file or its tables do not exist yet (a daemon still starting).
 */
export function countSoFar(path: string, sql: string): number {
  if (!existsSync(path)) return 0;
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare(sql).pluck().get() as number;
  } catch {
    return 0; // not created yet
  } finally {
    db.close();
  }
}

export interface EncounterRow {
  life: string;
  id: number;
  temp_id: Buffer;
  first_seen: number;
  last_seen: number;
  count: number;
}

/** Encounters not yet batched plus batches not yet acknowledged: 0 once the outbox drained. */
export function outboxPending(db: Database.Database): number {
  return db.prepare(
    `SELECT (SELECT count(*) FROM encounters WHERE id > coalesce((SELECT max(last_id) FROM batches), 0))
          + (SELECT count(*) FROM batches WHERE acked_at IS NULL)`,
  ).pluck().get() as number;
}

/**
 * The gateway's encounters, each with its life (the latest life starting at or below its id);
 * a database not yet upgraded from schema 1 has no lives, and its rows are the all-zero life's.
 */
export function gatewayEncounters(db: Database.Database): EncounterRow[] {
  const upgraded = db.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'lives'").pluck().get() === 1;
  const lives = upgraded ? (db.prepare('SELECT life, first_id FROM lives ORDER BY first_id, rowid').all() as Array<{ life: string; first_id: number }>) : [];
  const rows = db.prepare('SELECT id, temp_id, first_seen, last_seen, count FROM encounters ORDER BY id').all() as EncounterRow[];
  let l = 0;
  for (const r of rows) {
    while (l + 1 < lives.length && lives[l + 1].first_id <= r.id) l++;
    r.life = lives[l]?.life ?? LEGACY_LIFE;
  }
  return rows;
}

/**
 * Waits until a running gateway has nothing left to send: no encounter open or waiting to be
 * committed, batched or acknowledged (its live status, `vgw status`). Once its crowd has gone,
 * nothing more can reach the collector: what a test checks then is final.
 */
export async function waitGatewaySettled(config: string, timeoutMs = 30_000): Promise<void> {
  await waitFor('the gateway settled (nothing open, pending, unbatched or unacknowledged)', async () => {
    const r = await runVgw(['status', '-c', config, '--json']);
    if (r.status !== 0) return undefined;
    const { encounters, store } = (JSON.parse(r.stdout) as { counters: StatusCounters }).counters;
    return encounters.open === 0 && store.pending === 0 && store.unbatched === 0 && store.outboxBatches === 0;
  }, timeoutMs);
}
