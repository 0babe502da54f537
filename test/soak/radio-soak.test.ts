// `make soak` (not part of `make test`): the daemon with noble on the virtual controller under an
// endless crowd for VGW_SOAK_MINUTES (default 10): it stays up, encounters keep reaching the
// collector, noble's memory stays pruned and the daemon's RSS stays within bounds.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalBroker, VirtualController } from '../../simulators/index.js';
import { requestStatus } from '../../collector/pull.js';
import { collectorSqlite, startCollector, testBroker } from '../harness/collector.js';
import { gatewayKeyOf, provisionTestGateway, TEST_BACKEND } from '../harness/identity.js';
import { sleep, spawnVgw, stopGracefully, writeJson } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';

const minutes = Number(process.env.VGW_SOAK_MINUTES ?? 10);
const dir = tempDir('vgw-soak-');
let broker: LocalBroker;
beforeAll(async () => {
  broker = await LocalBroker.start(join(dir, 'broker'));
});
afterAll(async () => {
  await broker?.stop();
});

describe('soak', () => {
  it(`runs ${minutes} min with a busy entrance and stays healthy`, { timeout: (minutes + 3) * 60_000 }, async () => {
    const socketPath = join(dir, 'vc.sock');
    // 120 phones a minute, each in range 20-120 s: a busy mall entrance, address churn included.
    const vc = new VirtualController({ socketPath, crowd: { seed: 9, phones: 0, arrivalsPerMinute: 120, minDwellS: 20, maxDwellS: 120, anchor: Date.now() } });
    await vc.start();
    const prefix = 'soak/v1';
    const identity = provisionTestGateway(dir, 'gw-soak', 'venue-soak');
    const collector = await startCollector(broker.url, 'collector-soak', prefix, join(dir, 'collector.db'), [identity.record]);
    const config = writeJson(join(dir, 'gateway.json'), {
      gateway: { id: 'gw-soak', venue: 'venue-soak' },
      secretsFile: identity.secretsFile,
      broker: { url: broker.url },
      topicPrefix: prefix,
      radio: { kind: 'hci', scanner: { transport: `unix:${socketPath}`, pruneIntervalS: 60 } },
      encounters: { silenceS: 10 },
      store: { path: join(dir, 'gateway.db') },
      uplink: { batchMaxAgeS: 5 },
    });
    const daemon = spawnVgw(['run', '-c', config]);
    const rss: number[] = [];
    const stored: number[] = [];
    for (let m = 0; m < minutes; m++) {
      await sleep(60_000);
      const status = await requestStatus({ control: TEST_BACKEND, broker: testBroker(broker.url, `soak-probe-${m}`), prefix, venue: 'venue-soak', gateway: 'gw-soak', timeoutMs: 10_000, gatewayKeys: [gatewayKeyOf(identity)] });
      const c = status.counters as { radio: { state: string; rememberedAddresses: number }; store: { encountersStored: number } };
      expect(c.radio.state).toBe('poweredOn');
      expect(c.radio.rememberedAddresses).toBeLessThan(1000); // pruned: two minutes of addresses at most
      stored.push(c.store.encountersStored);
      rss.push(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${daemon.proc.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024);
      console.log(`soak minute ${m + 1}: stored ${c.store.encountersStored}, RSS ${rss[rss.length - 1].toFixed(0)} MB`);
    }
    expect(daemon.proc.exitCode).toBeNull();
    for (let i = 1; i < stored.length; i++) expect(stored[i]).toBeGreaterThan(stored[i - 1]);
    // after the first minutes' warm-up, RSS stays within 50 MB of its level
    if (rss.length >= 4) expect(Math.max(...rss.slice(2)) - Math.min(...rss.slice(2))).toBeLessThan(50);
    expect(await stopGracefully(daemon)).toBe(0);
    const atCollector = collectorSqlite(collector).prepare('SELECT count(*) FROM encounters').pluck().get() as number;
    expect(atCollector).toBeGreaterThan(0);
    await collector.stop();
    await vc.stop();
  });
});
