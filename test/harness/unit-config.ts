// The config of a unit that a test drives over its broker: an endless simulated crowd, a clock
// taken as synchronised, its database and control socket in the test's folder, named after it.
import { join } from 'node:path';
import type { TestIdentity } from './identity.js';
import { writeJson } from './processes.js';

export interface UnitConfig {
  config: string;
  db: string;
}

export function simulatedUnitConfig(o: { dir: string; identity: TestIdentity; brokerUrl: string; prefix: string; seed: number; extra?: Record<string, unknown> }): UnitConfig {
  const { gateway, venue } = o.identity.record;
  const db = join(o.dir, `${gateway}.db`);
  const config = writeJson(join(o.dir, `${gateway}.json`), {
    gateway: { id: gateway, venue },
    secretsFile: o.identity.secretsFile,
    broker: { url: o.brokerUrl, reconnectS: 0.3 },
    topicPrefix: o.prefix,
    radio: { simulated: { seed: o.seed, phones: 0, arrivalsPerMinute: 120, minDwellS: 10, maxDwellS: 30, speed: 40, anchor: Date.now() } },
    clock: { syncCheck: 'assume-synced' },
    store: { path: db, checkpointS: 0.25 },
    health: { controlSocket: join(o.dir, `${gateway}.sock`) },
    ...o.extra,
  });
  return { config, db };
}
