// The gateway's SQLite store. All writes go through one group commit: at most one write
// transaction per `groupCommitMs`, because SD cards wear out from small writes.
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { ulid } from 'ulid';
import type { ClosedEncounter, Encounter } from '../encounters/index.js';
import { MIGRATIONS } from './schema.js';

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

export interface StoredEncounter extends Encounter {
  id: number;
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
  rssi_count: number;
  bucket_ms: string;
  clock_synced: number;
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
    rssiCount: r.rssi_count,
    bucketMs: JSON.parse(r.bucket_ms) as number[],
    clockSynced: r.clock_synced === 1,
  };
}

export function openDatabase(path: string): Database.Database {
  // The folder is made private on first start; systemd's StateDirectory makes it too.
  mkdirSync(dirname(resolve(path)), { recursive: true, mode: 0o700 });
  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (err) {
    throw new Error(`store.path: cannot open ${path} (${(err as Error).message}): check the folder's owner and permissions`);
  }
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
  /** Highest encounter id written; ids are contiguous from here on. */
  private lastId: number;
  /** Highest encounter id inside a batch (or purged): everything above waits for a batch. */
  private batchedThrough: number;
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
        `INSERT INTO encounters (id, protocol, temp_id, metadata, first_seen, last_seen, count,
           rssi_min, rssi_max, rssi_sum, rssi_count, bucket_ms, clock_synced) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
      ),
      meta: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      setMeta: db.prepare('UPDATE meta SET value = ? WHERE key = ?'),
      insertBatch: db.prepare('INSERT INTO batches (id, seq, first_id, last_id, created_at) VALUES (?,?,?,?,?)'),
      ack: db.prepare('UPDATE batches SET acked_at = ? WHERE id = ? AND acked_at IS NULL'),
      batch: db.prepare('SELECT first_id AS firstId, last_id AS lastId FROM batches WHERE id = ?'),
      outbox: db.prepare(
        `SELECT id, seq, created_at AS createdAt, last_id - first_id + 1 AS encounterCount
         FROM batches WHERE acked_at IS NULL ORDER BY seq`,
      ),
      encounterRange: db.prepare('SELECT * FROM encounters WHERE id BETWEEN ? AND ? ORDER BY id'),
      timeRange: db.prepare('SELECT * FROM encounters WHERE last_seen >= ? AND first_seen < ? AND last_seen >= ? ORDER BY id'),
      oldestLastSeen: db.prepare('SELECT last_seen FROM encounters ORDER BY id LIMIT 1').pluck(),
      oldestBatch: db.prepare('SELECT min(created_at) FROM batches').pluck(),
      // Ids follow closing order, so the oldest encounters sit at the front of the table:
      // only the first rows are looked at, never the whole table.
      purgeEncounters: db.prepare(
        'DELETE FROM encounters WHERE id IN (SELECT id FROM encounters ORDER BY id LIMIT ?) AND last_seen < ? RETURNING id',
      ).pluck(),
      purgeBatches: db.prepare('DELETE FROM batches WHERE id IN (SELECT id FROM batches WHERE created_at < ? ORDER BY seq LIMIT ?)'),
      maxId: db.prepare('SELECT max(id) FROM encounters').pluck(),
      maxBatched: db.prepare('SELECT max(last_id) FROM batches').pluck(),
      lastAck: db.prepare('SELECT max(acked_at) FROM batches').pluck(),
    };
    const purgedThrough = this.stmt.meta.get('purged_through') as number;
    this.lastId = Math.max((this.stmt.maxId.get() as number | null) ?? 0, purgedThrough);
    this.batchedThrough = Math.max((this.stmt.maxBatched.get() as number | null) ?? 0, purgedThrough);
    if (this.lastId > this.batchedThrough) this.oldestUnbatchedAt = this.now();
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
    if (this.stmt.batch.get(batchId) === undefined) {
      this.counters.acks_unknown++;
      return false;
    }
    this.pendingAcks.add(batchId);
    return true;
  }

  get pendingCount(): number {
    return this.pendingEncounters.length;
  }

  private get unbatched(): number {
    return this.lastId - this.batchedThrough;
  }

  private expired(cutoff: number): boolean {
    const oldest = this.stmt.oldestLastSeen.get() as number | undefined;
    const oldestBatch = this.stmt.oldestBatch.get() as number | null;
    return (oldest !== undefined && oldest < cutoff) || (oldestBatch !== null && oldestBatch < cutoff);
  }

  /** Runs one write transaction with everything queued; a no-op when there is nothing to do. */
  commit(): void {
    const now = this.now();
    const encounters = this.pendingEncounters;
    const acks = [...this.pendingAcks];
    const cutoff = now - this.options.retentionMs;
    const cutDue = this.oldestUnbatchedAt !== null && now - this.oldestUnbatchedAt >= this.options.batchMaxAgeMs;
    const mustPurge = this.expired(cutoff);
    if (encounters.length === 0 && acks.length === 0 && !cutDue && !mustPurge) return;
    const before = { lastId: this.lastId, batchedThrough: this.batchedThrough, oldestUnbatchedAt: this.oldestUnbatchedAt };
    let cut: OutboxBatch[] = [];
    let acked: string[] = [];
    let purged = 0;
    try {
      this.db.transaction(() => {
        for (const e of encounters) {
          this.stmt.insert.run(
            ++this.lastId, e.protocol, e.tempId, e.metadata, e.firstSeen, e.lastSeen, e.count,
            e.rssiMin, e.rssiMax, e.rssiSum, e.rssiCount, JSON.stringify(e.bucketMs.map(Math.round)), e.clockSynced ? 1 : 0,
          );
        }
        if (encounters.length > 0 && this.oldestUnbatchedAt === null) this.oldestUnbatchedAt = now;
        acked = acks.filter((id) => this.stmt.ack.run(now, id).changes === 1);
        cut = this.cutBatches(now);
        if (mustPurge) purged = this.purge(cutoff);
      })();
    } catch (err) {
      // SQLITE_FULL, I/O errors: the transaction rolled back; everything stays queued.
      Object.assign(this, before);
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
    this.counters.purged_encounters += purged;
    if (cut.length > 0) for (const l of this.batchListeners) l(cut);
    if (acked.length > 0) for (const l of this.ackListeners) l(acked);
  }

  private cutBatches(now: number): OutboxBatch[] {
    const max = this.options.batchMaxEncounters;
    const ageDue = this.oldestUnbatchedAt !== null && now - this.oldestUnbatchedAt >= this.options.batchMaxAgeMs;
    const cut: OutboxBatch[] = [];
    let seq = this.stmt.meta.get('next_seq') as number;
    while (this.unbatched >= max || (ageDue && this.unbatched > 0)) {
      const firstId = this.batchedThrough + 1;
      const lastId = Math.min(this.lastId, this.batchedThrough + max);
      const batch: OutboxBatch = { id: ulid(now), seq, createdAt: now, encounterCount: lastId - firstId + 1 };
      this.stmt.insertBatch.run(batch.id, seq, firstId, lastId, now);
      this.batchedThrough = lastId;
      seq++;
      cut.push(batch);
    }
    if (cut.length > 0) this.stmt.setMeta.run(seq, 'next_seq');
    if (this.unbatched === 0) this.oldestUnbatchedAt = null;
    else if (cut.length > 0 && ageDue) this.oldestUnbatchedAt = now;
    return cut;
  }

  /** Deletes up to purgeBatchSize expired encounters (and expired batches); returns how many. */
  private purge(cutoff: number): number {
    const size = this.options.purgeBatchSize;
    this.stmt.purgeBatches.run(cutoff, size);
    const deleted = this.stmt.purgeEncounters.all(size, cutoff) as number[];
    if (deleted.length === 0) return 0;
    const purgedThrough = Math.max(this.stmt.meta.get('purged_through') as number, ...deleted);
    this.stmt.setMeta.run(purgedThrough, 'purged_through');
    // Expired encounters never batched (a long outage) are gone: no batch may point at them.
    this.batchedThrough = Math.max(this.batchedThrough, Math.min(purgedThrough, this.lastId));
    return deleted.length;
  }

  /** Batches cut but not acknowledged, oldest first. */
  outbox(): OutboxBatch[] {
    return this.stmt.outbox.all() as OutboxBatch[];
  }

  batchEncounters(batchId: string): StoredEncounter[] {
    const b = this.stmt.batch.get(batchId) as { firstId: number; lastId: number } | undefined;
    if (!b) return [];
    return (this.stmt.encounterRange.all(b.firstId, b.lastId) as EncounterRow[]).map(fromRow);
  }

  /** Encounters overlapping [from, to) that are still within retention. */
  encountersInRange(from: number, to: number): StoredEncounter[] {
    const cutoff = this.now() - this.options.retentionMs;
    return (this.stmt.timeRange.all(from, to, cutoff) as EncounterRow[]).map(fromRow);
  }

  stats(): { unbatched: number; outboxBatches: number; lastAckAt: number | null; pending: number } {
    return {
      unbatched: this.unbatched,
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
