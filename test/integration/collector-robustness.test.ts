// What a red team did to the collector, each now met: a flood of junk batches becomes one log
// line per kind a minute (with a count), not a line each; a status carrying terminal escapes or
// megabytes reaches neither the operator's terminal nor the fleet view's memory; a frozen
// PostgreSQL makes /healthz answer 503 naming the database instead of hanging.
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { Collector, CollectorHttp } from '../../collector/index.js';
import { gatewayTopics, signUnitMessage } from '../../core/wire/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { testBroker } from '../harness/collector.js';
import { usePostgres } from '../harness/postgres.js';
import { runVgw, waitFor } from '../harness/processes.js';
import { metric } from '../harness/metrics.js';
import { tempDir } from '../harness/tmp.js';
import { TEST_BACKEND, testGatewayKey } from '../harness/identity.js';

const dir = tempDir('vgw-robust-');
const broker = useLocalBroker(dir);
const postgres = usePostgres();

/** A logger at info level whose JSON lines the test reads. */
function capturedLog() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.startsWith('{')) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

describe('the collector under junk', () => {
  it('logs a flood of refused batches as one line per kind a minute, and counts every one', async () => {
    const { log, lines } = capturedLog();
    const prefix = 'junk/v2';
    const collector = new Collector({ control: TEST_BACKEND, broker: testBroker(broker().url, 'junk-collector'), prefix, database: join(dir, 'junk.db'), registry: null }, log);
    const http = new CollectorHttp(collector, { host: '127.0.0.1', port: 0 }, log);
    await http.start();
    await collector.start();
    const junk = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'junk-sender' });
    const topic = gatewayTopics(prefix, 'v', 'gw').batch;
    for (let i = 0; i < 500; i++) await junk.publishAsync(topic, Buffer.from(`not cbor ${i}`), { qos: 1 });
    const metrics = async () => (await fetch(`http://127.0.0.1:${http.port}/metrics`)).text();
    await waitFor('500 refusals counted', async () => metric(await metrics(), 'vgw_collector_refusals_total{reason="malformed"}') === 500, 20_000);
    expect(lines.filter((l) => l.msg === 'batch refused')).toHaveLength(1);
    expect(lines.find((l) => l.msg === 'batch refused')).toMatchObject({ code: 'malformed', reason: expect.any(String) });
    await junk.endAsync();
    await http.stop();
    await collector.stop();
    // what was held back is summed up in one line when the collector stops
    expect(lines.filter((l) => String(l.msg).startsWith('batch refused'))).toHaveLength(2);
    expect(lines.find((l) => l.msg === 'batch refused (repeated 499 more times)')).toMatchObject({ repeated: 499 });
  });

  it("keeps no status over 64 KiB, and neither the fleet table nor its JSON carries a gateway's control characters", async () => {
    const { log, lines } = capturedLog();
    const prefix = 'statuses/v2';
    const database = join(dir, 'statuses.db');
    const collector = new Collector({ control: TEST_BACKEND, broker: testBroker(broker().url, 'status-collector'), prefix, database, registry: null }, log);
    await collector.start();
    const gw = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'status-sender' });
    const doc = (gateway: string, radio: string) =>
      signUnitMessage(testGatewayKey(2), { v: 3, state: 'online', gateway, venue: 'v', startedAt: 0, at: 0, counters: { radio: { state: radio }, clock: { synchronized: true, source: '\u001b[31mred' } } });
    const osc = '\u001b]0;owned\u0007poweredOn\u009b2J';
    await gw.publishAsync(gatewayTopics(prefix, 'v', 'gw-osc').status, doc('gw-osc', osc), { qos: 1 });
    await gw.publishAsync(gatewayTopics(prefix, 'v', 'gw-huge').status, doc('gw-huge', 'x'.repeat(5_000_000)), { qos: 1 });
    await waitFor('the oversized status refused', () => lines.find((l) => l.msg === 'status larger than 65536 bytes: ignored'), 10_000);
    await gw.endAsync();
    await collector.stop(); // writes the statuses it kept
    // and one an older collector kept: 5 MB in one field
    const db = new Database(database);
    db.prepare('INSERT INTO gateway_status (gateway, venue, state, reason, since, received_at, document) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run('gw-old', 'v', 'online', null, Date.now(), Date.now(), doc('gw-old', 'y'.repeat(5_000_000)));
    db.close();

    const table = await runVgw(['fleet', '--db', database]);
    expect(table.status, table.stderr).toBe(0);
    // eslint-disable-next-line no-control-regex -- control characters are what the table must not hold
    expect(table.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    expect(Math.max(...table.stdout.split('\n').map((l) => l.length))).toBeLessThan(400);
    expect(table.stdout).toMatch(/^gw-osc\s+v\s+online\s.*\ufffd\]0;owned\ufffdpoweredOn\ufffd2J/m);
    expect(table.stdout).not.toMatch(/^gw-huge/m);
    const json = await runVgw(['fleet', '--db', database, '--json']);
    const rows = (JSON.parse(json.stdout) as { gateways: Array<{ gateway: string; radio: string | null; clock: { source: string } | null }> }).gateways;
    const byId = new Map(rows.map((r) => [r.gateway, r]));
    expect(byId.get('gw-osc')).toMatchObject({ radio: '\ufffd]0;owned\ufffdpoweredOn\ufffd2J', clock: { source: '\ufffd[31mred' } });
    expect(byId.get('gw-old')).toMatchObject({ radio: null }); // its document is over the cap: shown as its state alone
  });
});

describe('the collector on a frozen PostgreSQL', () => {
  it('answers /healthz with 503 naming the database, instead of hanging', async () => {
    const pg = postgres();
    const database = await pg.database('frozen');
    const { log } = capturedLog();
    const collector = new Collector({ control: TEST_BACKEND, broker: testBroker(broker().url, 'frozen-collector'), prefix: 'frozen/v2', database, registry: null }, log);
    const http = new CollectorHttp(collector, { host: '127.0.0.1', port: 0 }, log);
    await http.start();
    await collector.start();
    const health = async () => {
      // the red team's probe hung for more than 5 s; the collector's own deadline is 1.5 s
      const res = await fetch(`http://127.0.0.1:${http.port}/healthz`, { signal: AbortSignal.timeout(5000) });
      return { status: res.status, body: (await res.json()) as { healthy: boolean; database: { ok: boolean; error: string | null } } };
    };
    expect((await health()).status).toBe(200);
    pg.server.freeze();
    try {
      const frozen = await health();
      expect(frozen.status).toBe(503);
      expect(frozen.body.database).toEqual({ kind: 'postgres', ok: false, error: expect.stringMatching(/^postgres:\/\/vgw@127\.0\.0\.1:\d+\/frozen_\d+ did not answer within 1500 ms$/) });
    } finally {
      pg.server.thaw();
    }
    await waitFor('healthy again once it thaws', async () => (await health()).status === 200, 20_000);
    await http.stop();
    await collector.stop();
  });
});
