// Schema migrations, applied in order; PRAGMA user_version records how many ran. A release must
// stay able to roll back (docs/operating.md, "Releases"): a new migration that only adds (a table,
// a column with a default) is `{ sql, keepsOlder: true }` and older releases keep running on it;
// one that would strand them (a drop, a rename, a new meaning) is a plain string, held back while
// the release is on trial and applied once it is committed, so the release's code must run on the
// schema before it too (expand, then contract).
// Written for an SD card: a commit appends to the encounters table and touches nothing else
// most of the time (no secondary index on encounters; a batch is a range of encounter ids).
import type { Migration } from '../../core/sqlite/index.js';
import { LEGACY_LIFE } from '../../core/wire/index.js';

export const MIGRATIONS: readonly Migration[] = [
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
  // Lives (issue 8): encounter ids and seq are unique per (gateway, life); a new life starts at
  // every start, so a lost, rolled-back or restored database can never reuse an id. Data from
  // before this version keeps the all-zero life, which the collector's migration gives it too.
  // Retention looks at batches: their acknowledgement, the newest last-seen and whether every
  // sighting had a synchronised clock, and the service time (running time, immune to clock
  // steps) at which they were cut.
  `CREATE TABLE lives (
     life TEXT PRIMARY KEY,                -- ULID, sent in every batch
     first_id INTEGER NOT NULL,            -- encounters from this id up to the next life's belong to it
                                           -- (a life killed before its first encounter shares it with the next)
     next_seq INTEGER NOT NULL,
     started_at INTEGER NOT NULL,          -- unix ms (as the clock said)
     reason TEXT NOT NULL                  -- why it started: start, new database, lost, corrupt, ...
   );
   INSERT INTO lives SELECT '${LEGACY_LIFE}', 1, value, 0, 'upgrade' FROM meta WHERE key = 'next_seq'
     AND EXISTS (SELECT 1 FROM encounters UNION ALL SELECT 1 FROM batches UNION ALL SELECT 1 FROM meta WHERE key = 'purged_through' AND value > 0);
   -- Bucket times in whole seconds, as the wire sends them (half the bytes of milliseconds).
   -- Rows written since hold a CBOR array of them (the store reads both: a text value is the
   -- JSON of rows upgraded here).
   ALTER TABLE encounters RENAME COLUMN bucket_ms TO bucket_s;
   UPDATE encounters SET bucket_s = (SELECT json_group_array(CAST(round(value / 1000.0) AS INTEGER)) FROM json_each(encounters.bucket_s));
   CREATE TABLE batches_v2 (
     id TEXT PRIMARY KEY,                  -- ULID (time-ordered: rows append)
     life TEXT NOT NULL,
     seq INTEGER NOT NULL,                 -- per life, from 1
     first_id INTEGER NOT NULL,            -- encounters first_id..last_id, contiguous, one life
     last_id INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     acked_at INTEGER,                     -- NULL while in the outbox
     created_service INTEGER NOT NULL,     -- service time (ms of running) when cut
     first_seen_min INTEGER NOT NULL,      -- the span of its encounters: pulls find them by it
     last_seen_max INTEGER NOT NULL,
     all_synced INTEGER NOT NULL           -- 1: every encounter's clock was synchronised
   ) WITHOUT ROWID;
   INSERT INTO batches_v2 SELECT id, '${LEGACY_LIFE}', seq, first_id, last_id, created_at, acked_at, 0,
     coalesce((SELECT min(first_seen) FROM encounters e WHERE e.id BETWEEN b.first_id AND b.last_id), created_at),
     coalesce((SELECT max(last_seen) FROM encounters e WHERE e.id BETWEEN b.first_id AND b.last_id), created_at),
     coalesce((SELECT min(clock_synced) FROM encounters e WHERE e.id BETWEEN b.first_id AND b.last_id), 1)
     FROM batches b;
   DROP TABLE batches;
   ALTER TABLE batches_v2 RENAME TO batches;
   DELETE FROM meta WHERE key = 'next_seq';
   INSERT OR IGNORE INTO meta VALUES ('service_ms', 0);
   CREATE TABLE open_checkpoint (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     taken_at INTEGER NOT NULL,
     data BLOB NOT NULL                    -- deflated CBOR: the state of the encounters open at the last commit
   );
   -- The temp IDs of open encounters, written once per encounter (not with every checkpoint):
   -- append-only; once the rows no open encounter refers to any more are many, the table is
   -- emptied and its live rows written again (emptying frees pages without writing them).
   CREATE TABLE open_ids (
     ref INTEGER PRIMARY KEY,
     protocol INTEGER NOT NULL,
     temp_id BLOB NOT NULL,
     metadata BLOB NOT NULL
   );
   CREATE TABLE events (
     at INTEGER NOT NULL,                  -- unix ms
     kind TEXT NOT NULL,                   -- corrupt, lost, replaced, rolled_back, meta_rebuilt, unacked_purged, lineage_unreadable
     detail TEXT NOT NULL
   );`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;
