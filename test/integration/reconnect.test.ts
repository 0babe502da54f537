// A long-lived client against a real Mosquitto that goes away: its attempts back off (the window
// doubles up to the cap) instead of hammering at a fixed period, and it is back once the broker is.
import { describe, expect, it } from 'vitest';
import { connectClient } from '../../core/mqtt/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { sleep, waitFor } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-reconnect-');
const broker = useLocalBroker(dir);

describe('jittered reconnects', () => {
  it('back off while the broker is down, and reconnect once it is back', async () => {
    const client = connectClient({ url: broker().url, clientId: 'reconnect-test', keepaliveS: 30, connectTimeoutS: 2, reconnectS: 0.1, reconnectMaxS: 1.6 });
    await waitFor('connected', () => client.connected, 10_000);
    let closes = 0;
    client.on('close', () => closes++);
    await broker().stop();
    await sleep(6000);
    // A fixed 100 ms period makes ~60 attempts in 6 s. Full jitter draws each delay uniformly in
    // windows of 0.1, 0.2, 0.4, 0.8, then 1.6 s: the first four take ≤ 1.5 s, then a capped delay
    // averages 0.8 s (sd 0.46), so 6 s hold 1 (the loss) + 4 + ~6 ≈ 11 closes, 18 at 4 sd; and at
    // least 4, since no delay exceeds 1.6 s. (A first bound of 11 took the cap for the mean.)
    expect(closes).toBeGreaterThanOrEqual(4);
    expect(closes).toBeLessThanOrEqual(18);
    await broker().restart();
    const back = Date.now();
    await waitFor('reconnected', () => client.connected, 10_000);
    // the next attempt falls within one capped window (1.6 s), with room for a loaded machine
    expect(Date.now() - back).toBeLessThan(1600 + 3000);
    await new Promise<void>((resolve) => client.end(false, () => resolve()));
    const closesAtEnd = closes;
    await sleep(2000);
    expect(client.connected).toBe(false);
    expect(closes).toBe(closesAtEnd); // ended: no attempt after end()
  }, 30_000);
});
