// Opens the store `collector.database` names: a postgres:// URL, or an SQLite file.
import { CollectorDb } from './database.js';
import { PostgresCollectorStore, type PostgresStoreOptions } from './postgres.js';
import { type CollectorStore, describeDatabase, isPostgresUrl } from './store.js';

export async function openCollectorStore(database: string, options: PostgresStoreOptions = {}): Promise<CollectorStore> {
  if (!isPostgresUrl(database)) return new CollectorDb(database);
  try {
    return await PostgresCollectorStore.open(database, options);
  } catch (err) {
    throw new Error(`collector.database: cannot use ${describeDatabase(database)} (${(err as Error).message}): check that the server runs, the URL and the user's rights`);
  }
}
