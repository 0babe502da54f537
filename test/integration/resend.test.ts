// Re-sends of unacknowledged batches keep the jitter protocol.md promises (±20 % around the
// backoff), so a fleet that lost its backend together does not re-send together: a daemon with
// no collector behind the broker, and a listener that notes when each batch id goes out.
import mqtt from 'mqtt';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeBatch, gatewayTopics } from '../../core/wire/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { provisionTestGateway } from '../harness/identity.js';
import { spawnVgw, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-resend-');
const broker = useLocalBroker(dir);
const prefix = 'resend/v2';
const RESEND_INITIAL_S = 1;

describe('re-sends', () => {
  it('the first re-send of each batch comes at its own moment within ±20 % of resendInitialS', async () => {
    const identity = provisionTestGateway(dir, 'gw-resend', 'venue-r');
    const topics = gatewayTopics(prefix, 'venue-r', 'gw-resend');
    const listener = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'resend-listener' });
    const sent = new Map<string, number[]>();
    listener.on('message', (_topic, payload) => {
      const id = decodeBatch(payload).id;
      sent.set(id, [...(sent.get(id) ?? []), performance.now()]);
    });
    await listener.subscribeAsync(topics.batch, { qos: 1 });
    const config = writeJson(join(dir, 'gateway.json'), {
      gateway: { id: 'gw-resend', venue: 'venue-r' },
      secretsFile: identity.secretsFile,
      broker: { url: broker().url, reconnectS: 0.3 },
      topicPrefix: prefix,
      radio: { simulated: { seed: 3, phones: 0, arrivalsPerMinute: 120, minDwellS: 5, maxDwellS: 20, speed: 40, anchor: Date.now() } },
      clock: { syncCheck: 'assume-synced' },
      encounters: { silenceS: 5 },
      store: { path: join(dir, 'gateway.db'), checkpointS: 0.25 },
      health: { controlSocket: join(dir, 'gateway.sock') },
      uplink: { batchMaxEncounters: 2, batchMaxAgeS: 0.3, resendInitialS: RESEND_INITIAL_S, resendMaxS: 60, statusIntervalS: 30 },
    });
    const daemon = spawnVgw(['run', '-c', config]);
    try {
      // Nobody acknowledges: the first eight batches (uplink.maxInflightBatches) go out again and again.
      const resent = () => [...sent.values()].filter((times) => times.length >= 2);
      await waitFor('eight batches sent twice', () => resent().length >= 8, 60_000).catch((err: Error) => {
        throw new Error(`${err.message} (${sent.size} batches seen)\n${daemon.output()}`);
      });
      const firstResendS = resent().map((times) => (times[1] - times[0]) / 1000);
      // A broker hop on loopback adds milliseconds; the scheduler's own granularity adds none.
      for (const d of firstResendS) {
        expect(d).toBeGreaterThanOrEqual(0.8 * RESEND_INITIAL_S - 0.05);
        expect(d).toBeLessThanOrEqual(1.2 * RESEND_INITIAL_S + 0.15);
      }
      // Jittered, not in lock-step: eight draws from a 0.4 s window spread well beyond 0.1 s.
      expect(Math.max(...firstResendS) - Math.min(...firstResendS)).toBeGreaterThan(0.1);
    } finally {
      await listener.endAsync();
      expect(await stopGracefully(daemon)).toBe(0);
    }
  });
});
