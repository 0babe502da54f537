// The collector's PostgreSQL schema: numbered migrations, recorded in schema_migrations and
// applied once each under an advisory lock, so collectors starting together do not race.
import type pg from 'pg';
import { HOUR_MS } from './fleet.js';

/** Serialises migrations across collectors. */
const MIGRATION_LOCK = 0x76677701;

export interface Migration {
  version: number;
  description: string;
  sql: string;
}

/** Versioned in schema_migrations; applied in order, each once, under an advisory lock. */
export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'batches, day-partitioned encounters, gateway lives',
    sql: `
      CREATE TABLE batches (
        id text PRIMARY KEY,
        kind text NOT NULL,
        gateway text NOT NULL,
        venue text NOT NULL,
        life text NOT NULL,
        seq bigint NOT NULL,
        created_at bigint NOT NULL,
        received_at bigint NOT NULL,
        encounter_count integer NOT NULL,
        signer bytea,
        sig bytea
      );
      -- a gateway's sequence numbers are unique per signing key and life
      CREATE UNIQUE INDEX batches_sequence ON batches (gateway, signer, life, seq) WHERE kind = 'batch' AND signer IS NOT NULL;
      CREATE INDEX batches_received ON batches (received_at);
      CREATE TABLE encounters (
        gateway text NOT NULL,
        life text NOT NULL,
        id bigint NOT NULL,
        venue text NOT NULL,
        protocol smallint NOT NULL,
        temp_id bytea NOT NULL,
        metadata bytea NOT NULL,
        first_seen bigint NOT NULL,
        last_seen bigint NOT NULL,
        count integer NOT NULL,
        rssi_min smallint NOT NULL,
        rssi_max smallint NOT NULL,
        rssi_mean double precision NOT NULL,
        attenuation_s integer[] NOT NULL,
        clock_synced boolean NOT NULL,
        batch_id text NOT NULL,
        -- a re-sent encounter carries its first sighting again, so the key holds across partitions
        PRIMARY KEY (gateway, life, id, first_seen)
      ) PARTITION BY RANGE (first_seen);
      CREATE INDEX encounters_time ON encounters (venue, first_seen);
      CREATE INDEX encounters_temp_id ON encounters (temp_id);
      -- Updated only by commutative steps (greatest, +), so collectors committing at once agree.
      CREATE TABLE lives (
        gateway text NOT NULL,
        life text NOT NULL,
        venue text NOT NULL,
        last_seq bigint NOT NULL,
        batches bigint NOT NULL,          -- distinct sequence numbers stored: last_seq - batches are missing
        first_seen_at bigint NOT NULL,
        last_seen_at bigint NOT NULL,
        PRIMARY KEY (gateway, life)
      );`,
  },
  {
    version: 2,
    description: "each gateway's last status; encounters per venue per hour",
    sql: `
      CREATE TABLE gateway_status (
        gateway text PRIMARY KEY,
        venue text NOT NULL,
        state text NOT NULL,
        reason text,
        since bigint NOT NULL,
        received_at bigint NOT NULL,
        document text NOT NULL
      );
      -- counted as encounters are stored (commutative +), so the fleet page reads no encounter
      CREATE TABLE venue_hours (
        venue text NOT NULL,
        hour bigint NOT NULL,
        encounters bigint NOT NULL,
        PRIMARY KEY (venue, hour)
      );
      CREATE INDEX venue_hours_hour ON venue_hours (hour);
      INSERT INTO venue_hours SELECT venue, (first_seen / ${HOUR_MS}) * ${HOUR_MS}, count(*) FROM encounters GROUP BY 1, 2;`,
  },
  {
    version: 3,
    description: 'configuration layers, staged rollouts and the lease of the collector driving them',
    sql: `
      CREATE TABLE config_layers (
        scope text NOT NULL,
        name text NOT NULL,
        version integer NOT NULL,
        settings text NOT NULL,
        updated_at bigint NOT NULL,
        PRIMARY KEY (scope, name)
      );
      -- a JSON document each, written by the one collector holding the lease
      CREATE TABLE rollouts (
        id text PRIMARY KEY,
        state text NOT NULL,
        requested text,
        document text NOT NULL
      );
      CREATE TABLE rollout_lease (
        id integer PRIMARY KEY CHECK (id = 1),
        holder text NOT NULL,
        until bigint NOT NULL
      );`,
  },
  {
    version: 4,
    description: "gateways' rotated signing keys, each the successor of the one before",
    sql: `
      CREATE TABLE gateway_keys (
        gateway text NOT NULL,
        key text NOT NULL,
        previous text NOT NULL,
        version integer NOT NULL,
        accepted_at bigint NOT NULL,
        first_used_at bigint,
        PRIMARY KEY (gateway, key)
      );`,
  },
];

export async function migratePostgres(pool: pg.Pool, migrations: readonly Migration[]): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const applied = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
    const newest = Math.max(0, ...applied);
    const known = migrations.length === 0 ? 0 : migrations[migrations.length - 1].version;
    if (newest > known) throw new Error(`collector.database: schema version ${newest} is newer than this software (${known}); upgrade venue-gateway`);
    for (const m of migrations) {
      if (applied.has(m.version)) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (version, description) VALUES ($1, $2)', [m.version, m.description]);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
