// Schema migrations, applied in order; PRAGMA user_version records how many ran.
// Written for an SD card: a commit appends to the encounters table and touches nothing else
// most of the time (no secondary index on encounters; a batch is a range of encounter ids).
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE encounters (
     id INTEGER PRIMARY KEY,               -- assigned by the store, never reused (see meta.purged_through)
     protocol INTEGER NOT NULL,
     temp_id BLOB NOT NULL,
     metadata BLOB NOT NULL,
     first_seen INTEGER NOT NULL,          -- unix ms
     last_seen INTEGER NOT NULL,
     count INTEGER NOT NULL,
     rssi_min INTEGER NOT NULL,
     rssi_max INTEGER NOT NULL,
     rssi_sum INTEGER NOT NULL,
     rssi_count INTEGER NOT NULL,          -- sightings with a known RSSI (127 = not available)
     bucket_ms TEXT NOT NULL,              -- JSON array, ms per attenuation bucket
     clock_synced INTEGER NOT NULL         -- 1: every sighting stamped by a synchronised clock
   );
   CREATE TABLE batches (
     id TEXT PRIMARY KEY,                  -- ULID
     seq INTEGER NOT NULL UNIQUE,          -- per-gateway sequence, from 1
     first_id INTEGER NOT NULL,            -- encounters first_id..last_id, contiguous
     last_id INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     acked_at INTEGER                      -- NULL while in the outbox
   );
   CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
   INSERT INTO meta VALUES ('next_seq', 1), ('purged_through', 0);`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;
