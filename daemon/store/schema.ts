// Schema migrations, applied in order; PRAGMA user_version records how many ran.
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE encounters (
     id INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, so (gateway, id) names an encounter forever
     protocol INTEGER NOT NULL,
     temp_id BLOB NOT NULL,
     metadata BLOB NOT NULL,
     first_seen INTEGER NOT NULL,          -- unix ms
     last_seen INTEGER NOT NULL,
     count INTEGER NOT NULL,
     rssi_min INTEGER NOT NULL,
     rssi_max INTEGER NOT NULL,
     rssi_sum INTEGER NOT NULL,
     bucket_ms TEXT NOT NULL,              -- JSON array, ms per attenuation bucket
     batch_id TEXT                         -- NULL until cut into an outbox batch
   );
   CREATE INDEX encounters_unbatched ON encounters(id) WHERE batch_id IS NULL;
   CREATE INDEX encounters_batch ON encounters(batch_id) WHERE batch_id IS NOT NULL;
   CREATE INDEX encounters_last_seen ON encounters(last_seen);
   CREATE TABLE batches (
     id TEXT PRIMARY KEY,                  -- ULID
     seq INTEGER NOT NULL UNIQUE,          -- per-gateway sequence, from 1
     created_at INTEGER NOT NULL,
     encounter_count INTEGER NOT NULL,
     acked_at INTEGER                      -- NULL while in the outbox
   );
   CREATE INDEX batches_outbox ON batches(seq) WHERE acked_at IS NULL;
   CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
   INSERT INTO meta VALUES ('next_seq', 1);`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;
