// The one place SQLite files are opened (gateway store, collector, tools), and schema migrations.
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';

/** The one place SQLite files are opened: WAL, FULL sync, private to the service user. */
export function openDatabase(path: string, pageSize?: number): Database.Database {
  // The folder is made private on first start; systemd's StateDirectory makes it too.
  mkdirSync(dirname(resolve(path)), { recursive: true, mode: 0o700 });
  let db: Database.Database;
  try {
    // Everyone's temp IDs are in it: created 0600 (SQLite gives its WAL the same mode).
    if (!existsSync(path)) closeSync(openSync(path, 'a', 0o600));
    chmodSync(path, 0o600);
    db = new Database(path);
  } catch (err) {
    throw new Error(`store.path: cannot open ${path} (${(err as Error).message}): check the folder's owner and permissions`);
  }
  // Only a new file takes a page size (and only before WAL mode is set).
  if (pageSize !== undefined) db.pragma(`page_size = ${pageSize}`);
  db.pragma('journal_mode = WAL');
  // FULL: a commit survives power loss, which a Pi pulled from the wall will see.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  return db;
}

/**
 * A schema migration. A plain string is taken as one an older release cannot run on. `keepsOlder`
 * marks an expanding one (a new table, a column with a default): releases from before it keep
 * running on the database, so a release that applied it can still be rolled back
 * (docs/operating.md, "Releases": expand, then contract).
 */
export type Migration = string | { sql: string; keepsOlder: true };

/** What migrate() did: `deferred` counts migrations held back until the release is committed. */
export interface MigrationOutcome {
  version: number;
  applied: number;
  deferred: number;
  /** The database is newer than this software and was opened because its newer migrations all keep older releases running. */
  newerKept: boolean;
}

const sqlOf = (m: Migration) => (typeof m === 'string' ? m : m.sql);
const keepsOlder = (m: Migration) => typeof m !== 'string' && m.keepsOlder;

/**
 * Applies the migrations the database lacks, recording in `schema_compat` the fewest migrations a
 * release must know to run on it. A database newer than this software is opened when that floor
 * allows (a rollback after an expanding migration), refused otherwise. `deferBreaking` (a release
 * on trial): stops before the first migration that would strand the release it would roll back to.
 */
export function migrate(db: Database.Database, migrations: readonly Migration[], opts: { deferBreaking?: boolean } = {}): MigrationOutcome {
  const current = db.pragma('user_version', { simple: true }) as number;
  const hasCompat = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_compat'").get() !== undefined;
  const floorNow = hasCompat ? (db.prepare('SELECT oldest_reader FROM schema_compat WHERE id = 1').pluck().get() as number | undefined) ?? current : current;
  if (current > migrations.length) {
    if (floorNow <= migrations.length) return { version: current, applied: 0, deferred: 0, newerKept: true };
    throw new Error(
      `database schema version ${current} is newer than this software (${migrations.length}) and needs software that knows at least ${floorNow} migrations; upgrade venue-gateway`,
    );
  }
  let floor = floorNow;
  let applied = 0;
  for (let v = current; v < migrations.length; v++) {
    const m = migrations[v];
    // A new database strands no one: only a release's own data waits for its commit.
    if (opts.deferBreaking && current > 0 && !keepsOlder(m)) break;
    if (!keepsOlder(m)) floor = v + 1;
    db.transaction(() => {
      db.exec(sqlOf(m));
      db.exec('CREATE TABLE IF NOT EXISTS schema_compat (id INTEGER PRIMARY KEY CHECK (id = 1), oldest_reader INTEGER NOT NULL)');
      db.prepare('INSERT INTO schema_compat VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET oldest_reader = excluded.oldest_reader').run(floor);
      db.pragma(`user_version = ${v + 1}`);
    })();
    applied++;
  }
  return { version: current + applied, applied, deferred: migrations.length - current - applied, newerKept: false };
}
