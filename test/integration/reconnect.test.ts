// A long-lived client against a real Mosquitto that goes away, its reconnect timer on fake time:
// each attempt comes exactly when full jitter says (the window doubles up to the cap, here at
// the middle of each window), none before; it is back once the broker is; none after end().
import { describe, expect, it } from 'vitest';
import { connectClient } from '../../core/mqtt/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { FakeTimers } from '../harness/fake-timers.js';
import { waitFor } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-reconnect-');
const broker = useLocalBroker(dir);

describe('jittered reconnects', () => {
  it('back off while the broker is down, each attempt at its drawn moment, and reconnect once it is back', async () => {
    const timers = new FakeTimers(Date.now());
    const client = connectClient(
      { url: broker().url, clientId: 'reconnect-test', keepaliveS: 30, connectTimeoutS: 2, reconnectS: 0.1, reconnectMaxS: 1.6 },
      undefined,
      { random: () => 0.5, timers },
    );
    await waitFor('connected', () => client.connected, 10_000);
    let closes = 0;
    client.on('close', () => closes++);
    await broker().stop();
    await waitFor('the loss noticed', () => closes === 1, 10_000);
    // windows of 0.1, 0.2, 0.4, 0.8 s, then 1.6 s (the cap): half of each
    for (const delay of [50, 100, 200, 400, 800, 800, 800]) {
      const before = closes;
      timers.advance(delay - 1);
      expect(timers.count, 'one attempt waiting, not yet due').toBe(1);
      timers.advance(1);
      // the attempt goes out now, and fails: the broker is down
      await waitFor(`the attempt after ${delay} ms refused`, () => closes === before + 1, 10_000);
    }
    await broker().restart();
    timers.advance(800);
    await waitFor('reconnected', () => client.connected, 10_000);
    await new Promise<void>((resolve) => client.end(false, () => resolve()));
    timers.advance(60_000);
    expect(timers.count).toBe(0); // ended: nothing scheduled, no attempt after end()
    expect(client.connected).toBe(false);
  }, 60_000);
});
