// The CollectorStore contract on the collector's SQLite file.
import { join } from 'node:path';
import { CollectorDb } from '../../collector/index.js';
import { collectorStoreContract } from '../harness/collector-store-contract.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-sqlite-store-');
let n = 0;

collectorStoreContract('SQLite', () => ({
  open: () => Promise.resolve(new CollectorDb(join(dir, `c${n++}.db`))),
  setReceivedAt: (store, at) => {
    if (!(store instanceof CollectorDb)) throw new Error('not the SQLite store');
    store.db.prepare('UPDATE batches SET received_at = ?').run(at);
    return Promise.resolve();
  },
}));
