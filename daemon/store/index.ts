// The gateway's SQLite store. All writes go through one group commit: at most one write
// transaction per `groupCommitMs`, because SD cards wear out from small writes.
import Database from 'better-sqlite3';
import { ulid } from 'ulid';
import type { ClosedEncounter } from '../encounters/index.js';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.js';

export interface StoreOptions {
  path: string;
  groupCommitMs: number;
  retentionMs: number;
  /** Rows deleted per commit by the retention purge: small, so no commit stalls the loop. */
  purgeBatchSize: number;
  batchMaxEncounters: number;
  batchMaxAgeMs: number;
  /** Closed encounters held in memory while the disk refuses writes; past this the oldest go. */
  maxPendingEncounters: number;
  now?: () => number;
}

export interface StoredEncounter {
  id: number;
  protocol: number;
  tempId: Buffer;
  metadata: Buffer;
  firstSeen: number;
  lastSeen: number;
  count: number;
  rssiMin: number;
  rssiMax: number;
  rssiSum: number;
  bucketMs: number[];
}

export interface OutboxBatch {
  id: string;
  seq: number;
  createdAt: number;
  encounterCount: number;
}

export interface StoreCounters {
  write_transactions: number;
  encounters_stored: number;
  batches_cut: number;
  batches_acked: number;
  acks_unknown: number;
  purged_encounters: number;
  commit_failures: number;
  dropped_disk_full: number;
}

interface EncounterRow {
  id: number;
  protocol: number;
  temp_id: Buffer;
  metadata: Buffer;
  first_seen: number;
  last_seen: number;
  count: number;
  rssi_min: number;
  rssi_max: number;
  rssi_sum: number;
  bucket_ms: string;
}

function fromRow(r: EncounterRow): StoredEncounter {
  return {
    id: r.id,
    protocol: r.protocol,
    tempId: r.temp_id,
    metadata: r.metadata,
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
    count: r.count,
    rssiMin: r.rssi_min,
    rssiMax: r.rssi_max,
    rssiSum: r.rssi_sum,
    bucketMs: JSON.parse(r.bucket_ms) as number[],
  };
}

export function openDatabase(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  // FULL: a commit survives power loss, which a Pi pulled from the wall will see.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  return db;
}

export function migrate(db: Database.Database, migrations: readonly string[]): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    throw new Error(
      `database schema version ${current} is newer than this software (${migrations.length}); upgrade venue-gateway`,
    );
  }
  for (let v = current; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v]);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

export class Store {
  readonly counters: StoreCounters = {
    write_transactions: 0,
    encounters_stored: 0,
    batches_cut: 0,
    batches_acked: 0,
    acks_unknown: 0,
    purged_encounters: 0,
    commit_failures: 0,
    dropped_disk_full: 0,
  };
  private readonly db: Database.Database;
  private readonly now: () => number;
  private pendingEncounters: ClosedEncounter[] = [];
  private pendingAcks = new Set<string>();
  private oldestUnbatchedAt: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private batchListeners: Array<(batches: OutboxBatch[]) => void> = [];
  private ackListeners: Array<(ids: string[]) => void> = [];
  private readonly stmt;

  constructor(private readonly options: StoreOptions) {
    this.now = options.now ?? Date.now;
    this.db = openDatabase(options.path);
    migrate(this.db, MIGRATIONS);
    const db = this.db;
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO encounters (protocol, temp_id, metadata, first_seen, last_seen, count,
           rssi_min, rssi_max, rssi_sum, bucket_ms) VALUES (?,?,?,?,?,?,?,?,?,?)`,
      ),
      unbatchedCount: db.prepare('SELECT count(*) AS n FROM encounters WHERE batch_id IS NULL').pluck(),
      nextSeq: db.prepare(`SELECT value FROM meta WHERE key = 'next_seq'`).pluck(),
      setNextSeq: db.prepare(`UPDATE meta SET value = ? WHERE key = 'next_seq'`),
      insertBatch: db.prepare('INSERT INTO batches (id, seq, created_at, encounter_count) VALUES (?,?,?,?)'),
      assignBatch: db.prepare(
        `UPDATE encounters SET batch_id = ? WHERE id IN
           (SELECT id FROM encounters WHERE batch_id IS NULL ORDER BY id LIMIT ?)`,
      ),
      ack: db.prepare('UPDATE batches SET acked_at = ? WHERE id = ? AND acked_at IS NULL'),
      batchExists: db.prepare('SELECT 1 FROM batches WHERE id = ?').pluck(),
      outbox: db.prepare(
        'SELECT id, seq, created_at AS createdAt, encounter_count AS encounterCount FROM batches WHERE acked_at IS NULL ORDER BY seq',
      ),
      batchEncounters: db.prepare('SELECT * FROM encounters WHERE batch_id = ? ORDER BY id'),
      range: db.prepare(
        'SELECT * FROM encounters WHERE last_seen >= ? AND first_seen < ? AND last_seen >= ? ORDER BY id',
      ),
      purgeEncounters: db.prepare(
        'DELETE FROM encounters WHERE id IN (SELECT id FROM encounters WHERE last_seen < ? LIMIT ?)',
      ),
      purgeBatches: db.prepare(
        'DELETE FROM batches WHERE id IN (SELECT id FROM batches WHERE created_at < ? LIMIT ?)',
      ),
      anyExpired: db.prepare(
        'SELECT EXISTS (SELECT 1 FROM encounters WHERE last_seen < ?) OR EXISTS (SELECT 1 FROM batches WHERE created_at < ?)',
      ).pluck(),
      lastAck: db.prepare('SELECT max(acked_at) FROM batches').pluck(),
    };
    if ((this.stmt.unbatchedCount.get() as number) > 0) this.oldestUnbatchedAt = this.now();
  }

  /** Starts the group-commit timer; a failed commit (disk full, I/O error) is retried next tick. */
  start(onError: (err: unknown) => void): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      try {
        this.commit();
      } catch (err) {
        onError(err);
      }
    }, this.options.groupCommitMs);
  }

  onBatches(listener: (batches: OutboxBatch[]) => void): void {
    this.batchListeners.push(listener);
  }

  onAcked(listener: (ids: string[]) => void): void {
    this.ackListeners.push(listener);
  }

  /** Queues closed encounters for the next group commit. */
  addEncounters(encounters: ClosedEncounter[]): void {
    for (const e of encounters) this.pendingEncounters.push(e);
    const excess = this.pendingEncounters.length - this.options.maxPendingEncounters;
    if (excess > 0) {
      this.pendingEncounters.splice(0, excess);
      this.counters.dropped_disk_full += excess;
    }
  }

  /** Queues a backend acknowledgement; returns false for a batch this store never cut. */
  addAck(batchId: string): boolean {
    if (!this.batchExists(batchId)) {
      this.counters.acks_unknown++;
      return false;
    }
    this.pendingAcks.add(batchId);
    return true;
  }

  batchExists(batchId: string): boolean {
    return this.stmt.batchExists.get(batchId) !== undefined;
  }

  get pendingCount(): number {
    return this.pendingEncounters.length;
  }

  /** Runs one write transaction with everything queued; a no-op when there is nothing to do. */
  commit(): void {
    const now = this.now();
    const encounters = this.pendingEncounters;
    const acks = [...this.pendingAcks];
    const cutoff = now - this.options.retentionMs;
    const mustCut = this.batchCutDue(now);
    const mustPurge = this.stmt.anyExpired.get(cutoff, cutoff) === 1;
    if (encounters.length === 0 && acks.length === 0 && !mustCut && !mustPurge) return;
    let cut: OutboxBatch[] = [];
    let acked: string[] = [];
    try {
      this.db.transaction(() => {
        for (const e of encounters) {
          this.stmt.insert.run(
            e.protocol,
            e.tempId,
            e.metadata,
            e.firstSeen,
            e.lastSeen,
            e.count,
            e.rssiMin,
            e.rssiMax,
            e.rssiSum,
            JSON.stringify(e.bucketMs.map(Math.round)),
          );
        }
        acked = acks.filter((id) => this.stmt.ack.run(now, id).changes === 1);
        cut = this.cutBatches(now, encounters.length > 0);
        if (mustPurge) {
          this.counters.purged_encounters += this.stmt.purgeEncounters.run(cutoff, this.options.purgeBatchSize).changes;
          this.stmt.purgeBatches.run(cutoff, this.options.purgeBatchSize);
        }
      })();
    } catch (err) {
      // SQLITE_FULL, I/O errors: the transaction rolled back; everything stays queued.
      this.counters.commit_failures++;
      throw err;
    } finally {
      this.counters.write_transactions++;
    }
    this.pendingEncounters = [];
    for (const id of acks) this.pendingAcks.delete(id);
    this.counters.encounters_stored += encounters.length;
    this.counters.batches_acked += acked.length;
    this.counters.batches_cut += cut.length;
    if (cut.length > 0) for (const l of this.batchListeners) l(cut);
    if (acked.length > 0) for (const l of this.ackListeners) l(acked);
  }

  private batchCutDue(now: number): boolean {
    return this.oldestUnbatchedAt !== null && now - this.oldestUnbatchedAt >= this.options.batchMaxAgeMs;
  }

  private cutBatches(now: number, added: boolean): OutboxBatch[] {
    const max = this.options.batchMaxEncounters;
    let unbatched = this.stmt.unbatchedCount.get() as number;
    if (added && this.oldestUnbatchedAt === null && unbatched > 0) this.oldestUnbatchedAt = now;
    const ageDue = this.oldestUnbatchedAt !== null && now - this.oldestUnbatchedAt >= this.options.batchMaxAgeMs;
    const cut: OutboxBatch[] = [];
    let seq = this.stmt.nextSeq.get() as number;
    while (unbatched >= max || (ageDue && unbatched > 0)) {
      const batch: OutboxBatch = { id: ulid(now), seq, createdAt: now, encounterCount: Math.min(max, unbatched) };
      this.stmt.insertBatch.run(batch.id, batch.seq, batch.createdAt, batch.encounterCount);
      this.stmt.assignBatch.run(batch.id, max);
      unbatched -= batch.encounterCount;
      seq++;
      cut.push(batch);
    }
    if (cut.length > 0) this.stmt.setNextSeq.run(seq);
    if (unbatched === 0) this.oldestUnbatchedAt = null;
    else if (cut.length > 0 && ageDue) this.oldestUnbatchedAt = now;
    return cut;
  }

  /** Batches cut but not acknowledged, oldest first. */
  outbox(): OutboxBatch[] {
    return this.stmt.outbox.all() as OutboxBatch[];
  }

  batchEncounters(batchId: string): StoredEncounter[] {
    return (this.stmt.batchEncounters.all(batchId) as EncounterRow[]).map(fromRow);
  }

  /** Encounters overlapping [from, to) that are still within retention. */
  encountersInRange(from: number, to: number): StoredEncounter[] {
    const cutoff = this.now() - this.options.retentionMs;
    return (this.stmt.range.all(from, to, cutoff) as EncounterRow[]).map(fromRow);
  }

  stats(): { unbatched: number; outboxBatches: number; lastAckAt: number | null; pending: number } {
    return {
      unbatched: this.stmt.unbatchedCount.get() as number,
      outboxBatches: this.outbox().length,
      lastAckAt: (this.stmt.lastAck.get() as number | null) ?? null,
      pending: this.pendingEncounters.length,
    };
  }

  /** Stops the timer, commits what is queued, and closes the file. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    try {
      this.commit();
    } finally {
      this.db.close();
    }
  }
}
