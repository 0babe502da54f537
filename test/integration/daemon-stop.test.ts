// How the daemon ends. A clean stop (systemctl stop, a unit swapped or retired) delivers what it
// closes at shutdown: it commits, cuts every stored encounter into a batch, sends it and waits a
// bounded time for the acknowledgement. A stray rejection or exception anywhere stops the daemon
// through its controller (the store's final commit) and exits non-zero with the cause logged.
import Database from 'better-sqlite3';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Collector } from '../../collector/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { collectorSqlite, startCollector } from '../harness/collector.js';
import { outboxPending } from '../harness/gateway-db.js';
import { provisionTestGateway } from '../harness/identity.js';
import { runVgw, spawnVgw, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-stop-');
const broker = useLocalBroker(dir);

/**
 * A gateway on a simulated crowd whose phones stay a simulated hour (so encounters are open when
 * it stops), committing once a minute and cutting batches only after an hour: each test stops
 * its daemon within seconds, so only the stop commits, cuts and sends.
 */
function gatewayConfig(name: string, prefix: string) {
  const identity = provisionTestGateway(dir, `gw-${name}`, `venue-${name}`);
  const config = writeJson(join(dir, `${name}.json`), {
    gateway: { id: `gw-${name}`, venue: `venue-${name}` },
    secretsFile: identity.secretsFile,
    broker: { url: broker().url, reconnectS: 0.5 },
    topicPrefix: prefix,
    radio: { simulated: { seed: 21, phones: 0, arrivalsPerMinute: 60, minDwellS: 3600, maxDwellS: 3600, speed: 20, anchor: Date.now() } },
    clock: { syncCheck: 'assume-synced' },
    store: { path: join(dir, `${name}.db`), checkpointS: 60 },
    uplink: { batchMaxAgeS: 3600 },
    health: { controlSocket: join(dir, `${name}.ctl`) },
  });
  const db = join(dir, `${name}.db`);
  return { identity, config, db };
}

const openEncounters = async (config: string) => {
  const r = await runVgw(['status', '-c', config, '--json']);
  if (r.status !== 0) return false;
  const open = (JSON.parse(r.stdout) as { counters: { encounters: { open: number } } }).counters.encounters.open;
  return open >= 5 ? open : false;
};

const count = (path: string, sql: string) => {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare(sql).pluck().get() as number;
  } finally {
    db.close();
  }
};

describe('a clean stop', () => {
  it('sends the encounters it closes at shutdown and waits for their acknowledgement', async () => {
    const prefix = 'stop-clean/v2';
    const g = gatewayConfig('clean', prefix);
    let collector: Collector | null = null;
    try {
      collector = await startCollector(broker().url, 'collector-clean', prefix, join(dir, 'clean-collector.db'), [g.identity.record]);
      const daemon = spawnVgw(['run', '-c', g.config]);
      const open = await waitFor('encounters open on the gateway', () => openEncounters(g.config), 30_000).catch((err: Error) => {
        throw new Error(`${err.message}\n${daemon.output()}`);
      });
      expect(await stopGracefully(daemon), daemon.output()).toBe(0);
      // Nothing was cut before the stop: whatever the collector has, the stop sent.
      const stored = count(g.db, 'SELECT count(*) FROM encounters');
      expect(stored).toBeGreaterThanOrEqual(open);
      const gw = new Database(g.db, { readonly: true });
      expect(outboxPending(gw)).toBe(0);
      gw.close();
      expect(collectorSqlite(collector).prepare('SELECT count(*) FROM encounters').pluck().get()).toBe(stored);
      expect(daemon.output()).toMatch(/outbox empty: everything stored has been acknowledged/);
    } finally {
      await collector?.stop();
    }
  });

  it('with no backend to answer, stops within its bound and keeps the batches for the next start', async () => {
    const g = gatewayConfig('unanswered', 'stop-unanswered/v2');
    const daemon = spawnVgw(['run', '-c', g.config]);
    await waitFor('encounters open on the gateway', () => openEncounters(g.config), 30_000);
    // 0, not 1: the run command's own deadline (15 s) did not have to cut the stop short
    expect(await stopGracefully(daemon), daemon.output()).toBe(0);
    const gw = new Database(g.db, { readonly: true });
    const stored = gw.prepare('SELECT count(*) FROM encounters').pluck().get() as number;
    expect(stored).toBeGreaterThanOrEqual(5);
    // all cut into batches, none acknowledged, none lost: they go out at the next start
    const inUnacked = gw.prepare('SELECT coalesce(sum(last_id - first_id + 1), 0) FROM batches WHERE acked_at IS NULL').pluck().get();
    expect(inUnacked).toBe(stored);
    gw.close();
    expect(daemon.output()).toMatch(/stopping with batches not yet acknowledged; they are sent at the next start/);
  });
});

describe('a stray error at run time', () => {
  // Loaded into the daemon by NODE_OPTIONS: on SIGUSR2 it rejects a promise nobody awaits, or
  // throws from a timer, as a radio callback or a library might.
  const preload = join(dir, 'stray.mjs');
  writeFileSync(preload, `
process.on('SIGUSR2', () => {
  if (process.env.STRAY === 'rejection') Promise.reject(new Error('stray rejection from the test'));
  else setImmediate(() => { throw new Error('stray exception from the test'); });
});
`);

  for (const kind of ['rejection', 'exception'] as const) {
    it(`an unhandled ${kind} stops the daemon with its final commit, exit 1, the cause logged`, async () => {
      const g = gatewayConfig(`stray-${kind}`, `stray-${kind}/v2`);
      const daemon = spawnVgw(['run', '-c', g.config], { ...process.env, NODE_OPTIONS: `--import ${preload}`, STRAY: kind });
      const open = await waitFor('encounters open on the gateway', () => openEncounters(g.config), 30_000).catch((err: Error) => {
        throw new Error(`${err.message}\n${daemon.output()}`);
      });
      daemon.proc.kill('SIGUSR2');
      expect(await daemon.exited(), daemon.output()).toBe(1);
      const fatal = daemon.output().split('\n').filter((l) => l.includes('"level":60')).map((l) => JSON.parse(l) as { msg: string; err: { message: string } });
      expect(fatal).toHaveLength(1);
      expect(fatal[0].msg).toBe(kind === 'rejection' ? 'unhandled rejection; stopping the daemon' : 'uncaught exception; stopping the daemon');
      expect(fatal[0].err.message).toBe(`stray ${kind} from the test`);
      // the first periodic commit is a minute away: only the stop's own commits can have written these
      expect(count(g.db, 'SELECT count(*) FROM encounters')).toBeGreaterThanOrEqual(open);
      expect(daemon.output()).toMatch(/daemon stopped/);
    });
  }
});
