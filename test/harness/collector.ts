// A collector for tests, in the test process, on the harness's broker.
import { Collector } from '../../collector/index.js';
import { createLogger } from '../../daemon/log/index.js';
import type { BrokerOptions } from '../../daemon/uplink/index.js';

export function testBroker(url: string, clientId: string): BrokerOptions {
  return { url, clientId, keepaliveS: 30, connectTimeoutS: 5, reconnectS: 0.5 };
}

export async function startCollector(url: string, clientId: string, prefix: string, dbPath: string, shareGroup?: string): Promise<Collector> {
  const collector = new Collector({ broker: testBroker(url, clientId), prefix, dbPath, shareGroup }, createLogger('silent'));
  await collector.start();
  return collector;
}
