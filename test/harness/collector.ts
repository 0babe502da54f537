// A collector for tests, in the test process, on the harness's broker.
import type Database from 'better-sqlite3';
import { Collector, CollectorDb, GatewayRegistry } from '../../collector/index.js';
import type { RegistrationRecord } from '../../core/trust/index.js';
import { createLogger } from '../../core/log/index.js';
import type { BrokerOptions } from '../../core/mqtt/index.js';
import { TEST_BACKEND } from './identity.js';

export function testBroker(url: string, clientId: string): BrokerOptions {
  return { url, clientId, keepaliveS: 30, connectTimeoutS: 5, reconnectS: 0.5 };
}

/** A collector that verifies batches against `records` (the gateways' registration records). */
export async function startCollector(
  url: string, clientId: string, prefix: string, dbPath: string, records: RegistrationRecord[], shareGroup?: string, bluetraceKey?: Buffer,
): Promise<Collector> {
  const registry = new GatewayRegistry(undefined, records);
  const collector = new Collector({ broker: testBroker(url, clientId), prefix, database: dbPath, shareGroup, registry, bluetraceKey, control: TEST_BACKEND }, createLogger('silent'));
  await collector.start();
  return collector;
}

/** The SQLite handle of a collector started on a file (for tests that read its rows). */
export function collectorSqlite(collector: Collector): Database.Database {
  if (!(collector.store instanceof CollectorDb)) throw new Error('this collector stores in PostgreSQL, not SQLite');
  return collector.store.db;
}
