// The collector's SQLite database (the default): dedupes by batch id and by (gateway, life, encounter id), and
// commits batches that arrive together in one transaction. Usable on its own (tests, `vgw pull`).
import Database from 'better-sqlite3';
import { migrate, openDatabase, rowsWhereIn } from '../core/sqlite/index.js';
import type { VenueEncounter } from '../core/encounters/index.js';
import { Batch, LEGACY_LIFE } from '../core/wire/index.js';
import { HOUR_MS, type LifeRow, MAX_STATUS_BYTES, type StatusRow, type VenueHour } from './fleet.js';
import { type CollectedColumns, ENCOUNTER_COLUMNS, encounterFromCollected } from './encounter-row.js';
import { type ConfigLayer, ended, type LayerScope, type Rollout, supersede } from '../core/fleet/index.js';
import type { GatewayKeyRow } from '../core/trust/index.js';
import {
  type ArrivedBatch, type CollectorStore, DAY_MS, DEFAULT_BATCH_GRACE_DAYS, GATEWAY_KEY_COLUMNS, type EncounterFilter, type EncounterSource, type IngestResult, type PurgeReport,
  type RolloutRequest, type StoredRollout,
} from './store.js';


export const COLLECTOR_MIGRATIONS: readonly string[] = [
  `CREATE TABLE batches (
     id TEXT PRIMARY KEY,
     kind TEXT NOT NULL,
     gateway TEXT NOT NULL,
     venue TEXT NOT NULL,
     seq INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     received_at INTEGER NOT NULL,
     encounter_count INTEGER NOT NULL
   );
   CREATE TABLE encounters (
     gateway TEXT NOT NULL,
     id INTEGER NOT NULL,                  -- the gateway's encounter id: (gateway, id) is unique
     venue TEXT NOT NULL,
     protocol INTEGER NOT NULL,
     temp_id BLOB NOT NULL,
     metadata BLOB NOT NULL,
     first_seen INTEGER NOT NULL,
     last_seen INTEGER NOT NULL,
     count INTEGER NOT NULL,
     rssi_min INTEGER NOT NULL,
     rssi_max INTEGER NOT NULL,
     rssi_mean REAL NOT NULL,
     attenuation_s TEXT NOT NULL,
     clock_synced INTEGER NOT NULL,        -- 0: the gateway's clock was not synchronised
     batch_id TEXT NOT NULL,
     PRIMARY KEY (gateway, id)
   ) WITHOUT ROWID;
   CREATE INDEX encounters_time ON encounters(venue, first_seen);
   CREATE INDEX encounters_temp_id ON encounters(temp_id);
   CREATE TABLE gateways (
     gateway TEXT PRIMARY KEY,
     venue TEXT NOT NULL,
     last_seq INTEGER NOT NULL,
     seq_gaps INTEGER NOT NULL DEFAULT 0,
     last_seen_at INTEGER NOT NULL
   );`,
  // Signed batches: who signed (the raw public key) and the signature, kept as evidence; a
  // gateway's sequence numbers are unique per signing key.
  `ALTER TABLE batches ADD COLUMN signer BLOB;
   ALTER TABLE batches ADD COLUMN sig BLOB;
   CREATE UNIQUE INDEX batches_sequence ON batches(gateway, signer, seq) WHERE kind = 'batch' AND signer IS NOT NULL;`,
  // Gateway lives: encounter ids and seq are unique per (gateway, life), so a gateway whose
  // database was lost or rolled back starts a new life instead of reusing ids. Rows stored
  // before carry the all-zero life, as the gateway's own migration gives its old data.
  `ALTER TABLE batches ADD COLUMN life TEXT NOT NULL DEFAULT '${LEGACY_LIFE}';
   DROP INDEX batches_sequence;
   CREATE UNIQUE INDEX batches_sequence ON batches(gateway, signer, life, seq) WHERE kind = 'batch' AND signer IS NOT NULL;
   CREATE TABLE encounters_v3 (
     gateway TEXT NOT NULL,
     life TEXT NOT NULL,                   -- the gateway life the id belongs to
     id INTEGER NOT NULL,                  -- (gateway, life, id) is unique
     venue TEXT NOT NULL,
     protocol INTEGER NOT NULL,
     temp_id BLOB NOT NULL,
     metadata BLOB NOT NULL,
     first_seen INTEGER NOT NULL,
     last_seen INTEGER NOT NULL,
     count INTEGER NOT NULL,
     rssi_min INTEGER NOT NULL,
     rssi_max INTEGER NOT NULL,
     rssi_mean REAL NOT NULL,
     attenuation_s TEXT NOT NULL,
     clock_synced INTEGER NOT NULL,
     batch_id TEXT NOT NULL,
     PRIMARY KEY (gateway, life, id)
   ) WITHOUT ROWID;
   INSERT INTO encounters_v3 SELECT gateway, '${LEGACY_LIFE}', id, venue, protocol, temp_id, metadata, first_seen, last_seen,
     count, rssi_min, rssi_max, rssi_mean, attenuation_s, clock_synced, batch_id FROM encounters;
   DROP TABLE encounters;
   ALTER TABLE encounters_v3 RENAME TO encounters;
   CREATE INDEX encounters_time ON encounters(venue, first_seen);
   CREATE INDEX encounters_temp_id ON encounters(temp_id);
   CREATE TABLE lives (
     gateway TEXT NOT NULL,
     life TEXT NOT NULL,
     last_seq INTEGER NOT NULL,
     seq_gaps INTEGER NOT NULL,            -- jumps in seq, a first seq above 1 included
     first_seen_at INTEGER NOT NULL,
     last_seen_at INTEGER NOT NULL,
     PRIMARY KEY (gateway, life)
   ) WITHOUT ROWID;
   INSERT INTO lives SELECT gateway, '${LEGACY_LIFE}', last_seq, seq_gaps, last_seen_at, last_seen_at FROM gateways;
   ALTER TABLE gateways ADD COLUMN life TEXT NOT NULL DEFAULT '${LEGACY_LIFE}';
   ALTER TABLE gateways ADD COLUMN lives INTEGER NOT NULL DEFAULT 1;`,
  // The fleet view: batches stored per life (last_seq − batches are missing), each gateway's last
  // status, and encounters per venue per hour (kept as they are stored: the page reads no encounter).
  `ALTER TABLE lives ADD COLUMN batches INTEGER NOT NULL DEFAULT 0;
   UPDATE lives SET batches = (SELECT count(*) FROM batches b WHERE b.gateway = lives.gateway AND b.life = lives.life AND b.kind = 'batch');
   CREATE TABLE gateway_status (
     gateway TEXT PRIMARY KEY,
     venue TEXT NOT NULL,
     state TEXT NOT NULL,
     reason TEXT,
     since INTEGER NOT NULL,
     received_at INTEGER NOT NULL,
     document TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE venue_hours (
     venue TEXT NOT NULL,
     hour INTEGER NOT NULL,
     encounters INTEGER NOT NULL,
     PRIMARY KEY (venue, hour)
   ) WITHOUT ROWID;
   INSERT INTO venue_hours SELECT venue, (first_seen / ${HOUR_MS}) * ${HOUR_MS}, count(*) FROM encounters GROUP BY 1, 2;
   CREATE INDEX venue_hours_hour ON venue_hours(hour);`,
  // Governance: the backend's configuration layers, their staged rollouts (a JSON document each,
  // written by the one collector holding the lease), and that lease.
  `CREATE TABLE config_layers (
     scope TEXT NOT NULL,
     name TEXT NOT NULL,
     version INTEGER NOT NULL,
     settings TEXT NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (scope, name)
   ) WITHOUT ROWID;
   CREATE TABLE rollouts (
     id TEXT PRIMARY KEY,
     state TEXT NOT NULL,
     requested TEXT,
     document TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE rollout_lease (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     holder TEXT NOT NULL,
     until INTEGER NOT NULL
   );`,
  // Gateways' rotated signing keys: each the successor of `previous` (the registry's key first).
  `CREATE TABLE gateway_keys (
     gateway TEXT NOT NULL,
     key TEXT NOT NULL,
     previous TEXT NOT NULL,
     version INTEGER NOT NULL,
     accepted_at INTEGER NOT NULL,
     first_used_at INTEGER,
     PRIMARY KEY (gateway, key)
   ) WITHOUT ROWID;`,
];

/** SQLite answers at once; the store's interface is a promise's: a failure rejects, it never throws. */
function settled<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (err) {
    return Promise.reject(err as Error);
  }
}

/** Whether an open SQLite file is a collector's (it knows gateways) rather than a gateway's own. */
export function isCollectorFile(db: Database.Database): boolean {
  return db.prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'gateways'").pluck().get() === 1;
}

/** The collector's SQLite database: usable on its own (tests, `vgw pull`) or behind MQTT. */
export class CollectorDb implements CollectorStore, EncounterSource {
  readonly kind = 'sqlite' as const;
  readonly db: Database.Database;
  private readonly insertBatch;
  private readonly insertEncounter;
  private readonly upsertGateway;
  private readonly upsertLife;
  private readonly batchExists;
  private readonly seqHolder;
  private readonly countHour;
  private readonly upsertStatus;

  /** `readonly`: for tools beside a running collector; the file must exist with the current schema. */
  constructor(path: string, { readonly = false } = {}) {
    if (readonly) {
      this.db = new Database(path, { readonly: true, fileMustExist: true });
      const version = this.db.pragma('user_version', { simple: true }) as number;
      if (version !== COLLECTOR_MIGRATIONS.length) {
        this.db.close();
        throw new Error(`schema version ${version}, this software reads ${COLLECTOR_MIGRATIONS.length}: ${version < COLLECTOR_MIGRATIONS.length ? 'start the collector once to upgrade it' : 'upgrade venue-gateway'}`);
      }
    } else {
      // synchronous = FULL (openDatabase's): an ack tells the gateway it may let the batch age
      // out, so the commit before it must survive a power cut, not only a crash of the process.
      this.db = openDatabase(path);
      migrate(this.db, COLLECTOR_MIGRATIONS);
    }
    this.insertBatch = this.db.prepare(
      `INSERT INTO batches (id, kind, gateway, venue, life, seq, created_at, received_at, encounter_count, signer, sig)
       VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
    );
    this.insertEncounter = this.db.prepare(
      `INSERT OR IGNORE INTO encounters (gateway, life, id, venue, protocol, temp_id, metadata, first_seen, last_seen,
         count, rssi_min, rssi_max, rssi_mean, attenuation_s, clock_synced, batch_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
    );
    // A first batch above seq 1 is a gap too: the batches before it have not arrived (yet).
    this.upsertLife = this.db.prepare(
      `INSERT INTO lives (gateway, life, last_seq, seq_gaps, first_seen_at, last_seen_at, batches) VALUES (@gateway, @life, @seq, CASE WHEN @seq > 1 THEN 1 ELSE 0 END, @now, @now, 1)
       ON CONFLICT(gateway, life) DO UPDATE SET last_seen_at = excluded.last_seen_at, batches = batches + 1,
         seq_gaps = seq_gaps + (CASE WHEN excluded.last_seq > last_seq + 1 THEN 1 ELSE 0 END),
         last_seq = max(last_seq, excluded.last_seq)`,
    );
    this.upsertGateway = this.db.prepare(
      `INSERT INTO gateways (gateway, venue, life, lives, last_seq, seq_gaps, last_seen_at)
         SELECT @gateway, @venue, @life, 1, last_seq, seq_gaps, @now FROM lives WHERE gateway = @gateway AND life = @life
       ON CONFLICT(gateway) DO UPDATE SET venue = excluded.venue, last_seen_at = excluded.last_seen_at,
         lives = (SELECT count(*) FROM lives WHERE gateway = excluded.gateway),
         life = excluded.life, last_seq = excluded.last_seq,
         seq_gaps = (SELECT sum(seq_gaps) FROM lives WHERE gateway = excluded.gateway)`,
    );
    this.batchExists = this.db.prepare('SELECT 1 FROM batches WHERE id = ?').pluck();
    this.seqHolder = this.db.prepare(`SELECT id FROM batches WHERE gateway = ? AND signer = ? AND life = ? AND seq = ? AND kind = 'batch'`).pluck();
    this.countHour = this.db.prepare(`INSERT INTO venue_hours (venue, hour, encounters) VALUES (?, ?, 1) ON CONFLICT(venue, hour) DO UPDATE SET encounters = encounters + 1`);
    this.upsertStatus = this.db.prepare(
      `INSERT INTO gateway_status (gateway, venue, state, reason, since, received_at, document) VALUES (@gateway, @venue, @state, @reason, @since, @receivedAt, @document)
       ON CONFLICT(gateway) DO UPDATE SET venue = excluded.venue, state = excluded.state, reason = excluded.reason, received_at = excluded.received_at,
         document = excluded.document, since = CASE WHEN gateway_status.state = excluded.state THEN min(gateway_status.since, excluded.since) ELSE excluded.since END
       WHERE excluded.received_at >= gateway_status.received_at`,
    );
  }

  /**
   * Stores a batch in one transaction. A batch id already stored is a duplicate; `signer` (the
   * verified key) makes sequence numbers binding within a life: a new id on a used seq is refused.
   */
  ingest(batch: Batch, signer: Buffer | null = null): IngestResult {
    return this.db.transaction((): IngestResult => {
      if (this.batchExists.get(batch.id) !== undefined) return { outcome: 'duplicate', stored: 0 };
      if (signer && batch.kind === 'batch') {
        const heldBy = this.seqHolder.get(batch.gateway, signer, batch.life, batch.seq) as string | undefined;
        if (heldBy !== undefined) return { outcome: 'out_of_sequence', stored: 0, heldBy };
      }
      this.insertBatch.run(
        batch.id, batch.kind, batch.gateway, batch.venue, batch.life, batch.seq, batch.createdAt, Date.now(), batch.encounters.length, signer, batch.sig ?? null,
      );
      let stored = 0;
      for (const e of batch.encounters) {
        const added = this.insertEncounter.run(
          batch.gateway, batch.life, e.id, batch.venue, e.protocol, e.tempId, e.metadata, e.firstSeen, e.lastSeen,
          e.count, e.rssiMin, e.rssiMax, e.rssiMean, JSON.stringify(e.attenuationS), e.clockSynced ? 1 : 0, batch.id,
        ).changes;
        if (added > 0) this.countHour.run(batch.venue, Math.floor(e.firstSeen / HOUR_MS) * HOUR_MS);
        stored += added;
      }
      if (batch.kind === 'batch') {
        const now = Date.now();
        this.upsertLife.run({ gateway: batch.gateway, life: batch.life, seq: batch.seq, now });
        this.upsertGateway.run({ gateway: batch.gateway, venue: batch.venue, life: batch.life, now });
      }
      return { outcome: 'stored', stored };
    })();
  }

  /**
   * Stores several batches in one transaction: one sync for all (a group commit). Each batch
   * is stored or refused on its own (a savepoint each); if the commit fails, none is stored.
   */
  ingestAll(items: readonly ArrivedBatch[]): Array<IngestResult | Error> {
    return this.db.transaction(() =>
      items.map(({ batch, signer }) => {
        try {
          return this.ingest(batch, signer);
        } catch (err) {
          return err as Error;
        }
      }),
    )();
  }

  /** ingestAll, as the collector's store interface has it (SQLite commits synchronously). */
  commit(items: readonly ArrivedBatch[]): Promise<Array<IngestResult | Error>> {
    return settled(() => this.ingestAll(items));
  }

  purgeExpired(now: number, retentionDays: number, graceDays = DEFAULT_BATCH_GRACE_DAYS): Promise<PurgeReport> {
    // The same days PostgreSQL drops as partitions: those that ended retentionDays before now.
    const boundary = Math.floor((now - retentionDays * DAY_MS) / DAY_MS) * DAY_MS;
    return settled(() =>
      this.db.transaction((): PurgeReport => {
        const days = this.db.prepare(`SELECT count(DISTINCT first_seen / ${DAY_MS}) FROM encounters WHERE first_seen < ?`).pluck().get(boundary) as number;
        this.db.prepare('DELETE FROM encounters WHERE first_seen < ?').run(boundary);
        this.db.prepare('DELETE FROM venue_hours WHERE hour < ?').run(boundary);
        const batchesDeleted = this.db.prepare('DELETE FROM batches WHERE received_at < ?').run(now - (retentionDays + graceDays) * DAY_MS).changes;
        return { days, batchesDeleted };
      })(),
    );
  }

  saveStatuses(rows: readonly StatusRow[]): Promise<void> {
    return settled(() =>
      this.db.transaction(() => {
        for (const r of rows) this.upsertStatus.run(r);
      })(),
    );
  }

  statuses(): Promise<StatusRow[]> {
    return settled(() =>
      this.db.prepare(`SELECT gateway, venue, state, reason, since, received_at AS receivedAt, CASE WHEN length(document) <= ${MAX_STATUS_BYTES} THEN document ELSE '{}' END AS document FROM gateway_status`).all() as StatusRow[],
    );
  }

  lives(): Promise<LifeRow[]> {
    return settled(() =>
      this.db.prepare(
        `SELECT l.gateway, l.life, g.venue, l.last_seq AS lastSeq, l.batches, l.last_seen_at AS lastBatchAt
           FROM lives l JOIN gateways g ON g.gateway = l.gateway`,
      ).all() as LifeRow[],
    );
  }

  venueHours(from: number, to: number): Promise<VenueHour[]> {
    return settled(() => this.db.prepare('SELECT venue, hour, encounters FROM venue_hours WHERE hour >= ? AND hour < ? ORDER BY venue, hour').all(from, to) as VenueHour[]);
  }

  ping(): Promise<void> {
    return settled(() => {
      this.db.prepare('SELECT count(*) FROM gateways').get(); // reads the file, not just the connection
    });
  }

  layers(): Promise<ConfigLayer[]> {
    return settled(() =>
      (this.db.prepare('SELECT scope, name, version, settings, updated_at AS updatedAt FROM config_layers ORDER BY scope, name').all() as Array<ConfigLayer & { settings: string }>)
        .map((r) => ({ ...r, settings: JSON.parse(r.settings) as Record<string, unknown> })),
    );
  }

  changeLayer(
    scope: LayerScope, name: string, settings: Record<string, unknown>, now: number, make: (layer: ConfigLayer, previous: Record<string, unknown> | null) => Rollout,
  ): Promise<{ layer: ConfigLayer; rollout: Rollout }> {
    return settled(() =>
      this.db.transaction(() => {
        const held = this.db.prepare('SELECT version, settings FROM config_layers WHERE scope = ? AND name = ?').get(scope, name) as { version: number; settings: string } | undefined;
        const layer: ConfigLayer = { scope, name, version: (held?.version ?? 0) + 1, settings, updatedAt: now };
        this.db.prepare('INSERT OR REPLACE INTO config_layers (scope, name, version, settings, updated_at) VALUES (?, ?, ?, ?, ?)').run(scope, name, layer.version, JSON.stringify(settings), now);
        const rollout = make(layer, held ? (JSON.parse(held.settings) as Record<string, unknown>) : null);
        for (const { rollout: other } of this.storedRollouts(0)) {
          if (ended(other) || other.layer.scope !== scope || other.layer.name !== name) continue;
          this.writeRollout(supersede(other, rollout.id, now));
        }
        this.writeRollout(rollout);
        return { layer, rollout };
      })(),
    );
  }

  restoreLayer(scope: LayerScope, name: string, version: number, previous: Record<string, unknown> | null, now: number): Promise<boolean> {
    return settled(() => {
      // A layer that did not exist keeps its row, emptied: its version must only ever rise.
      const changes = this.db.prepare('UPDATE config_layers SET version = version + 1, settings = ?, updated_at = ? WHERE scope = ? AND name = ? AND version = ?')
        .run(JSON.stringify(previous ?? {}), now, scope, name, version).changes;
      return changes === 1;
    });
  }

  private storedRollouts(endedCount: number): StoredRollout[] {
    const rows = this.db.prepare(
      `SELECT requested, document FROM rollouts WHERE state IN ('running', 'paused')
       UNION ALL SELECT * FROM (SELECT requested, document FROM rollouts WHERE state IN ('done', 'aborted') ORDER BY id DESC LIMIT ?)`,
    ).all(endedCount) as Array<{ requested: RolloutRequest | null; document: string }>;
    return rows.map((r) => ({ rollout: JSON.parse(r.document) as Rollout, requested: r.requested })).sort((a, b) => (a.rollout.id < b.rollout.id ? 1 : -1));
  }

  private writeRollout(rollout: Rollout, handled: RolloutRequest | null = null): void {
    this.db.prepare(
      `INSERT INTO rollouts (id, state, requested, document) VALUES (@id, @state, NULL, @document)
       ON CONFLICT(id) DO UPDATE SET state = excluded.state, document = excluded.document,
         requested = CASE WHEN rollouts.requested IS @handled THEN NULL ELSE rollouts.requested END`,
    ).run({ id: rollout.id, state: rollout.state, document: JSON.stringify(rollout), handled });
  }

  rollouts(endedCount = 20): Promise<StoredRollout[]> {
    return settled(() => this.storedRollouts(endedCount));
  }

  saveRollout(rollout: Rollout, handled: RolloutRequest | null): Promise<void> {
    return settled(() => this.writeRollout(rollout, handled));
  }

  requestRollout(id: string, request: RolloutRequest): Promise<boolean> {
    return settled(() => this.db.prepare('UPDATE rollouts SET requested = ? WHERE id = ?').run(request, id).changes === 1);
  }

  gatewayKeys(): Promise<GatewayKeyRow[]> {
    return settled(() => this.db.prepare(`SELECT ${GATEWAY_KEY_COLUMNS} FROM gateway_keys ORDER BY gateway, version`).all() as GatewayKeyRow[]);
  }

  addGatewayKey(row: GatewayKeyRow): Promise<GatewayKeyRow> {
    return settled(() => {
      this.db.prepare('INSERT INTO gateway_keys (gateway, key, previous, version, accepted_at, first_used_at) VALUES (@gateway, @key, @previous, @version, @acceptedAt, @firstUsedAt) ON CONFLICT DO NOTHING').run(row);
      return this.db.prepare(`SELECT ${GATEWAY_KEY_COLUMNS} FROM gateway_keys WHERE gateway = ? AND key = ?`).get(row.gateway, row.key) as GatewayKeyRow;
    });
  }

  markGatewayKeyUsed(gateway: string, key: string, at: number): Promise<void> {
    return settled(() => void this.db.prepare('UPDATE gateway_keys SET first_used_at = ? WHERE gateway = ? AND key = ? AND first_used_at IS NULL').run(at, gateway, key));
  }

  leaseRollouts(holder: string, now: number, ttlMs: number): Promise<boolean> {
    return settled(() => {
      this.db.prepare(
        `INSERT INTO rollout_lease (id, holder, until) VALUES (1, @holder, @until)
         ON CONFLICT(id) DO UPDATE SET holder = excluded.holder, until = excluded.until WHERE rollout_lease.holder = excluded.holder OR rollout_lease.until < @now`,
      ).run({ holder, until: now + ttlMs, now });
      return this.db.prepare('SELECT holder FROM rollout_lease WHERE id = 1').pluck().get() === holder;
    });
  }

  /** Encounters overlapping [from, to), by first sighting, read a page at a time. */
  async *encounters(from = 0, to = Number.MAX_SAFE_INTEGER, only: EncounterFilter = {}): AsyncGenerator<VenueEncounter> {
    const where = ['last_seen >= @from', 'first_seen < @to'];
    if (only.protocol !== undefined) where.push('protocol = @protocol');
    if (typeof only.venue === 'string') where.push('venue = @venue');
    yield* this.rows(this.db.prepare(`SELECT ${ENCOUNTER_COLUMNS} FROM encounters WHERE ${where.join(' AND ')} ORDER BY first_seen, gateway, life, id`).iterate({ from, to, ...only }));
  }

  /** Encounters with these temp IDs, through the temp ID index. */
  withTempIds(tempIds: readonly Buffer[]): Promise<VenueEncounter[]> {
    return settled(() => {
      const out = [...this.rows(rowsWhereIn(this.db, `SELECT ${ENCOUNTER_COLUMNS} FROM encounters`, 'temp_id', tempIds))];
      return out.sort((a, b) => a.firstSeen - b.firstSeen);
    });
  }

  private *rows(rows: Iterable<unknown>): Generator<VenueEncounter> {
    for (const r of rows) yield encounterFromCollected(r as CollectedColumns);
  }

  close(): void {
    this.db.close();
  }
}

