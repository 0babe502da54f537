// The health check tells a load balancer or systemd the truth about the database: once the
// collector's database stops answering, commits fail, nothing is acknowledged, and /healthz says
// 503 with why — the metrics count the failed commit.
import { join } from 'node:path';
import mqtt from 'mqtt';
import { ulid } from 'ulid';
import { describe, expect, it } from 'vitest';
import { Collector, CollectorHttp } from '../../collector/index.js';
import { createLogger } from '../../core/log/index.js';
import { encodeBatch, gatewayTopics } from '../../core/wire/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { sampleEncounter } from '../harness/encounters.js';
import { collectorSqlite, testBroker } from '../harness/collector.js';
import { waitFor } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';
import { ackedIds, TEST_BACKEND } from '../harness/identity.js';

const dir = tempDir('vgw-health-');
const broker = useLocalBroker(dir);
const prefix = 'health/v2';

describe('collector health', () => {
  it('is 200 while commits succeed and 503 once the database fails, naming it; a failed commit acknowledges nothing', async () => {
    const log = createLogger('silent');
    const collector = new Collector({ control: TEST_BACKEND, broker: testBroker(broker().url, 'health-collector'), prefix, database: join(dir, 'c.db'), registry: null }, log);
    const http = new CollectorHttp(collector, { host: '127.0.0.1', port: 0 }, log);
    await http.start();
    await collector.start();
    const health = async () => {
      const res = await fetch(`http://127.0.0.1:${http.port}/healthz`);
      return { status: res.status, body: await res.json() };
    };
    const topics = gatewayTopics(prefix, 'v', 'gw');
    const client = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'health-gw' });
    const acks: string[] = [];
    await client.subscribeAsync(topics.ack, { qos: 1 });
    client.on('message', (_t, p) => acks.push(...ackedIds(p)));
    const life = ulid();
    const now = Math.floor(Date.now() / 1000) * 1000;
    const send = async (seq: number) => {
      const id = ulid();
      await client.publishAsync(topics.batch, encodeBatch({ kind: 'batch', id, gateway: 'gw', venue: 'v', life, seq, createdAt: now }, [sampleEncounter(seq, now)]), { qos: 1 });
      return id;
    };

    const first = await send(1);
    await waitFor('the first batch acknowledged', () => acks.includes(first), 10_000);
    const ok = await health();
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ healthy: true, broker: { connected: true }, database: { kind: 'sqlite', ok: true }, lastCommit: { ok: true } });

    // the database goes away under the running collector (as a failed disk would take it)
    collectorSqlite(collector).close();
    const second = await send(2);
    const bad = await waitFor('unhealthy', async () => {
      const h = await health();
      return h.status === 503 && h.body.lastCommit?.ok === false && h.body;
    }, 10_000);
    expect(bad).toMatchObject({ healthy: false, broker: { connected: true }, database: { ok: false, error: expect.stringMatching(/not open/) }, lastCommit: { ok: false } });
    expect(acks).not.toContain(second);
    const metrics = await (await fetch(`http://127.0.0.1:${http.port}/metrics`)).text();
    expect(metrics).toMatch(/^vgw_collector_db_commit_failures_total 1$/m);
    await client.endAsync();
    await http.stop();
    await collector.stop();
  });
});
