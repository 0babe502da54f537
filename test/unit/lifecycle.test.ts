import { describe, expect, it } from 'vitest';
import { createLogger } from '../../core/log/index.js';
import { Controller, Lifecycle } from '../../daemon/lifecycle.js';

function concern(name: string, events: string[], fail: { start?: boolean; stop?: boolean } = {}): Lifecycle {
  return {
    name,
    start() {
      if (fail.start) throw new Error(`${name} cannot start`);
      events.push(`start ${name}`);
    },
    async stop() {
      await Promise.resolve();
      if (fail.stop) throw new Error(`${name} cannot stop`);
      events.push(`stop ${name}`);
    },
  };
}

describe('the daemon controller', () => {
  it('starts concerns in order and stops them in reverse', async () => {
    const events: string[] = [];
    const c = new Controller([concern('store', events), concern('uplink', events), concern('pipeline', events)], createLogger('silent'));
    c.start();
    await c.stop();
    expect(events).toEqual(['start store', 'start uplink', 'start pipeline', 'stop pipeline', 'stop uplink', 'stop store']);
    await c.stop(); // a second stop stops nothing twice
    expect(events).toHaveLength(6);
  });

  it('keeps stopping the rest when one concern fails to stop', async () => {
    const events: string[] = [];
    const c = new Controller([concern('store', events), concern('uplink', events, { stop: true }), concern('pipeline', events)], createLogger('silent'));
    c.start();
    await c.stop();
    expect(events).toEqual(['start store', 'start uplink', 'start pipeline', 'stop pipeline', 'stop store']);
  });

  it('stops what had started when a concern fails to start, and throws its error', async () => {
    const events: string[] = [];
    const c = new Controller([concern('store', events), concern('uplink', events), concern('radio', events, { start: true })], createLogger('silent'));
    expect(() => c.start()).toThrow('radio cannot start');
    await new Promise((r) => setTimeout(r, 10));
    expect(events).toEqual(['start store', 'start uplink', 'stop uplink', 'stop store']);
  });
});
