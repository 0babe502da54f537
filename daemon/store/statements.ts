// Every statement the gateway's store runs, prepared once per opened file.
import type Database from 'better-sqlite3';

export type StoreStatements = ReturnType<typeof prepareStatements>;

export function prepareStatements(db: Database.Database) {
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
