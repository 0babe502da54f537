// What the gateway does with its database file before trusting it: checks it, sets a corrupt
// one aside for forensics (salvaging what can still be read), and keeps a small lineage file
// beside it so that a lost, replaced or rolled-back database is noticed and said.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

import type { StoreEvent, StoreEventKind } from '../../core/wire/status.js';

export type { StoreEvent, StoreEventKind };

/** SQLite's own words for a damaged file, as better-sqlite3 reports them. */
export function isCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB');
}

/** null when SQLite's quick_check passes, else what is wrong. */
export function checkDatabaseFile(path: string): string | null {
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { fileMustExist: true });
    const rows = db.pragma('quick_check') as Array<{ quick_check: string }>;
    if (rows.length === 1 && rows[0].quick_check === 'ok') return null;
    return `quick_check: ${rows.slice(0, 3).map((r) => r.quick_check).join('; ')}`;
  } catch (err) {
    return (err as Error).message;
  } finally {
    try {
      db?.close();
    } catch {
      /* a damaged file may not even close cleanly */
    }
  }
}

/** Renames the database and its WAL and shared-memory files to `<path>.corrupt-<time>`; returns that name. */
export function setAside(path: string, now: number): string {
  const aside = `${path}.corrupt-${new Date(now).toISOString().replace(/[:.]/g, '-')}`;
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(path + suffix)) renameSync(path + suffix, aside + suffix);
  }
  return aside;
}

/** The lineage file: which database this unit last ran on, and in which life. */
export interface Lineage {
  database: string;
  life: string;
}

export const lineagePath = (dbPath: string) => `${dbPath}.lineage`;

/**
 * The lineage, null when there is none (a unit's first start), or why it cannot be read: an
 * unreadable file is not "none", or a lost database would pass unnoticed.
 */
export function readLineage(dbPath: string): Lineage | null | { unreadable: string } {
  let text: string;
  try {
    text = readFileSync(lineagePath(dbPath), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    return { unreadable: (err as Error).message };
  }
  try {
    const v = JSON.parse(text) as Partial<Lineage> | null;
    if (typeof v?.database === 'string' && typeof v.life === 'string') return { database: v.database, life: v.life };
    return { unreadable: 'not a lineage record ({"database", "life"})' };
  } catch (err) {
    return { unreadable: (err as Error).message };
  }
}

/** Written whole and synced (temp file, fsync, rename, fsync of the folder): one small write per start. */
export function writeLineage(dbPath: string, lineage: Lineage): void {
  const path = lineagePath(dbPath);
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(lineage) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

export interface SalvagedBatch {
  id: string;
  life: string;
  seq: number;
  firstId: number;
  lastId: number;
  createdAt: number;
}

/** Raw encounter rows as both schemas store them. */
export type EncounterRowValues = Record<string, unknown> & { id: number };

export interface Salvage {
  /** Unacknowledged batches read whole, with their encounters: re-sent under their own ids. */
  batches: Array<{ batch: SalvagedBatch; rows: EncounterRowValues[] }>;
  /** Encounters not yet in a batch: they go into a life of their own. */
  unbatched: EncounterRowValues[];
  /** Batches that could not be read whole. */
  unreadableBatches: number;
}

/**
 * Reads what is still readable from a database set aside as corrupt: the unacknowledged batches
 * (each only if every one of its encounters reads back) and the encounters not yet batched.
 * Acknowledged data is at the backend already; it stays in the set-aside file for forensics.
 */
export function salvage(asidePath: string, legacyLife: string): Salvage {
  const out: Salvage = { batches: [], unbatched: [], unreadableBatches: 0 };
  let db: Database.Database;
  try {
    db = new Database(asidePath, { fileMustExist: true });
  } catch {
    return out;
  }
  const tryAll = <T>(sql: string, ...params: unknown[]): T[] | null => {
    try {
      return db.prepare(sql).all(...params) as T[];
    } catch {
      return null;
    }
  };
  try {
    const hasLife = tryAll<{ name: string }>(`SELECT name FROM pragma_table_info('batches') WHERE name = 'life'`)?.length === 1;
    const batches =
      tryAll<SalvagedBatch>(
        `SELECT id, ${hasLife ? 'life' : `'${legacyLife}' AS life`}, seq, first_id AS firstId, last_id AS lastId, created_at AS createdAt
         FROM batches WHERE acked_at IS NULL ORDER BY first_id`,
      ) ?? [];
    for (const batch of batches) {
      const rows = tryAll<EncounterRowValues>('SELECT * FROM encounters WHERE id BETWEEN ? AND ? ORDER BY id', batch.firstId, batch.lastId);
      if (rows && rows.length > 0) out.batches.push({ batch, rows });
      else out.unreadableBatches++;
    }
    // Which encounters are unbatched is known only while the batches table reads: otherwise
    // acknowledged ones would be sent again under new ids.
    const maxBatched = tryAll<{ m: number | null }>('SELECT max(last_id) AS m FROM batches');
    if (maxBatched !== null) {
      out.unbatched = tryAll<EncounterRowValues>('SELECT * FROM encounters WHERE id > ? ORDER BY id', maxBatched[0]?.m ?? 0) ?? [];
    }
  } finally {
    try {
      db.close();
    } catch {
      /* damaged */
    }
  }
  return out;
}
