// The collector's PostgreSQL store, for a fleet: several collectors in one shared-subscription
// group write into one database. Every write is idempotent (ON CONFLICT DO NOTHING on the batch id
// and on (gateway, life, encounter id, first seen)), so a batch that reaches two collectors, or is
// re-sent after a collector died before its ack, is stored once. Encounters are partitioned by day
// of first sighting: retention drops a day's table instead of deleting its rows.
import pg from 'pg';
import type { VenueEncounter } from '../core/encounters/index.js';
import { type CollectedColumns, ENCOUNTER_COLUMNS, encounterFromCollected } from './encounter-row.js';
import { HOUR_MS, type LifeRow, MAX_STATUS_BYTES, type StatusRow, type VenueHour } from './fleet.js';
import { DAY_MS, DEFAULT_BATCH_GRACE_DAYS, GATEWAY_KEY_COLUMNS } from './store.js';
import type { GatewayKeyRow } from '../core/trust/index.js';
import { migratePostgres, POSTGRES_MIGRATIONS } from './postgres-schema.js';

export { migratePostgres, POSTGRES_MIGRATIONS, type Migration } from './postgres-schema.js';
import type {
  ArrivedBatch, CollectorStore, EncounterFilter, EncounterSource, IngestResult, PurgeReport, RolloutRequest, StoredRollout } from './store.js';
import { type ConfigLayer, ended, type LayerScope, type Rollout, supersede } from '../core/fleet/index.js';

/** Serialises partition creation against retention's drops, across collectors. */
const PARTITION_LOCK = 0x76677702;

/** Serialises changes of configuration layers (each a version above the last), across CLIs and collectors. */
const GOVERNANCE_LOCK = 0x76677703;

/** Retried when PostgreSQL says the transaction may succeed if run again. */
const RETRYABLE = new Set(['40001', '40P01']);
/** "no partition of relation … found for row": another collector dropped it (retention). */
const NO_PARTITION = '23514';

/** int8 as a JS number: every bigint here (ms times, seq, ids) is below 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** Days after year 9999 (a gateway's clock far off) are named by their number instead. */
const LAST_DATED_DAY = Date.UTC(9999, 11, 31) / DAY_MS;

/** `encounters_d20261204`: the partition of the day (UTC) that starts at `day * DAY_MS`. */
export function partitionName(day: number): string {
  if (day > LAST_DATED_DAY) return `encounters_n${day}`;
  return `encounters_d${new Date(day * DAY_MS).toISOString().slice(0, 10).replace(/-/g, '')}`;
}

function dayOfPartition(name: string): number | null {
  const m = /^encounters_d(\d{4})(\d{2})(\d{2})$/.exec(name);
  if (m) return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) / DAY_MS;
  const n = /^encounters_n(\d+)$/.exec(name);
  return n ? Number(n[1]) : null;
}

/** The longest a query may take: a group commit of 1,000 batches takes well under a second. */
const QUERY_TIMEOUT_MS = 60_000;

export interface PostgresStoreOptions {
  /** Connections in the pool: one commit holds one; reads take others. */
  poolSize?: number;
  /** An idle connection failed (server restarted, network gone): the pool drops it and opens another. */
  onConnectionError?: (err: Error) => void;
  /** Rows per page when reading encounters. */
  pageSize?: number;
}

/** A row as the reads select it: the collector's columns and the life (for keyset paging). */
type Row = CollectedColumns & { life: string };


export class PostgresCollectorStore implements CollectorStore, EncounterSource {
  readonly kind = 'postgres' as const;
  /** Days whose partition is known to exist: checked once per day per process. */
  private readonly partitions = new Set<number>();
  private readonly pageSize: number;

  private constructor(readonly pool: pg.Pool, options: PostgresStoreOptions) {
    this.pageSize = options.pageSize ?? 5000;
  }

  /** Connects and brings the schema up to date (refusing a newer one). */
  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresCollectorStore> {
    // synchronous_commit on in every session, whatever the server or database default: an ack
    // tells the gateway it may drop the batch, so the commit before it must be on disk.
    // A server that stops answering (frozen, a hung disk) fails queries after QUERY_TIMEOUT_MS
    // instead of holding commits and health checks for ever; the server ends its own side too.
    const pool = new pg.Pool({
      connectionString: url, max: options.poolSize ?? 4, types, connectionTimeoutMillis: 10_000,
      query_timeout: QUERY_TIMEOUT_MS, options: `-c synchronous_commit=on -c statement_timeout=${QUERY_TIMEOUT_MS}`,
    });
    // An idle client whose server went away emits here; without a listener it would end the process.
    pool.on('error', (err) => options.onConnectionError?.(err));
    try {
      await migratePostgres(pool, POSTGRES_MIGRATIONS);
    } catch (err) {
      await pool.end();
      throw err;
    }
    return new PostgresCollectorStore(pool, options);
  }

  async commit(items: readonly ArrivedBatch[]): Promise<Array<IngestResult | Error>> {
    if (items.length === 0) return [];
    const days = new Set<number>();
    for (const { batch } of items) for (const e of batch.encounters) days.add(Math.floor(e.firstSeen / DAY_MS));
    for (let attempt = 1; ; attempt++) {
      await this.ensurePartitions(days);
      const client = await this.pool.connect();
      try {
        await client.query('BEGIN');
        const results = await ingestInTransaction(client, items, Date.now());
        await client.query('COMMIT');
        return results;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        const code = (err as { code?: string }).code;
        if (code === NO_PARTITION) this.partitions.clear();
        if (attempt >= 3 || !(RETRYABLE.has(code ?? '') || code === NO_PARTITION)) throw err;
      } finally {
        client.release();
      }
    }
  }

  /** Creates the day partitions these encounters need (once per day per process). */
  private async ensurePartitions(days: ReadonlySet<number>): Promise<void> {
    const missing = [...days].filter((d) => !this.partitions.has(d)).sort((a, b) => a - b);
    if (missing.length === 0) return;
    await this.underPartitionLock(async (client) => {
      for (const day of missing) {
        await client.query(`CREATE TABLE IF NOT EXISTS ${partitionName(day)} PARTITION OF encounters FOR VALUES FROM (${day * DAY_MS}) TO (${(day + 1) * DAY_MS})`);
      }
    });
    for (const d of missing) this.partitions.add(d);
  }

  private async underPartitionLock<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK]);
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /** The day partitions that exist, oldest first. */
  async partitionDays(): Promise<number[]> {
    const { rows } = await this.pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'encounters'`,
    );
    return rows.map((r) => dayOfPartition(r.name)).filter((d): d is number => d !== null).sort((a, b) => a - b);
  }

  /**
   * Retention: drops each day partition whose whole day ended `retentionDays` before `now`, and
   * the batch records received before that by more than `graceDays` (batchGraceDays: a gateway
   * re-sends an unacknowledged batch for up to its store.unackedMaxDays of service).
   */
  async purgeExpired(now: number, retentionDays: number, graceDays = DEFAULT_BATCH_GRACE_DAYS): Promise<PurgeReport> {
    const cutoff = now - retentionDays * DAY_MS;
    const dropped = await this.underPartitionLock(async (client) => {
      const old = (await this.partitionDays()).filter((day) => (day + 1) * DAY_MS <= cutoff);
      for (const day of old) await client.query(`DROP TABLE IF EXISTS ${partitionName(day)}`);
      return old;
    });
    for (const d of dropped) this.partitions.delete(d);
    const { rowCount } = await this.pool.query('DELETE FROM batches WHERE received_at < $1', [cutoff - graceDays * DAY_MS]);
    await this.pool.query('DELETE FROM venue_hours WHERE hour < $1', [Math.floor(cutoff / DAY_MS) * DAY_MS]);
    return { days: dropped.length, batchesDeleted: rowCount ?? 0 };
  }

  async *encounters(from = 0, to = Number.MAX_SAFE_INTEGER, only: EncounterFilter = {}): AsyncGenerator<VenueEncounter> {
    const where = ['last_seen >= $1', 'first_seen < $2'];
    const params: unknown[] = [from, to];
    if (only.protocol !== undefined) where.push(`protocol = $${params.push(only.protocol)}`);
    if (typeof only.venue === 'string') where.push(`venue = $${params.push(only.venue)}`);
    // Keyset pages: each query starts after the last row of the one before.
    let after: unknown[] | null = null;
    for (;;) {
      const pageWhere: string[] = after ? [...where, `(first_seen, gateway, life, id) > ($${params.length + 1}, $${params.length + 2}, $${params.length + 3}, $${params.length + 4})`] : where;
      const { rows }: pg.QueryResult<Row> = await this.pool.query<Row>(
        `SELECT ${ENCOUNTER_COLUMNS} FROM encounters WHERE ${pageWhere.join(' AND ')} ORDER BY first_seen, gateway, life, id LIMIT ${this.pageSize}`,
        after ? [...params, ...after] : params,
      );
      for (const r of rows) yield encounterFromCollected(r);
      if (rows.length < this.pageSize) return;
      const last: Row = rows[rows.length - 1];
      after = [last.first_seen, last.gateway, last.life, last.id];
    }
  }

  async withTempIds(tempIds: readonly Buffer[]): Promise<VenueEncounter[]> {
    const out: VenueEncounter[] = [];
    for (let i = 0; i < tempIds.length; i += this.pageSize) {
      const { rows } = await this.pool.query<Row>(`SELECT ${ENCOUNTER_COLUMNS} FROM encounters WHERE temp_id = ANY($1::bytea[])`, [tempIds.slice(i, i + this.pageSize)]);
      for (const r of rows) out.push(encounterFromCollected(r));
    }
    return out.sort((a, b) => a.firstSeen - b.firstSeen);
  }

  async saveStatuses(rows: readonly StatusRow[]): Promise<void> {
    if (rows.length === 0) return;
    const list = [...rows].sort((a, b) => (a.gateway < b.gateway ? -1 : 1));
    const c = <T>(f: (r: StatusRow) => T) => list.map(f);
    await this.pool.query(
      `INSERT INTO gateway_status AS s (gateway, venue, state, reason, since, received_at, document)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[])
       ON CONFLICT (gateway) DO UPDATE SET venue = excluded.venue, state = excluded.state, reason = excluded.reason, received_at = excluded.received_at,
         document = excluded.document, since = CASE WHEN s.state = excluded.state THEN least(s.since, excluded.since) ELSE excluded.since END
       WHERE excluded.received_at >= s.received_at`,
      [c((r) => r.gateway), c((r) => r.venue), c((r) => r.state), c((r) => r.reason), c((r) => r.since), c((r) => r.receivedAt), c((r) => r.document)],
    );
  }

  async statuses(): Promise<StatusRow[]> {
    return (await this.pool.query<StatusRow>(`SELECT gateway, venue, state, reason, since, received_at AS "receivedAt", CASE WHEN length(document) <= ${MAX_STATUS_BYTES} THEN document ELSE '{}' END AS document FROM gateway_status`)).rows;
  }

  async lives(): Promise<LifeRow[]> {
    return (
      await this.pool.query<LifeRow>('SELECT gateway, life, venue, last_seq AS "lastSeq", batches, last_seen_at AS "lastBatchAt" FROM lives')
    ).rows;
  }

  async venueHours(from: number, to: number): Promise<VenueHour[]> {
    return (await this.pool.query<VenueHour>('SELECT venue, hour, encounters FROM venue_hours WHERE hour >= $1 AND hour < $2 ORDER BY venue, hour', [from, to])).rows;
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  async layers(): Promise<ConfigLayer[]> {
    const { rows } = await this.pool.query<ConfigLayer & { settings: string }>('SELECT scope, name, version, settings, updated_at AS "updatedAt" FROM config_layers ORDER BY scope, name');
    return rows.map((r) => ({ ...r, settings: JSON.parse(r.settings) as Record<string, unknown> }));
  }

  async changeLayer(
    scope: LayerScope, name: string, settings: Record<string, unknown>, now: number, make: (layer: ConfigLayer, previous: Record<string, unknown> | null) => Rollout,
  ): Promise<{ layer: ConfigLayer; rollout: Rollout }> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [GOVERNANCE_LOCK]);
      const held = (await client.query<{ version: number; settings: string }>('SELECT version, settings FROM config_layers WHERE scope = $1 AND name = $2', [scope, name])).rows[0];
      const layer: ConfigLayer = { scope, name, version: (held?.version ?? 0) + 1, settings, updatedAt: now };
      await client.query(
        `INSERT INTO config_layers (scope, name, version, settings, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (scope, name) DO UPDATE SET version = excluded.version, settings = excluded.settings, updated_at = excluded.updated_at`,
        [scope, name, layer.version, JSON.stringify(settings), now],
      );
      const rollout = make(layer, held ? (JSON.parse(held.settings) as Record<string, unknown>) : null);
      for (const { rollout: other } of await storedRollouts(client, 0)) {
        if (ended(other) || other.layer.scope !== scope || other.layer.name !== name) continue;
        await writeRollout(client, supersede(other, rollout.id, now), null);
      }
      await writeRollout(client, rollout, null);
      await client.query('COMMIT');
      return { layer, rollout };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async restoreLayer(scope: LayerScope, name: string, version: number, previous: Record<string, unknown> | null, now: number): Promise<boolean> {
    // A layer that did not exist keeps its row, emptied: its version must only ever rise.
    const { rowCount } = await this.pool.query(
      'UPDATE config_layers SET version = version + 1, settings = $1, updated_at = $2 WHERE scope = $3 AND name = $4 AND version = $5',
      [JSON.stringify(previous ?? {}), now, scope, name, version],
    );
    return rowCount === 1;
  }

  rollouts(endedCount = 20): Promise<StoredRollout[]> {
    return storedRollouts(this.pool, endedCount);
  }

  saveRollout(rollout: Rollout, handled: RolloutRequest | null): Promise<void> {
    return writeRollout(this.pool, rollout, handled);
  }

  async requestRollout(id: string, request: RolloutRequest): Promise<boolean> {
    return (await this.pool.query('UPDATE rollouts SET requested = $1 WHERE id = $2', [request, id])).rowCount === 1;
  }

  async gatewayKeys(): Promise<GatewayKeyRow[]> {
    return (await this.pool.query<GatewayKeyDbRow>(`SELECT ${GATEWAY_KEY_COLUMNS} FROM gateway_keys ORDER BY gateway, version`)).rows.map(gatewayKeyRow);
  }

  async addGatewayKey(row: GatewayKeyRow): Promise<GatewayKeyRow> {
    await this.pool.query(
      'INSERT INTO gateway_keys (gateway, key, previous, version, accepted_at, first_used_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING',
      [row.gateway, row.key, row.previous, row.version, row.acceptedAt, row.firstUsedAt],
    );
    return gatewayKeyRow((await this.pool.query<GatewayKeyDbRow>(`SELECT ${GATEWAY_KEY_COLUMNS} FROM gateway_keys WHERE gateway = $1 AND key = $2`, [row.gateway, row.key])).rows[0]);
  }

  async markGatewayKeyUsed(gateway: string, key: string, at: number): Promise<void> {
    await this.pool.query('UPDATE gateway_keys SET first_used_at = $1 WHERE gateway = $2 AND key = $3 AND first_used_at IS NULL', [at, gateway, key]);
  }

  async leaseRollouts(holder: string, now: number, ttlMs: number): Promise<boolean> {
    const { rows } = await this.pool.query<{ holder: string }>(
      `INSERT INTO rollout_lease AS l (id, holder, until) VALUES (1, $1, $2)
       ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, until = excluded.until WHERE l.holder = excluded.holder OR l.until < $3
       RETURNING holder`,
      [holder, now + ttlMs, now],
    );
    return rows[0]?.holder === holder;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/**
 * The group's statements, inside its transaction. Rows are written in key order (batch id, then
 * encounter key, then life) so two collectors committing overlapping groups wait on each other
 * instead of deadlocking.
 */
async function ingestInTransaction(client: pg.PoolClient, items: readonly ArrivedBatch[], now: number): Promise<Array<IngestResult | Error>> {
  const results: Array<IngestResult | Error | undefined> = new Array(items.length);
  // A batch twice in one group: the first copy is the one written, the others are duplicates.
  const firstIndex = new Map<string, number>();
  items.forEach(({ batch }, i) => {
    if (firstIndex.has(batch.id)) results[i] = { outcome: 'duplicate', stored: 0 };
    else firstIndex.set(batch.id, i);
  });
  const firsts = [...firstIndex.values()].sort((a, b) => (items[a].batch.id < items[b].batch.id ? -1 : 1));
  const cols = {
    id: [] as string[], kind: [] as string[], gateway: [] as string[], venue: [] as string[], life: [] as string[], seq: [] as number[],
    created: [] as number[], count: [] as number[], signer: [] as Array<Buffer | null>, sig: [] as Array<Buffer | null>,
  };
  for (const i of firsts) {
    const { batch, signer } = items[i];
    cols.id.push(batch.id);
    cols.kind.push(batch.kind);
    cols.gateway.push(batch.gateway);
    cols.venue.push(batch.venue);
    cols.life.push(batch.life);
    cols.seq.push(batch.seq);
    cols.created.push(batch.createdAt);
    cols.count.push(batch.encounters.length);
    cols.signer.push(signer);
    cols.sig.push(batch.sig ?? null);
  }
  const inserted = new Set(
    (
      await client.query<{ id: string }>(
        `INSERT INTO batches (id, kind, gateway, venue, life, seq, created_at, received_at, encounter_count, signer, sig)
         SELECT u.id, u.kind, u.gateway, u.venue, u.life, u.seq, u.created, $11, u.count, u.signer, u.sig
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::int[], $9::bytea[], $10::bytea[])
             AS u(id, kind, gateway, venue, life, seq, created, count, signer, sig)
         ON CONFLICT DO NOTHING RETURNING id`,
        [cols.id, cols.kind, cols.gateway, cols.venue, cols.life, cols.seq, cols.created, cols.count, cols.signer, cols.sig, now],
      )
    ).rows.map((r) => r.id),
  );
  // Not inserted: its id was there already (a duplicate), or its sequence number was (refused).
  const notInserted = firsts.filter((i) => !inserted.has(items[i].batch.id));
  if (notInserted.length > 0) {
    const existing = new Set(
      (await client.query<{ id: string }>('SELECT id FROM batches WHERE id = ANY($1::text[])', [notInserted.map((i) => items[i].batch.id)])).rows.map((r) => r.id),
    );
    for (const i of notInserted) {
      const { batch, signer } = items[i];
      if (existing.has(batch.id)) {
        results[i] = { outcome: 'duplicate', stored: 0 };
        continue;
      }
      const holder = await client.query<{ id: string }>(
        `SELECT id FROM batches WHERE gateway = $1 AND signer = $2 AND life = $3 AND seq = $4 AND kind = 'batch'`,
        [batch.gateway, signer, batch.life, batch.seq],
      );
      results[i] = holder.rows.length > 0 ? { outcome: 'out_of_sequence', stored: 0, heldBy: holder.rows[0].id } : new Error(`batch ${batch.id} was neither stored nor found`);
    }
  }
  const storedBatches = firsts.filter((i) => inserted.has(items[i].batch.id));
  const storedPerBatch = await insertEncounters(client, storedBatches.map((i) => items[i].batch));
  for (const i of storedBatches) results[i] = { outcome: 'stored', stored: storedPerBatch.get(items[i].batch.id) ?? 0 };
  await upsertLives(client, storedBatches.map((i) => items[i].batch).filter((b) => b.kind === 'batch'), now);
  return results as Array<IngestResult | Error>;
}

/** One statement for every encounter of the stored batches; returns how many each batch added. */
async function insertEncounters(client: pg.PoolClient, batches: ArrivedBatch['batch'][]): Promise<Map<string, number>> {
  const rows: Array<{ batch: ArrivedBatch['batch']; e: ArrivedBatch['batch']['encounters'][number] }> = [];
  for (const batch of batches) for (const e of batch.encounters) rows.push({ batch, e });
  if (rows.length === 0) return new Map();
  rows.sort((a, b) =>
    a.batch.gateway !== b.batch.gateway ? (a.batch.gateway < b.batch.gateway ? -1 : 1)
    : a.batch.life !== b.batch.life ? (a.batch.life < b.batch.life ? -1 : 1)
    : a.e.id - b.e.id || a.e.firstSeen - b.e.firstSeen,
  );
  const c = (f: (r: (typeof rows)[number]) => unknown) => rows.map(f);
  const { rows: counts } = await client.query<{ batch_id: string; n: number }>(
    `WITH ins AS (
       INSERT INTO encounters (gateway, life, id, venue, protocol, temp_id, metadata, first_seen, last_seen, count, rssi_min, rssi_max, rssi_mean, attenuation_s, clock_synced, batch_id)
       SELECT u.gateway, u.life, u.id, u.venue, u.protocol, u.temp_id, u.metadata, u.first_seen, u.last_seen, u.count, u.rssi_min, u.rssi_max, u.rssi_mean, u.attenuation_s::integer[], u.clock_synced, u.batch_id
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::smallint[], $6::bytea[], $7::bytea[], $8::bigint[], $9::bigint[], $10::int[],
                     $11::smallint[], $12::smallint[], $13::float8[], $14::text[], $15::boolean[], $16::text[])
           AS u(gateway, life, id, venue, protocol, temp_id, metadata, first_seen, last_seen, count, rssi_min, rssi_max, rssi_mean, attenuation_s, clock_synced, batch_id)
       ON CONFLICT DO NOTHING RETURNING batch_id, venue, first_seen),
     hours AS (
       INSERT INTO venue_hours AS h (venue, hour, encounters)
       SELECT venue, (first_seen / ${HOUR_MS}) * ${HOUR_MS}, count(*) FROM ins GROUP BY 1, 2 ORDER BY 1, 2
       ON CONFLICT (venue, hour) DO UPDATE SET encounters = h.encounters + excluded.encounters)
     SELECT batch_id, count(*)::int AS n FROM ins GROUP BY batch_id`,
    [
      c((r) => r.batch.gateway), c((r) => r.batch.life), c((r) => r.e.id), c((r) => r.batch.venue), c((r) => r.e.protocol), c((r) => r.e.tempId),
      c((r) => r.e.metadata), c((r) => r.e.firstSeen), c((r) => r.e.lastSeen), c((r) => r.e.count), c((r) => r.e.rssiMin), c((r) => r.e.rssiMax),
      c((r) => r.e.rssiMean), c((r) => `{${r.e.attenuationS.join(',')}}`), c((r) => r.e.clockSynced), c((r) => r.batch.id),
    ],
  );
  return new Map(counts.map((r) => [r.batch_id, r.n]));
}

/** Each life's highest sequence number and count of batches, by commutative updates only. */
async function upsertLives(client: pg.PoolClient, batches: ArrivedBatch['batch'][], now: number): Promise<void> {
  if (batches.length === 0) return;
  const lives = new Map<string, { gateway: string; life: string; venue: string; lastSeq: number; batches: number }>();
  for (const b of batches) {
    const key = `${b.gateway}\u0000${b.life}`;
    const l = lives.get(key);
    if (l) {
      l.lastSeq = Math.max(l.lastSeq, b.seq);
      l.batches++;
      l.venue = b.venue;
    } else lives.set(key, { gateway: b.gateway, life: b.life, venue: b.venue, lastSeq: b.seq, batches: 1 });
  }
  const list = [...lives.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, l]) => l);
  await client.query(
    `INSERT INTO lives AS l (gateway, life, venue, last_seq, batches, first_seen_at, last_seen_at)
     SELECT u.gateway, u.life, u.venue, u.last_seq, u.batches, $6, $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS u(gateway, life, venue, last_seq, batches)
     ON CONFLICT (gateway, life) DO UPDATE SET venue = excluded.venue, last_seq = greatest(l.last_seq, excluded.last_seq),
       batches = l.batches + excluded.batches, last_seen_at = greatest(l.last_seen_at, excluded.last_seen_at)`,
    [list.map((l) => l.gateway), list.map((l) => l.life), list.map((l) => l.venue), list.map((l) => l.lastSeq), list.map((l) => l.batches), now],
  );
}

type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient;

async function storedRollouts(db: Queryable, endedCount: number): Promise<StoredRollout[]> {
  const { rows } = await db.query<{ requested: RolloutRequest | null; document: string }>(
    `SELECT requested, document FROM rollouts WHERE state IN ('running', 'paused')
     UNION ALL (SELECT requested, document FROM rollouts WHERE state IN ('done', 'aborted') ORDER BY id DESC LIMIT $1)`,
    [endedCount],
  );
  return rows.map((r) => ({ rollout: JSON.parse(r.document) as Rollout, requested: r.requested })).sort((a, b) => (a.rollout.id < b.rollout.id ? 1 : -1));
}

async function writeRollout(db: Queryable, rollout: Rollout, handled: RolloutRequest | null): Promise<void> {
  await db.query(
    `INSERT INTO rollouts AS r (id, state, requested, document) VALUES ($1, $2, NULL, $3)
     ON CONFLICT (id) DO UPDATE SET state = excluded.state, document = excluded.document,
       requested = CASE WHEN r.requested IS NOT DISTINCT FROM $4::text THEN NULL ELSE r.requested END`,
    [rollout.id, rollout.state, JSON.stringify(rollout), handled],
  );
}

type GatewayKeyDbRow = Omit<GatewayKeyRow, 'acceptedAt' | 'firstUsedAt'> & { acceptedAt: string | number; firstUsedAt: string | number | null };

/** bigint columns come back as strings from node-postgres. */
function gatewayKeyRow(r: GatewayKeyDbRow): GatewayKeyRow {
  return { ...r, acceptedAt: Number(r.acceptedAt), firstUsedAt: r.firstUsedAt === null ? null : Number(r.firstUsedAt) };
}
