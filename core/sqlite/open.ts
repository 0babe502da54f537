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

export function migrate(db: Database.Database, migrations: readonly string[]): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    throw new Error(
      `database schema version ${current} is newer than this software (${migrations.length}); upgrade venue-gateway`,
    );
  }
  for (let v = current; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v]);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
