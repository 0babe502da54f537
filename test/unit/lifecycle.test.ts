import Database from 'better-sqlite3';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../core/log/index.js';
import { Controller, Lifecycle } from '../../daemon/lifecycle.js';
import { Store } from '../../daemon/store/index.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-lifecycle-');

/** A concern whose start and stop both take a turn of the event loop, as real ones do. */
function concern(name: string, events: string[], fail: { start?: boolean; stop?: boolean } = {}): Lifecycle {
  return {
    name,
    async start() {
      await new Promise((r) => setImmediate(r));
      if (fail.start) throw new Error(`${name} cannot start`);
      events.push(`start ${name}`);
    },
    async stop() {
      await new Promise((r) => setImmediate(r));
      if (fail.stop) throw new Error(`${name} cannot stop`);
      events.push(`stop ${name}`);
    },
  };
}

describe('the daemon controller', () => {
  it('starts concerns in order, each after the previous one has started, and stops them in reverse', async () => {
    const events: string[] = [];
    const c = new Controller([concern('store', events), concern('uplink', events), concern('pipeline', events)], createLogger('silent'));
    await c.start();
    await c.stop();
    expect(events).toEqual(['start store', 'start uplink', 'start pipeline', 'stop pipeline', 'stop uplink', 'stop store']);
    await c.stop(); // a second stop stops nothing twice
    expect(events).toHaveLength(6);
  });

  it('keeps stopping the rest when one concern fails to stop', async () => {
    const events: string[] = [];
    const c = new Controller([concern('store', events), concern('uplink', events, { stop: true }), concern('pipeline', events)], createLogger('silent'));
    await c.start();
    await c.stop();
    expect(events).toEqual(['start store', 'start uplink', 'start pipeline', 'stop pipeline', 'stop store']);
  });

  it('stops what had started when a concern fails to start, and only then throws its error', async () => {
    const events: string[] = [];
    const c = new Controller([concern('store', events), concern('uplink', events), concern('radio', events, { start: true })], createLogger('silent'));
    await expect(c.start()).rejects.toThrow('radio cannot start');
    // no waiting: the rollback was awaited before the start rejected
    expect(events).toEqual(['start store', 'start uplink', 'stop uplink', 'stop store']);
  });

  it('a stop that comes while the stop of a fatal error runs waits for the same stop', async () => {
    const events: string[] = [];
    const c = new Controller([concern('store', events), concern('uplink', events)], createLogger('silent'));
    await c.start();
    await Promise.all([c.stop(), c.stop()]);
    expect(events).toEqual(['start store', 'start uplink', 'stop uplink', 'stop store']);
  });

  it("a failed start leaves the store's final commit on the disk before it throws", async () => {
    const path = join(dir, 'rollback.db');
    const store = new Store({
      path, commitIntervalMs: 3_600_000, retentionMs: 14 * 86_400_000, unackedMaxMs: 30 * 86_400_000, purgeBatchSize: 500,
      batchMaxEncounters: 256, batchMaxAgeMs: 30_000, maxPendingEncounters: 1000,
    });
    const t = Date.now();
    store.addEncounters([{
      protocol: 0, tempId: Buffer.alloc(16, 7), metadata: Buffer.alloc(4), firstSeen: t - 5000, lastSeen: t, count: 5,
      rssiMin: -70, rssiMax: -60, rssiSum: -325, rssiCount: 5, bucketMs: [0, 5000, 0, 0], clockSynced: true, closeReason: 'shutdown',
    }]);
    const events: string[] = [];
    const c = new Controller([
      { name: 'store', start: () => store.start(() => undefined), stop: () => store.close() },
      concern('uplink', events, { start: true }),
    ], createLogger('silent'));
    await expect(c.start()).rejects.toThrow('uplink cannot start');
    const db = new Database(path, { readonly: true });
    expect(db.prepare('SELECT count(*) FROM encounters').pluck().get()).toBe(1);
    db.close();
  });
});
