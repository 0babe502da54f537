// The gateway's SQLite store. All writes go through one commit every `commitIntervalMs`: SD
// cards wear out from small writes. Each commit also checkpoints the encounters still open, so
// a crash or power cut loses at most one interval of sightings.
//
// Ids never mean two encounters: a new life (a ULID sent in every batch) starts at every open,
// and encounter ids and seq are unique per life. Retention never deletes an unacknowledged
// encounter because of the wall clock; it measures age in service time (time spent running)
// wherever the wall clock cannot be trusted.
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { decode as cborDecode, encode as cborEncode } from 'cbor-x';
import { ulid } from 'ulid';
import { bucketSeconds, pullBounds, type ClosedEncounter, type Encounter, type StoredEncounter } from '../../core/encounters/index.js';
import type { DatabaseState, StoreBacklog, StoreCounters } from '../../core/wire/status.js';
import type { Logger } from '../../core/log/index.js';
import {
  checkDatabaseFile, EncounterRowValues, isCorruption, readLineage, Salvage, salvage, setAside, StoreEvent, writeLineage,
} from './recovery.js';
import { LEGACY_LIFE } from '../../core/wire/index.js';
import { migrate, openDatabase } from '../../core/sqlite/index.js';
import { MIGRATIONS } from './schema.js';

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
  log?: Logger;
}

export interface OutboxBatch {
  id: string;
  life: string;
  seq: number;
  createdAt: number;
  encounterCount: number;
}

export type { DatabaseState, StoreCounters };

interface Life {
  life: string;
  firstId: number;
  nextSeq: number;
}

/** An encounter as its table's columns hold it. */
export interface EncounterColumns {
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
  /** Whole seconds per attenuation bucket (see bucketSecondsBlob). */
  bucket_s: Buffer | string;
  clock_synced: number;
}

const META_DEFAULTS: Record<string, number> = { purged_through: 0, service_ms: 0 };

/**
 * Bucket times as stored: whole seconds, as the wire sends them, as a CBOR array (about 6
 * bytes for 4 buckets, where JSON text took 12; every byte of a row is written about twice on
 * the SD card, to the WAL and then into the file).
 */
const bucketSecondsBlob = (bucketMs: number[]): Buffer => cborEncode(bucketSeconds(bucketMs));

/** Bucket milliseconds from a stored row: a CBOR blob, or JSON text in rows written before it. */
function bucketMsFromRow(stored: Buffer | string): number[] {
  const seconds = (typeof stored === 'string' ? JSON.parse(stored) : cborDecode(stored)) as number[];
  return seconds.map((s) => s * 1000);
}

/** The one reading of the gateway's encounter columns (the store, `vgw export`, `vgw match`). */
export function encounterFromColumns(r: EncounterColumns, life: string): StoredEncounter {
  return {
    id: r.id,
    life,
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
    bucketMs: bucketMsFromRow(r.bucket_s),
    clockSynced: r.clock_synced === 1,
  };
}

/**
 * The checkpoint of open encounters is rewritten with every commit, so it holds only what
 * changes, as small as the wire keeps it: each encounter's reference to its temp ID (in
 * `open_ids`, written once) and its numbers, column by column, deflated. Times and bucket
 * seconds are whole seconds (first seen rounded down, last seen up), as the wire sends them:
 * a restored encounter goes out exactly as it would have.
 */
const OPEN_COLUMNS = 9;

/**
 * Columns chosen to be small and alike: seconds since last heard (0 for a phone still there),
 * duration, adverts, strongest RSSI, spread, RSSI sum, adverts without RSSI, the clock flag,
 * and per bucket its seconds with the last one sent as its difference from the duration.
 */
function openColumns(open: Encounter[], now: number): number[][] {
  const cols: number[][] = Array.from({ length: OPEN_COLUMNS }, () => []);
  const nowS = Math.ceil(now / 1000);
  for (const e of open) {
    const firstS = Math.floor(e.firstSeen / 1000);
    const lastS = Math.max(firstS, Math.ceil(e.lastSeen / 1000));
    cols[0].push(nowS - lastS);
    cols[1].push(lastS - firstS);
    cols[2].push(e.count);
    cols[3].push(e.rssiMax);
    cols[4].push(e.rssiMax - e.rssiMin);
    cols[5].push(e.rssiSum);
    cols[6].push(e.count - e.rssiCount);
    cols[7].push(e.clockSynced ? 1 : 0);
    const seconds = bucketSeconds(e.bucketMs);
    let sum = 0;
    for (let i = 0; i < seconds.length - 1; i++) {
      cols[8].push(seconds[i]);
      sum += seconds[i];
    }
    if (seconds.length > 0) cols[8].push(lastS - firstS - sum - seconds[seconds.length - 1]);
  }
  return cols;
}

function encodeOpenState(refs: number[], open: Encounter[], now: number): Buffer {
  let prev = 0;
  const deltas = refs.map((r) => {
    const d = r - prev;
    prev = r;
    return d;
  });
  const buckets = open[0]?.bucketMs.length ?? 0;
  return deflateRawSync(Buffer.from(cborEncode([4, Math.ceil(now / 1000), buckets, deltas, openColumns(open, now)])), { level: 9 });
}

function decodeOpenState(data: Buffer, idOf: (ref: number) => { protocol: number; temp_id: Buffer; metadata: Buffer } | undefined): Encounter[] {
  const [version, nowS, buckets, deltas, cols] = cborDecode(inflateRawSync(data)) as [number, number, number, number[], number[][]];
  if (version !== 4) throw new Error(`open_checkpoint: unknown version ${version}`);
  const out: Encounter[] = [];
  let ref = 0;
  deltas.forEach((d, i) => {
    ref += d;
    const id = idOf(ref);
    if (!id) return; // only a damaged file could lose it: skip, never invent
    const lastS = nowS - cols[0][i];
    const duration = cols[1][i];
    const seconds = cols[8].slice(i * buckets, (i + 1) * buckets);
    if (buckets > 0) seconds[buckets - 1] = duration - seconds.slice(0, buckets - 1).reduce((x, y) => x + y, 0) - seconds[buckets - 1];
    out.push({
      protocol: id.protocol, tempId: id.temp_id, metadata: id.metadata, firstSeen: (lastS - duration) * 1000, lastSeen: lastS * 1000,
      count: cols[2][i], rssiMax: cols[3][i], rssiMin: cols[3][i] - cols[4][i], rssiSum: cols[5][i], rssiCount: cols[2][i] - cols[6][i],
      clockSynced: cols[7][i] === 1, bucketMs: seconds.map((x) => x * 1000),
    });
  });
  return out;
}

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
  private stmt!: ReturnType<Store['prepare']>;
  private readonly now: () => number;
  private readonly steadyNow: () => number;
  private readonly log: Logger | undefined;
  private pendingEncounters: ClosedEncounter[] = [];
  private pendingAcks = new Set<string>();
  /** Highest encounter id written; ids are contiguous from here on. */
  private lastId = 0;
  /** Highest encounter id inside a batch: everything above waits for a batch. */
  private batchedThrough = 0;
  private oldestUnbatchedAt: number | null = null;
  private lives: Life[] = [];
  private serviceMs = 0;
  private lastSteady: number;
  private nextPurgeCheck = 0;
  /** What the last checkpoint held, to skip writing an unchanged one. */
  private lastCheckpoint: Buffer | null = null;
  /** Open encounters whose temp ID is in `open_ids` already: key → ref. */
  private openRefs = new Map<string, number>();
  private outboxList: OutboxBatch[] = [];
  private serviceWrittenAt = 0;
  /** Rows in `open_ids`, the live ones (referred to by open encounters) and the dead. */
  private openIdsRows = 0;
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
    const lineage = readLineage(path);
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
    migrate(this.db, MIGRATIONS);
    const db = this.db;
    this.stmt = this.prepare(db);
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
      if (this.lives.length === 0 && this.unbatched > 0) {
        this.lives.push({ life: LEGACY_LIFE, firstId: 1, nextSeq: 1 });
        this.stmt.insertLife.run(LEGACY_LIFE, 1, 1, now, 'upgrade');
      }
      // Leftovers of earlier lives go out as batches of their own life, now: a restart must not
      // hold back a partial batch (its age would start again from zero).
      this.outboxList.push(...this.cutBatches(now, true));
      this.lives.push({ life, firstId: this.lastId + 1, nextSeq: 1 });
      const reason = events.length > 0 ? events[events.length - 1].kind : created ? 'new database' : 'start';
      this.stmt.insertLife.run(life, this.lastId + 1, 1, now, reason);
      const open = this.stmt.checkpoint.get() as Buffer | undefined;
      if (open !== undefined) {
        const restored = decodeOpenState(open, (ref) => this.stmt.openId.get(ref) as { protocol: number; temp_id: Buffer; metadata: Buffer } | undefined)
          .map((e) => ({ ...e, closeReason: 'shutdown' as const }));
        this.insertEncounters(restored, now);
        this.counters.restoredOpen += restored.length;
      }
      this.stmt.clearCheckpoint.run();
      this.stmt.clearOpenIds.run();
      for (const e of events) this.stmt.insertEvent.run(e.at, e.kind, e.detail);
    })();
    writeLineage(path, { database: databaseId!, life });
    const lastEvent = (this.stmt.lastEvent.get() as StoreEvent | undefined) ?? null;
    this.state = { database: databaseId!, life, lifeStartedAt: now, lives: this.lives.length, serviceS: Math.floor(this.serviceMs / 1000), lastEvent, error: null };
    for (const e of events) {
      this.log?.error({ kind: e.kind, detail: e.detail }, 'database problem found and handled');
      for (const l of this.eventListeners) l(e);
    }
    if (this.counters.restoredOpen > 0) this.log?.info({ restored: this.counters.restoredOpen }, 'encounters open at the last crash restored from the checkpoint');
  }

  private prepare(db: Database.Database) {
    return {
      insert: db.prepare(
        `INSERT INTO encounters (id, protocol, temp_id, metadata, first_seen, last_seen, count,
           rssi_min, rssi_max, rssi_sum, rssi_count, bucket_s, clock_synced) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
      ),
      meta: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      setMeta: db.prepare('UPDATE meta SET value = ? WHERE key = ?'),
      insertLife: db.prepare('INSERT INTO lives (life, first_id, next_seq, started_at, reason) VALUES (?,?,?,?,?)'),
      lives: db.prepare('SELECT life, first_id AS firstId, next_seq AS nextSeq FROM lives ORDER BY first_id, rowid'),
      insertBatch: db.prepare(
        `INSERT INTO batches (id, life, seq, first_id, last_id, created_at, created_service, first_seen_min, last_seen_max, all_synced)
         VALUES (?,?,?,?,?,?,?,?,?,?)`,
      ),
      batchSummary: db.prepare('SELECT min(first_seen) AS firstSeen, max(last_seen) AS lastSeen, min(clock_synced) AS synced FROM encounters WHERE id BETWEEN ? AND ?'),
      pullBatches: db.prepare(
        `SELECT first_id AS firstId, last_id AS lastId FROM batches
         WHERE last_seen_max > ? AND first_seen_min < ? ORDER BY first_id`,
      ),
      rangeInTime: db.prepare('SELECT * FROM encounters WHERE id BETWEEN ? AND ? AND last_seen > ? AND first_seen < ? ORDER BY id'),
      countInTime: db.prepare('SELECT count(*) FROM encounters WHERE id BETWEEN ? AND ? AND last_seen > ? AND first_seen < ?').pluck(),
      ack: db.prepare('UPDATE batches SET acked_at = ? WHERE id = ? AND acked_at IS NULL'),
      batch: db.prepare('SELECT first_id AS firstId, last_id AS lastId, life FROM batches WHERE id = ?'),
      encounterRange: db.prepare('SELECT * FROM encounters WHERE id BETWEEN ? AND ? ORDER BY id'),
      expired: db.prepare(
        `SELECT id, first_id AS firstId, last_id AS lastId, acked_at IS NULL AS unacked FROM batches
         WHERE (acked_at IS NOT NULL AND ((? = 1 AND all_synced = 1 AND last_seen_max < ?) OR created_service < ?))
            OR (acked_at IS NULL AND created_service < ?)
         ORDER BY first_id LIMIT ?`,
      ),
      deleteRange: db.prepare('DELETE FROM encounters WHERE id BETWEEN ? AND ?'),
      deleteBatch: db.prepare('DELETE FROM batches WHERE id = ?'),
      maxId: db.prepare('SELECT max(id) FROM encounters').pluck(),
      maxBatched: db.prepare('SELECT max(last_id) FROM batches').pluck(),
      lastAck: db.prepare('SELECT max(acked_at) FROM batches').pluck(),
      checkpoint: db.prepare('SELECT data FROM open_checkpoint WHERE id = 1').pluck(),
      setCheckpoint: db.prepare('INSERT OR REPLACE INTO open_checkpoint (id, taken_at, data) VALUES (1, ?, ?)'),
      clearCheckpoint: db.prepare('DELETE FROM open_checkpoint'),
      insertOpenId: db.prepare('INSERT INTO open_ids (protocol, temp_id, metadata) VALUES (?,?,?)'),
      openId: db.prepare('SELECT protocol, temp_id, metadata FROM open_ids WHERE ref = ?'),
      clearOpenIds: db.prepare('DELETE FROM open_ids'),
      maxSeq: db.prepare('SELECT life, max(seq) AS seq FROM batches GROUP BY life'),
      maxService: db.prepare('SELECT max(created_service) FROM batches').pluck(),
      outboxAll: db.prepare(
        `SELECT id, life, seq, created_at AS createdAt, last_id - first_id + 1 AS encounterCount
         FROM batches WHERE acked_at IS NULL ORDER BY first_id`,
      ),
      insertEvent: db.prepare('INSERT INTO events (at, kind, detail) VALUES (?,?,?)'),
      lastEvent: db.prepare('SELECT at, kind, detail FROM events ORDER BY rowid DESC LIMIT 1'),
    };
  }

  private loadState(): void {
    const purgedThrough = this.stmt.meta.get('purged_through') as number;
    const maxBatched = (this.stmt.maxBatched.get() as number | null) ?? 0;
    this.lastId = Math.max((this.stmt.maxId.get() as number | null) ?? 0, purgedThrough, maxBatched);
    this.batchedThrough = Math.max(maxBatched, purgedThrough);
    this.serviceMs = Math.max(this.stmt.meta.get('service_ms') as number, (this.stmt.maxService.get() as number | null) ?? 0);
    this.serviceWrittenAt = this.serviceMs;
    this.lives = this.stmt.lives.all() as Life[];
    // next_seq is written when a life starts; the batches say how far it got since.
    const cut = new Map((this.stmt.maxSeq.all() as Array<{ life: string; seq: number }>).map((r) => [r.life, r.seq]));
    for (const l of this.lives) l.nextSeq = Math.max(l.nextSeq, (cut.get(l.life) ?? 0) + 1);
    // The outbox lives in memory too: the uplink asks for it every second.
    this.outboxList = this.stmt.outboxAll.all() as OutboxBatch[];
    this.openRefs = new Map();
    this.openIdsRows = 0;
    this.lastCheckpoint = null;
    this.oldestUnbatchedAt = this.lastId > this.batchedThrough ? this.now() : null;
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
    return this.lastId - this.batchedThrough;
  }

  /** Runs one write transaction with everything queued; a no-op when there is nothing to do. */
  commit(): void {
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
    const cutDue = this.oldestUnbatchedAt !== null && now - this.oldestUnbatchedAt >= this.options.batchMaxAgeMs;
    const purgeDue = steady >= this.nextPurgeCheck;
    const serviceDue = this.serviceMs - this.serviceWrittenAt >= SERVICE_WRITE_MS;
    if (encounters.length === 0 && acks.length === 0 && !cutDue && !purgeDue && !checkpointChanged && !serviceDue) return;
    const before = {
      lastId: this.lastId, batchedThrough: this.batchedThrough, oldestUnbatchedAt: this.oldestUnbatchedAt,
      lives: this.lives.map((l) => ({ ...l })), openIdsRows: this.openIdsRows,
    };
    let cut: OutboxBatch[] = [];
    let acked: string[] = [];
    let purged = { encounters: 0, unacked: 0, batches: 0, more: false, ids: [] as string[] };
    let lossEvent = null as StoreEvent | null; // set inside the transaction
    let refs = this.openRefs;
    try {
      this.db.transaction(() => {
        this.insertEncounters(encounters, now);
        acked = acks.filter((id) => this.stmt.ack.run(now, id).changes === 1);
        cut = this.cutBatches(now, false);
        if (purgeDue) purged = this.purge(now);
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
      Object.assign(this, before);
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
    if (open.length === 0 || this.openIdsRows > OPEN_IDS_COMPACT_ROWS + open.length) {
      if (this.openIdsRows > 0) this.stmt.clearOpenIds.run();
      this.openIdsRows = 0;
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
        this.openIdsRows++;
      }
      refs.set(keys[i], ref);
      return ref;
    });
    this.stmt.setCheckpoint.run(now, encodeOpenState(list, open, now));
    return refs;
  }

  private insertEncounters(encounters: Encounter[], now: number): void {
    for (const e of encounters) {
      this.stmt.insert.run(
        ++this.lastId, e.protocol, e.tempId, e.metadata, e.firstSeen, e.lastSeen, e.count,
        e.rssiMin, e.rssiMax, e.rssiSum, e.rssiCount, bucketSecondsBlob(e.bucketMs), e.clockSynced ? 1 : 0,
      );
    }
    if (encounters.length > 0 && this.oldestUnbatchedAt === null) this.oldestUnbatchedAt = now;
  }

  /** Index into `lives` of the life `id` belongs to: the latest to start at or below it. */
  private lifeIndex(id: number): number {
    let lo = 0;
    let hi = this.lives.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lives[mid].firstId <= id) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private lifeOf(id: number): string {
    return this.lives.length === 0 ? LEGACY_LIFE : this.lives[this.lifeIndex(id)].life;
  }

  /** Cuts due batches; a batch never spans two lives. `all` cuts everything waiting. */
  private cutBatches(now: number, all: boolean): OutboxBatch[] {
    const max = this.options.batchMaxEncounters;
    const ageDue = all || (this.oldestUnbatchedAt !== null && now - this.oldestUnbatchedAt >= this.options.batchMaxAgeMs);
    const cut: OutboxBatch[] = [];
    while (this.unbatched > 0) {
      const firstId = this.batchedThrough + 1;
      const index = this.lifeIndex(firstId);
      const life = this.lives[index];
      const lifeEnd = index + 1 < this.lives.length ? this.lives[index + 1].firstId - 1 : Infinity;
      const lastId = Math.min(this.lastId, this.batchedThrough + max, lifeEnd);
      const count = lastId - firstId + 1;
      if (count < max && lastId === this.lastId && !ageDue) break;
      const summary = this.stmt.batchSummary.get(firstId, lastId) as { firstSeen: number | null; lastSeen: number | null; synced: number | null };
      const batch: OutboxBatch = { id: ulid(now), life: life.life, seq: life.nextSeq, createdAt: now, encounterCount: count };
      this.stmt.insertBatch.run(batch.id, life.life, batch.seq, firstId, lastId, now, Math.round(this.serviceMs), summary.firstSeen ?? now, summary.lastSeen ?? now, summary.synced ?? 1);
      life.nextSeq++;
      this.batchedThrough = lastId;
      cut.push(batch);
    }
    if (this.unbatched === 0) this.oldestUnbatchedAt = null;
    else if (cut.length > 0 && ageDue) this.oldestUnbatchedAt = now;
    return cut;
  }

  /**
   * Deletes expired batches whole, up to about purgeBatchSize encounters. Acknowledged: once
   * `retentionMs` old by a synchronised clock (only if every sighting had one), or by service
   * time. Unacknowledged: only after `unackedMaxMs` of service time, which no clock step moves.
   */
  private purge(now: number): { encounters: number; unacked: number; batches: number; more: boolean; ids: string[] } {
    const synced = this.options.clockSynced?.() ?? true;
    const expired = this.stmt.expired.all(
      synced ? 1 : 0, now - this.options.retentionMs, this.serviceMs - this.options.retentionMs,
      this.serviceMs - this.options.unackedMaxMs, this.options.purgeBatchSize,
    ) as Array<{ id: string; firstId: number; lastId: number; unacked: number }>;
    const out = { encounters: 0, unacked: 0, batches: 0, more: false, ids: [] as string[] };
    let purgedThrough = this.stmt.meta.get('purged_through') as number;
    for (const b of expired) {
      if (out.encounters >= this.options.purgeBatchSize) {
        out.more = true;
        break;
      }
      const n = this.stmt.deleteRange.run(b.firstId, b.lastId).changes;
      this.stmt.deleteBatch.run(b.id);
      out.encounters += n;
      out.batches++;
      out.ids.push(b.id);
      if (b.unacked) out.unacked += n;
      purgedThrough = Math.max(purgedThrough, b.lastId);
    }
    if (expired.length === this.options.purgeBatchSize) out.more = true;
    if (out.batches > 0) this.stmt.setMeta.run(purgedThrough, 'purged_through');
    return out;
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
      if (this.lastId > this.batchedThrough) {
        const unbatched = { firstId: this.batchedThrough + 1, lastId: this.lastId };
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
    return { ...this.state, lives: this.lives.length };
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
