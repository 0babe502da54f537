// The gateway's SQLite store. All writes go through one commit every `commitIntervalMs`: SD
// cards wear out from small writes. Each commit also checkpoints the encounters still open, so
// a crash or power cut loses at most one interval of sightings.
//
// Ids never mean two encounters: a new life (a ULID sent in every batch) starts at every open,
// and encounter ids and seq are unique per life. Retention never deletes an unacknowledged
// encounter because of the wall clock; it measures age in service time (time spent running)
// wherever the wall clock cannot be trusted.
//
// Over 400 lines: the class owns the file, its opening (lives, recovery) and the one-transaction
// commit, and what a commit changes in memory (written-state.ts), so a failed commit restores all
// of it. The rest is beside it: batches.ts (cutting), retention.ts (deleting what expired),
// encounter-row.ts (columns), checkpoint-codec.ts (open encounters), statements.ts, recovery.ts
// (corruption, salvage, lineage) and schema.ts.
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { encode as cborEncode } from 'cbor-x';
import { ulid } from 'ulid';
import { pullBounds, type ClosedEncounter, type Encounter, type StoredEncounter } from '../../core/encounters/index.js';
import type { DatabaseState, StoreBacklog, StoreCounters } from '../../core/wire/status.js';
import type { Logger } from '../../core/log/index.js';
import {
  checkDatabaseFile, EncounterRowValues, isCorruption, lineagePath, readLineage, Salvage, salvage, setAside, StoreEvent, writeLineage,
} from './recovery.js';
import { LEGACY_LIFE } from '../../core/wire/index.js';
import { migrate, openDatabase } from '../../core/sqlite/index.js';
import { MIGRATIONS } from './schema.js';
import { decodeOpenState, encodeOpenState } from './checkpoint-codec.js';
import { prepareStatements, type StoreStatements } from './statements.js';
import { cutBatches, lifeIndex, type OutboxBatch } from './batches.js';
import { copyWritten, type Life, type WrittenState } from './written-state.js';
import { deleteExpired } from './retention.js';
import { bucketSecondsBlob, type EncounterColumns, encounterFromColumns } from './encounter-row.js';

export { type EncounterColumns, encounterFromColumns } from './encounter-row.js';

export { isCorruption, lineagePath } from './recovery.js';
export type { StoreEvent } from './recovery.js';

export interface StoreOptions {
  path: string;
  /** One write transaction (and checkpoint of open encounters) per this many ms. */
  commitIntervalMs: number;
  /** Acknowledged encounters are deleted once this old. */
  retentionMs: number;
  /** Unacknowledged encounters are deleted only after this much service time (logged, counted). */
  unackedMaxMs: number;
  /** Encounters deleted per commit by the retention purge: small, so no commit stalls the loop. */
  purgeBatchSize: number;
  batchMaxEncounters: number;
  batchMaxAgeMs: number;
  /** Closed encounters held in memory while the disk refuses writes; past this the oldest go. */
  maxPendingEncounters: number;
  /** Wall clock (unix ms). */
  now?: () => number;
  /** Monotonic ms: service time advances by it, whatever the wall clock does. */
  steadyNow?: () => number;
  /** Whether the wall clock is synchronised now (retention by date needs it). */
  clockSynced?: () => boolean;
  /** The encounters still open, checkpointed with every commit. */
  openEncounters?: () => Iterable<Encounter>;
  /** A release on trial: schema migrations an older release could not run on wait until it is committed. */
  deferBreakingMigrations?: boolean;
  log?: Logger;
}


export type { DatabaseState, StoreCounters };
export type { OutboxBatch };


const META_DEFAULTS: Record<string, number> = { purged_through: 0, service_ms: 0 };

const openKey = (e: Encounter) => e.protocol + e.tempId.toString('latin1');

/** Dead `open_ids` rows allowed before the table is emptied and its live rows written again. */
const OPEN_IDS_COMPACT_ROWS = 4000;

/** Service time is written with every batch; alone (an idle unit), at most this often. */
const SERVICE_WRITE_MS = 10 * 60_000;

/** How often the purge looks for expired batches (it is never urgent). */
const PURGE_CHECK_MS = 60_000;

export class Store {
  readonly counters: StoreCounters = {
    writeTransactions: 0,
    encountersStored: 0,
    batchesCut: 0,
    batchesAcked: 0,
    acksUnknown: 0,
    purgedEncounters: 0,
    purgedUnacked: 0,
    commitFailures: 0,
    droppedDiskFull: 0,
    restoredOpen: 0,
    salvagedEncounters: 0,
    readErrors: 0,
  };
  private db!: Database.Database;
  private stmt!: StoreStatements;
  private readonly now: () => number;
  private readonly steadyNow: () => number;
  private readonly log: Logger | undefined;
  private pendingEncounters: ClosedEncounter[] = [];
  private pendingAcks = new Set<string>();
  /** What a commit changes in memory as it writes; a failed commit puts it back as it was. */
  private written: WrittenState = { lastId: 0, batchedThrough: 0, oldestUnbatchedAt: null, lives: [], openIdsRows: 0 };
  private serviceMs = 0;
  private lastSteady: number;
  private nextPurgeCheck = 0;
  /** What the last checkpoint held, to skip writing an unchanged one. */
  private lastCheckpoint: Buffer | null = null;
  /** Open encounters whose temp ID is in `open_ids` already: key → ref. */
  private openRefs = new Map<string, number>();
  private outboxList: OutboxBatch[] = [];
  private serviceWrittenAt = 0;
  private state!: DatabaseState;
  private recoverNeeded: unknown = null;
  private timer: NodeJS.Timeout | null = null;
  private batchListeners: Array<(batches: OutboxBatch[]) => void> = [];
  private ackListeners: Array<(ids: string[]) => void> = [];
  private eventListeners: Array<(event: StoreEvent) => void> = [];

  constructor(private readonly options: StoreOptions) {
    this.now = options.now ?? Date.now;
    this.steadyNow = options.steadyNow ?? (() => performance.now());
    this.lastSteady = this.steadyNow();
    this.log = options.log;
    this.open();
  }

  /**
   * Opens (or recreates) the file and starts a new life: what a previous life left unbatched is
   * cut into batches of that life first, and encounters open at a crash are stored as closed.
   */
  private open(): void {
    const path = this.options.path;
    const now = this.now();
    const events: StoreEvent[] = [];
    const read = readLineage(path);
    const lineage = read !== null && 'unreadable' in read ? null : read;
    if (read !== null && 'unreadable' in read) {
      events.push({
        at: now, kind: 'lineage_unreadable',
        detail: `the lineage file ${lineagePath(path)} is unreadable (${read.unreadable}): whether this database is the one the unit last ran on cannot be told; a new life started, so no id repeats`,
      });
    }
    let salvaged: Salvage | null = null;
    if (existsSync(path)) {
      const problem = checkDatabaseFile(path);
      if (problem !== null) {
        const aside = setAside(path, now);
        salvaged = salvage(aside, LEGACY_LIFE);
        const n = salvaged.batches.reduce((s, b) => s + b.rows.length, 0) + salvaged.unbatched.length;
        events.push({
          at: now, kind: 'corrupt',
          detail: `database corrupt (${problem}); set aside as ${aside} for forensics; ${n} unacknowledged encounters salvaged` +
            (salvaged.unreadableBatches > 0 ? `, ${salvaged.unreadableBatches} unacknowledged batches unreadable` : '') + '; a new database and life started',
        });
      }
    } else if (lineage !== null) {
      events.push({ at: now, kind: 'lost', detail: `database ${lineage.database} is missing (deleted or lost); a new database and life started, so no id repeats` });
    }
    const created = !existsSync(path);
    // 1 KiB pages: a commit touches a dozen pages (appended rows, indexes, the checkpoint), and
    // each costs a page of WAL on the SD card, so small pages mean fewer bytes written.
    this.db = openDatabase(path, 1024);
    // 2 MiB of page cache (better-sqlite3's default is 16): appends need few pages, and a Pi
    // has 1 GB for everything; pulls stream through the cache instead of filling it.
    this.db.pragma('cache_size = -2048');
    // Checkpoints of the WAL into the file write each page once however often it changed
    // since the last: fewer, larger ones spare the card (the WAL grows to about 4 MiB).
    this.db.pragma('wal_autocheckpoint = 4000');
    const migrated = migrate(this.db, MIGRATIONS, { deferBreaking: this.options.deferBreakingMigrations });
    if (migrated.deferred > 0) this.log?.warn({ deferred: migrated.deferred }, 'schema migrations held back until this release is committed (the release it would roll back to could not run on them)');
    if (migrated.newerKept) this.log?.warn({ schema: migrated.version, known: MIGRATIONS.length }, 'the database was migrated by a newer release; running on it (its newer migrations keep older releases running)');
    const db = this.db;
    this.stmt = prepareStatements(db);
    const missingMeta = Object.keys(META_DEFAULTS).filter((k) => this.stmt.meta.get(k) === undefined);
    let databaseId = this.db.prepare(`SELECT value FROM meta WHERE key = 'database'`).pluck().get() as string | undefined;
    const knownLives = new Set((db.prepare('SELECT life FROM lives').pluck().all() as string[]));
    if (lineage !== null && !created) {
      if (databaseId === undefined) {
        events.push({ at: now, kind: 'rolled_back', detail: `the database holds nothing of ${lineage.database}, which the unit last ran on (its WAL lost?); a new life started, so no id repeats` });
      } else if (lineage.database !== databaseId) {
        events.push({ at: now, kind: 'replaced', detail: `the database file was replaced: it is ${databaseId}, the unit last ran on ${lineage.database}; a new life started, so no id repeats` });
      } else if (!knownLives.has(lineage.life)) {
        events.push({ at: now, kind: 'rolled_back', detail: `the database was rolled back (restored from a copy, or its WAL lost): it lacks life ${lineage.life}, the latest; a new life started, so no id repeats` });
      }
    }
    const life = ulid(now);
    db.transaction(() => {
      if (databaseId === undefined) {
        databaseId = ulid(now);
        db.prepare(`INSERT INTO meta VALUES ('database', ?)`).run(databaseId);
      }
      if (missingMeta.length > 0 && !created) {
        events.push({ at: now, kind: 'meta_rebuilt', detail: `meta rows ${missingMeta.join(', ')} were missing; rebuilt from the stored encounters and batches` });
      }
      for (const key of missingMeta) {
        const value = key === 'purged_through'
          ? Math.max((this.stmt.maxId.get() as number | null) ?? 0, (this.stmt.maxBatched.get() as number | null) ?? 0)
          : META_DEFAULTS[key];
        db.prepare('INSERT OR REPLACE INTO meta VALUES (?, ?)').run(key, value);
      }
      if (salvaged) this.insertSalvage(salvaged, now);
      this.loadState();
      if (this.written.lives.length === 0 && this.unbatched > 0) {
        this.written.lives.push({ life: LEGACY_LIFE, firstId: 1, nextSeq: 1 });
        this.stmt.insertLife.run(LEGACY_LIFE, 1, 1, now, 'upgrade');
      }
      // Leftovers of earlier lives go out as batches of their own life, now: a restart must not
      // hold back a partial batch (its age would start again from zero).
      this.outboxList.push(...this.cutDue(now, true));
      this.written.lives.push({ life, firstId: this.written.lastId + 1, nextSeq: 1 });
      const reason = events.length > 0 ? events[events.length - 1].kind : created ? 'new database' : 'start';
      this.stmt.insertLife.run(life, this.written.lastId + 1, 1, now, reason);
      const open = this.stmt.checkpoint.get() as Buffer | undefined;
      if (open !== undefined) {
        const restored = decodeOpenState(open, (ref) => this.stmt.openId.get(ref) as { protocol: number; temp_id: Buffer; metadata: Buffer } | undefined)
          .map((e) => ({ ...e, closeReason: 'shutdown' as const }));
        this.insertEncounters(restored);
        this.counters.restoredOpen += restored.length;
      }
      this.stmt.clearCheckpoint.run();
      this.stmt.clearOpenIds.run();
      for (const e of events) this.stmt.insertEvent.run(e.at, e.kind, e.detail);
    })();
    writeLineage(path, { database: databaseId!, life });
    const lastEvent = (this.stmt.lastEvent.get() as StoreEvent | undefined) ?? null;
    this.state = { database: databaseId!, life, lifeStartedAt: now, lives: this.written.lives.length, serviceS: Math.floor(this.serviceMs / 1000), lastEvent, error: null };
    for (const e of events) {
      this.log?.error({ kind: e.kind, detail: e.detail }, 'database problem found and handled');
      for (const l of this.eventListeners) l(e);
    }
    if (this.counters.restoredOpen > 0) this.log?.info({ restored: this.counters.restoredOpen }, 'encounters open at the last crash restored from the checkpoint');
  }

  private loadState(): void {
    const purgedThrough = this.stmt.meta.get('purged_through') as number;
    const maxBatched = (this.stmt.maxBatched.get() as number | null) ?? 0;
    this.written.lastId = Math.max((this.stmt.maxId.get() as number | null) ?? 0, purgedThrough, maxBatched);
    this.written.batchedThrough = Math.max(maxBatched, purgedThrough);
    this.serviceMs = Math.max(this.stmt.meta.get('service_ms') as number, (this.stmt.maxService.get() as number | null) ?? 0);
    this.serviceWrittenAt = this.serviceMs;
    this.written.lives = this.stmt.lives.all() as Life[];
    // next_seq is written when a life starts; the batches say how far it got since.
    const cut = new Map((this.stmt.maxSeq.all() as Array<{ life: string; seq: number }>).map((r) => [r.life, r.seq]));
    for (const l of this.written.lives) l.nextSeq = Math.max(l.nextSeq, (cut.get(l.life) ?? 0) + 1);
    // The outbox lives in memory too: the uplink asks for it every second.
    this.outboxList = this.stmt.outboxAll.all() as OutboxBatch[];
    this.openRefs = new Map();
    this.written.openIdsRows = 0;
    this.lastCheckpoint = null;
    this.written.oldestUnbatchedAt = this.written.lastId > this.written.batchedThrough ? this.steadyNow() : null;
  }

  /** Writes what was read back from a corrupt file: batches keep their ids, the rest gets a life of its own. */
  private insertSalvage(s: Salvage, now: number): void {
    const copy = (r: EncounterRowValues) =>
      this.stmt.insert.run(r.id, r.protocol, r.temp_id, r.metadata, r.first_seen, r.last_seen, r.count, r.rssi_min, r.rssi_max, r.rssi_sum, r.rssi_count,
        r.bucket_s ?? bucketSecondsBlob(JSON.parse(String(r.bucket_ms)) as number[]), r.clock_synced);
    const lives = new Map<string, Life>();
    for (const { batch, rows } of s.batches) {
      for (const r of rows) copy(r);
      const summary = this.stmt.batchSummary.get(batch.firstId, batch.lastId) as { firstSeen: number; lastSeen: number; synced: number };
      this.stmt.insertBatch.run(batch.id, batch.life, batch.seq, batch.firstId, batch.lastId, batch.createdAt, 0, summary.firstSeen, summary.lastSeen, summary.synced);
      const l = lives.get(batch.life);
      if (!l) lives.set(batch.life, { life: batch.life, firstId: batch.firstId, nextSeq: batch.seq + 1 });
      else l.nextSeq = Math.max(l.nextSeq, batch.seq + 1);
      this.counters.salvagedEncounters += rows.length;
    }
    for (const l of lives.values()) this.stmt.insertLife.run(l.life, l.firstId, l.nextSeq, now, 'salvaged');
    if (s.unbatched.length > 0) {
      // Their life's next seq may not have survived: a fresh life cannot collide.
      this.stmt.insertLife.run(ulid(now), s.unbatched[0].id, 1, now, 'salvaged');
      for (const r of s.unbatched) copy(r);
      this.counters.salvagedEncounters += s.unbatched.length;
    }
  }

  /** Starts the commit timer; a failed commit (disk full, I/O error) is retried next tick. */
  start(onError: (err: unknown) => void): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      try {
        this.commit();
      } catch (err) {
        onError(err);
      }
    }, this.options.commitIntervalMs);
  }

  onBatches(listener: (batches: OutboxBatch[]) => void): void {
    this.batchListeners.push(listener);
  }

  onAcked(listener: (ids: string[]) => void): void {
    this.ackListeners.push(listener);
  }

  /** Database events (corruption, loss, ...) as they are found and handled. */
  onEvent(listener: (event: StoreEvent) => void): void {
    this.eventListeners.push(listener);
  }

  /** Queues closed encounters for the next commit. */
  addEncounters(encounters: ClosedEncounter[]): void {
    for (const e of encounters) this.pendingEncounters.push(e);
    const excess = this.pendingEncounters.length - this.options.maxPendingEncounters;
    if (excess > 0) {
      this.pendingEncounters.splice(0, excess);
      this.counters.droppedDiskFull += excess;
    }
  }

  /** Queues a backend acknowledgement; returns false for a batch this store never cut. */
  addAck(batchId: string): boolean {
    const known = this.read(false, () => this.stmt.batch.get(batchId) !== undefined);
    if (!known) {
      this.counters.acksUnknown++;
      return false;
    }
    this.pendingAcks.add(batchId);
    return true;
  }

  get pendingCount(): number {
    return this.pendingEncounters.length;
  }

  private get unbatched(): number {
    return this.written.lastId - this.written.batchedThrough;
  }

  /**
   * Runs one write transaction with everything queued; a no-op when there is nothing to do.
   * `cutAll` cuts every stored encounter into batches now, however few (a clean stop sends them).
   */
  commit({ cutAll = false } = {}): void {
    if (this.recoverNeeded !== null) this.recover();
    const now = this.now();
    const steady = this.steadyNow();
    if (steady > this.lastSteady) this.serviceMs += steady - this.lastSteady;
    this.lastSteady = steady;
    const encounters = this.pendingEncounters;
    const acks = [...this.pendingAcks];
    const open = this.options.openEncounters ? [...this.options.openEncounters()] : [];
    const keys = open.map(openKey);
    // Unchanged open encounters (a quiet night) need no new checkpoint.
    const signature = Buffer.from(cborEncode([keys.join(''), open.map((e) => [e.firstSeen, e.lastSeen, e.count])]));
    const checkpointChanged = !(this.lastCheckpoint?.equals(signature) ?? false);
    const cutDue = this.written.oldestUnbatchedAt !== null && (cutAll || steady - this.written.oldestUnbatchedAt >= this.options.batchMaxAgeMs);
    const purgeDue = steady >= this.nextPurgeCheck;
    const serviceDue = this.serviceMs - this.serviceWrittenAt >= SERVICE_WRITE_MS;
    if (encounters.length === 0 && acks.length === 0 && !cutDue && !purgeDue && !checkpointChanged && !serviceDue) return;
    const before = copyWritten(this.written);
    let cut: OutboxBatch[] = [];
    let acked: string[] = [];
    let purged = { encounters: 0, unacked: 0, batches: 0, more: false, ids: [] as string[] };
    let lossEvent = null as StoreEvent | null; // set inside the transaction
    let refs = this.openRefs;
    try {
      this.db.transaction(() => {
        this.insertEncounters(encounters);
        acked = acks.filter((id) => this.stmt.ack.run(now, id).changes === 1);
        cut = this.cutDue(now, cutAll);
        if (purgeDue) purged = deleteExpired({ stmt: this.stmt, options: this.options, serviceMs: this.serviceMs }, now);
        if (purged.unacked > 0) {
          lossEvent = {
            at: now, kind: 'unacked_purged',
            detail: `${purged.unacked} encounters were never acknowledged within ${Math.round(this.options.unackedMaxMs / 86_400_000)} days of service (store.unackedMaxDays) and were deleted: check the broker and the collector`,
          };
          this.stmt.insertEvent.run(lossEvent.at, lossEvent.kind, lossEvent.detail);
        }
        if (checkpointChanged) refs = this.writeCheckpoint(open, keys, now);
        if (cut.length === 0 && serviceDue) this.stmt.setMeta.run(Math.round(this.serviceMs), 'service_ms');
      })();
    } catch (err) {
      // SQLITE_FULL, I/O errors: the transaction rolled back; everything stays queued.
      this.written = before;
      this.counters.commitFailures++;
      this.state.error = `commit failed: ${(err as Error).message}`;
      if (isCorruption(err)) this.recoverNeeded = err;
      throw err;
    } finally {
      this.counters.writeTransactions++;
    }
    this.state.error = null;
    if (checkpointChanged) {
      this.lastCheckpoint = signature;
      this.openRefs = refs;
    }
    if (cut.length > 0 || serviceDue) this.serviceWrittenAt = this.serviceMs; // batches carry it too
    if (purgeDue) this.nextPurgeCheck = purged.more ? steady : steady + PURGE_CHECK_MS;
    const gone = new Set([...acked, ...purged.ids]);
    this.outboxList = [...this.outboxList.filter((b) => !gone.has(b.id)), ...cut];
    this.pendingEncounters = [];
    for (const id of [...acks, ...purged.ids]) this.pendingAcks.delete(id);
    this.counters.encountersStored += encounters.length;
    this.counters.batchesAcked += acked.length;
    this.counters.batchesCut += cut.length;
    this.counters.purgedEncounters += purged.encounters;
    this.state.serviceS = Math.floor(this.serviceMs / 1000);
    if (lossEvent) {
      this.counters.purgedUnacked += purged.unacked;
      this.log?.error({ encounters: purged.unacked, batches: purged.batches }, lossEvent.detail);
      this.state.lastEvent = lossEvent;
      for (const l of this.eventListeners) l(lossEvent);
    }
    if (this.log?.isLevelEnabled('debug')) {
      this.log.debug({ encounters: encounters.length, acked: acked.length, cut: cut.length, purged: purged.batches, checkpoint: checkpointChanged }, 'committed');
    }
    if (cut.length > 0) for (const l of this.batchListeners) l(cut);
    if (acked.length > 0) for (const l of this.ackListeners) l(acked);
  }

  /** Writes the checkpoint of open encounters; returns the temp-ID references now in use. */
  private writeCheckpoint(open: Encounter[], keys: string[], now: number): Map<string, number> {
    const refs = new Map<string, number>();
    let known = this.openRefs;
    // Rows no open encounter refers to any more are dropped by emptying the table and writing
    // the live ones again, once the dead outnumber them: SQLite frees a whole table's pages
    // without writing them, where deleting rows rewrites every page they sat on.
    if (open.length === 0 || this.written.openIdsRows > OPEN_IDS_COMPACT_ROWS + open.length) {
      if (this.written.openIdsRows > 0) this.stmt.clearOpenIds.run();
      this.written.openIdsRows = 0;
      known = new Map();
    }
    if (open.length === 0) {
      this.stmt.clearCheckpoint.run();
      return refs;
    }
    const list = open.map((e, i) => {
      let ref = refs.get(keys[i]) ?? known.get(keys[i]);
      if (ref === undefined) {
        ref = Number(this.stmt.insertOpenId.run(e.protocol, e.tempId, e.metadata).lastInsertRowid);
        this.written.openIdsRows++;
      }
      refs.set(keys[i], ref);
      return ref;
    });
    this.stmt.setCheckpoint.run(now, encodeOpenState(list, open, now));
    return refs;
  }

  private insertEncounters(encounters: Encounter[]): void {
    for (const e of encounters) {
      this.stmt.insert.run(
        ++this.written.lastId, e.protocol, e.tempId, e.metadata, e.firstSeen, e.lastSeen, e.count,
        e.rssiMin, e.rssiMax, e.rssiSum, e.rssiCount, bucketSecondsBlob(e.bucketMs), e.clockSynced ? 1 : 0,
      );
    }
    if (encounters.length > 0 && this.written.oldestUnbatchedAt === null) this.written.oldestUnbatchedAt = this.steadyNow();
  }

  private cutDue(now: number, all: boolean): OutboxBatch[] {
    return cutBatches({ stmt: this.stmt, written: this.written, options: this.options, serviceMs: this.serviceMs, steady: this.steadyNow() }, now, all);
  }

  private lifeOf(id: number): string {
    return this.written.lives.length === 0 ? LEGACY_LIFE : this.written.lives[lifeIndex(this.written.lives, id)].life;
  }

  /**
   * Runs a read; a SQLite error never escapes (it is counted and shown in the status), and a
   * corrupt file is replaced at the next commit.
   */
  private read<T>(fallback: T, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      this.counters.readErrors++;
      this.state.error = `read failed: ${(err as Error).message}`;
      if (isCorruption(err)) this.recoverNeeded = err;
      this.log?.error({ err: (err as Error).message }, 'database read failed');
      return fallback;
    }
  }

  /** The file turned out corrupt while running: set it aside and carry on in a new one. */
  private recover(): void {
    const cause = this.recoverNeeded;
    this.recoverNeeded = null;
    try {
      this.db.close();
    } catch {
      /* damaged */
    }
    this.pendingAcks.clear();
    this.log?.error({ err: (cause as Error).message }, 'database found corrupt while running; setting it aside');
    try {
      this.open();
    } catch (err) {
      this.recoverNeeded = cause; // tried again at the next commit
      throw err;
    }
  }

  /** Batches cut but not acknowledged (nor with an ack waiting for the commit), oldest first. */
  outbox(): OutboxBatch[] {
    return this.outboxList.filter((b) => !this.pendingAcks.has(b.id));
  }

  batchEncounters(batchId: string): StoredEncounter[] {
    return this.read([], () => {
      const b = this.stmt.batch.get(batchId) as { firstId: number; lastId: number; life: string } | undefined;
      if (!b) return [];
      return (this.stmt.encounterRange.all(b.firstId, b.lastId) as EncounterColumns[]).map((r) => encounterFromColumns(r, b.life));
    });
  }

  /** Encounters overlapping [from, to) that are still stored (all at once: for small ranges and tests). */
  encountersInRange(from: number, to: number): StoredEncounter[] {
    const plan = this.pullPlan(from, to);
    return plan.ranges.flatMap((r) => this.readRange(r.firstId, r.lastId, from, to));
  }

  /**
   * Where the encounters overlapping [from, to) can be, without reading them: the id ranges of
   * the batches whose span overlaps it, then the encounters not batched yet. `upperBound` is
   * how many encounters those ranges can hold (what a pull is refused on before reading): every
   * encounter of an overlapping batch, and of the unbatched ones (fewer than a batch) only those
   * that overlap. The range applies to the wire's whole seconds (pullBounds).
   */
  pullPlan(from: number, to: number): { ranges: Array<{ firstId: number; lastId: number }>; upperBound: number } {
    const { lastSeenAbove, firstSeenBelow } = pullBounds(from, to);
    return this.read({ ranges: [], upperBound: 0 }, () => {
      const ranges = this.stmt.pullBatches.all(lastSeenAbove, firstSeenBelow) as Array<{ firstId: number; lastId: number }>;
      let upperBound = ranges.reduce((n, r) => n + r.lastId - r.firstId + 1, 0);
      if (this.written.lastId > this.written.batchedThrough) {
        const unbatched = { firstId: this.written.batchedThrough + 1, lastId: this.written.lastId };
        const overlapping = this.stmt.countInTime.get(unbatched.firstId, unbatched.lastId, lastSeenAbove, firstSeenBelow) as number;
        if (overlapping > 0) {
          ranges.push(unbatched);
          upperBound += overlapping;
        }
      }
      return { ranges, upperBound };
    });
  }

  /** The encounters of ids [firstId, lastId] overlapping [from, to) on the wire's whole seconds, with their life. */
  readRange(firstId: number, lastId: number, from: number, to: number): StoredEncounter[] {
    const { lastSeenAbove, firstSeenBelow } = pullBounds(from, to);
    return this.read([], () =>
      (this.stmt.rangeInTime.all(firstId, lastId, lastSeenAbove, firstSeenBelow) as EncounterColumns[]).map((r) => encounterFromColumns(r, this.lifeOf(r.id))),
    );
  }

  get database(): DatabaseState {
    return { ...this.state, lives: this.written.lives.length };
  }

  stats(): StoreBacklog {
    return {
      unbatched: this.unbatched,
      outboxBatches: this.outboxList.length,
      lastAckAt: this.read(null, () => (this.stmt.lastAck.get() as number | null) ?? null),
      pending: this.pendingEncounters.length,
    };
  }

  /** Copies the WAL into the database file now (SQLite does it on its own every few MiB). */
  checkpointWal(): void {
    this.db.pragma('wal_checkpoint(TRUNCATE)');
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
