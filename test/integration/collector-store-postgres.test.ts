// The CollectorStore contract on PostgreSQL (a real server, a new database per test).
import { PostgresCollectorStore } from '../../collector/index.js';
import { collectorStoreContract } from '../harness/collector-store-contract.js';
import { usePostgres } from '../harness/postgres.js';

const postgres = usePostgres();

collectorStoreContract('PostgreSQL', () => ({
  open: async () => PostgresCollectorStore.open(await postgres().database('contract')),
  setReceivedAt: async (store, at) => {
    if (!(store instanceof PostgresCollectorStore)) throw new Error('not the PostgreSQL store');
    await store.pool.query('UPDATE batches SET received_at = $1', [at]);
  },
}));
