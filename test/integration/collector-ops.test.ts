// The collector as operations see it: a real `vgw collect` process (its config, its HTTP server),
// simulated gateways with real sessions and statuses, and hand-made batches that are refused for
// each reason or leave a sequence gap. The metrics, the health check, /api/fleet and `vgw fleet`
// are checked against the database the collector wrote and against what was sent.
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { ulid } from 'ulid';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../core/log/index.js';
import { newIdentity, signBytes, signingKeyFromSeed } from '../../core/trust/index.js';
import { encodeBatch, gatewayTopics } from '../../core/wire/index.js';
import { FleetSim } from '../../simulators/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { sampleEncounter } from '../harness/encounters.js';
import { runVgw, sleep, spawnVgw, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { metric } from '../harness/metrics.js';
import { tempDir } from '../harness/tmp.js';
import { TEST_BACKEND, testBackendKeyFile } from '../harness/identity.js';
import { softwareVersion } from '../../core/software/index.js';

const dir = tempDir('vgw-ops-');
const broker = useLocalBroker(dir);
const prefix = 'ops/v2';

describe('collector operations: metrics, health, the fleet', () => {
  it('counts what it stores and refuses by reason, reports gateways online, offline and with missing batches, and says when it is unhealthy', async () => {
    const log = createLogger('error');
    const fleet = new FleetSim(
      { backendKeys: [TEST_BACKEND.key.publicKey], brokerUrl: broker().url, prefix, gateways: 5, speed: 400, seed: 9, rampS: 0.5, commitIntervalS: 1, batchMaxAgeS: 1, batchMaxEncounters: 32, statusIntervalS: 1, resendInitialS: 1, resendMaxS: 4, reconnectS: 0.3, reconnectMaxS: 2 },
      log,
    );
    // a gateway of our own, to send batches by hand
    const hand = newIdentity({ gateway: 'hand-gw', venue: 'hand-venue', beacon: { exponent: 10, epochS: 0, txPowerDbm: -20 } });
    const handKey = signingKeyFromSeed(Buffer.from(hand.secrets.signingKey, 'hex'));
    const impostor = newIdentity({ gateway: 'hand-gw', venue: 'hand-venue', beacon: { exponent: 10, epochS: 0, txPowerDbm: -20 } });
    const impostorKey = signingKeyFromSeed(Buffer.from(impostor.secrets.signingKey, 'hex'));
    const registry = writeJson(join(dir, 'registry.json'), [...fleet.records, hand.record]);
    const database = join(dir, 'collector.db');
    const config = writeJson(join(dir, 'collector.json'), {
      broker: { url: broker().url, reconnectS: 0.3, reconnectMaxS: 1 }, topicPrefix: prefix, log: { level: 'info' },
      collector: { controlKeyFile: testBackendKeyFile(dir), database, registry, http: { port: 0 } },
    });
    const collector = spawnVgw(['collect', '-c', config]);
    const base = await waitFor('the collector http url', () => /"url":"(http:\/\/127\.0\.0\.1:\d+\/)"/.exec(collector.output())?.[1], 30_000);
    const get = async (path: string, init?: RequestInit) => {
      const res = await fetch(base + path, init);
      return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
    };
    await waitFor('the collector connected', async () => JSON.parse((await get('healthz')).body).broker.connected === true);

    await fleet.start();
    const life = ulid();
    const now = Math.floor(Date.now() / 1000) * 1000; // the wire carries whole seconds
    const handTopics = gatewayTopics(prefix, 'hand-venue', 'hand-gw');
    const handBatch = (seq: number, ids: number[], key = handKey, gateway = 'hand-gw') =>
      encodeBatch(
        { kind: 'batch', id: ulid(), gateway, venue: 'hand-venue', life, seq, createdAt: now - 5000 },
        ids.map((i) => sampleEncounter(i, now - 120_000)),
        (data) => signBytes(key, data),
      );
    const client = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: `ops-hand-${process.pid}` });
    // seq 1 and 4 arrive: 2 and 3 are missing
    await client.publishAsync(handTopics.batch, handBatch(1, [1, 2, 3]), { qos: 1 });
    await client.publishAsync(handTopics.batch, handBatch(4, [10, 11]), { qos: 1 });
    // refused, one for each reason
    await client.publishAsync(handTopics.batch, Buffer.from('not cbor at all'), { qos: 1 }); // malformed
    await client.publishAsync(gatewayTopics(prefix, 'hand-venue', 'other-gw').batch, handBatch(5, [12]), { qos: 1 }); // wrong_topic
    await client.publishAsync(gatewayTopics(prefix, 'hand-venue', 'nobody').batch, handBatch(5, [12], handKey, 'nobody'), { qos: 1 }); // unregistered
    await client.publishAsync(handTopics.batch, handBatch(5, [12], impostorKey), { qos: 1 }); // bad_signature
    await sleep(500);
    await client.publishAsync(handTopics.batch, handBatch(1, [20]), { qos: 1 }); // out_of_sequence: seq 1 is held by another id
    await client.endAsync();

    await waitFor('traffic acknowledged', () => fleet.report().encountersAcked > 200, 60_000);
    // two gateways stop: their retained status says offline (stopped)
    const stopped = fleet.gateways.slice(3).map((g) => g.id);
    expect(await fleet.stopGateways(stopped)).toBe(true);
    // statuses are written every 2 s: wait until the database has both stops
    const api = await waitFor('both stops in the fleet view', async () => {
      const fleetNow = JSON.parse((await get('api/fleet')).body) as { summary: { offline: number } };
      return fleetNow.summary.offline === 2 && fleetNow;
    }, 20_000) as { summary: unknown; gateways: Array<{ gateway: string } & Record<string, any>> };
    const byId = new Map<string, Record<string, any>>(api.gateways.map((r: { gateway: string }) => [r.gateway, r]));
    // each version's count: the five that sent a status run this build; the one without says nothing
    expect(api.summary).toEqual({ gateways: 6, online: 3, offline: 2, unknown: 1, withMissingBatches: 1, versions: { [softwareVersion().version]: 5, unknown: 1 } });
    for (const id of stopped) expect(byId.get(id)).toMatchObject({ state: 'offline', reason: 'stopped', backlog: null });
    expect(api.gateways.slice(0, 2).map((r: { gateway: string }) => r.gateway).sort()).toEqual(stopped.sort());
    expect(byId.get('hand-gw')).toMatchObject({ state: 'unknown', venue: 'hand-venue', seqMissing: 2, lives: 1 });
    for (const g of fleet.gateways.slice(0, 3)) {
      expect(byId.get(g.id)).toMatchObject({ state: 'online', venue: g.venue, seqMissing: 0, clock: { synchronized: true, source: 'fleet-sim' }, radio: 'simulated', beacon: 'disabled' });
      expect(byId.get(g.id)!.backlog).toEqual({ pending: expect.any(Number), outboxBatches: expect.any(Number) });
      // what each runs: this build, and the simulator's settings as its configuration
      expect(byId.get(g.id)).toMatchObject({ software: `${softwareVersion().version} ${softwareVersion().commit}`, config: expect.stringMatching(/^sha256:[0-9a-f]{12} simulated$/) });
      expect(Date.parse(byId.get(g.id)!.since)).toBeLessThan(Date.now());
    }

    // the CLI reads the same fleet from the database
    const cli = await runVgw(['fleet', '--db', database, '--json']);
    expect(cli.status).toBe(0);
    const listed = JSON.parse(cli.stdout);
    expect(listed.summary).toEqual(api.summary);
    expect(listed.gateways.map((r: Record<string, unknown>) => [r.gateway, r.state, r.seqMissing])).toEqual(api.gateways.map((r: Record<string, unknown>) => [r.gateway, r.state, r.seqMissing]));
    const table = await runVgw(['fleet', '-c', config]);
    expect(table.stdout).toMatch(new RegExp(`^6 gateways: 3 online, 2 offline, 1 without a status; 1 with missing batches; software ${softwareVersion().version.replaceAll('.', '\\.')} ×5, unknown ×1$`, 'm'));
    expect(table.stdout).toMatch(/^GATEWAY\s+VENUE\s+STATE\s+SINCE\s+LAST BATCH\s+MISSING\s+BACKLOG\s+CLOCK\s+RADIO\s+BEACON\s+SOFTWARE\s+CONFIG$/m);
    expect(table.stdout).toContain(` ${softwareVersion().version} ${softwareVersion().commit}  sha256:`);
    expect(table.stdout).toMatch(new RegExp(`^${stopped[0]}\\s+\\S+\\s+offline \\(stopped\\)`, 'm'));
    expect(table.stdout).toMatch(/^hand-gw\s+hand-venue\s+no status\s+-\s+\d+ s ago\s+2\s/m);
    const wrong = await runVgw(['fleet', '--db', join(dir, 'nope.db')]);
    expect([wrong.status, wrong.stderr]).toEqual([2, expect.stringMatching(/--db: .*nope\.db does not exist/)]);

    // metrics against the database itself
    expect(await fleet.drain(60)).toBe(true);
    await sleep(1000);
    const db = new Database(database, { readonly: true });
    const batchesInDb = db.prepare('SELECT count(*) FROM batches').pluck().get() as number;
    const encountersInDb = db.prepare('SELECT count(*) FROM encounters').pluck().get() as number;
    db.close();
    const m = await get('metrics');
    expect(m.status).toBe(200);
    expect(m.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(metric(m.body, 'vgw_collector_batches_total{outcome="stored"}')).toBe(batchesInDb);
    expect(metric(m.body, 'vgw_collector_encounters_total{outcome="stored"}')).toBe(encountersInDb);
    expect(encountersInDb).toBe(fleet.report().encountersMade + 5);
    for (const reason of ['malformed', 'wrong_topic', 'unregistered', 'bad_signature', 'out_of_sequence']) {
      expect(metric(m.body, `vgw_collector_refusals_total{reason="${reason}"}`), reason).toBe(1);
    }
    expect(metric(m.body, 'vgw_collector_refusals_total{reason="unsigned"}')).toBe(0);
    expect(metric(m.body, 'vgw_collector_batches_total{outcome="refused"}')).toBe(5);
    expect(metric(m.body, 'vgw_collector_gateway_seq_missing{gateway="hand-gw"}')).toBe(2);
    expect(metric(m.body, `vgw_collector_gateway_seq_missing{gateway="${fleet.gateways[0].id}"}`)).toBe(0);
    expect(metric(m.body, 'vgw_collector_gateway_lag_seconds{gateway="hand-gw"}')).toBeGreaterThanOrEqual(5);
    for (const g of fleet.gateways) expect(metric(m.body, `vgw_collector_gateway_lag_seconds{gateway="${g.id}"}`), g.id).toBeGreaterThanOrEqual(0);
    expect(metric(m.body, 'vgw_collector_acks_total')).toBeGreaterThanOrEqual(batchesInDb);
    expect(metric(m.body, 'vgw_collector_db_commit_seconds_count')).toBeGreaterThan(0);
    expect(metric(m.body, 'vgw_collector_db_commit_failures_total')).toBe(0);
    expect(metric(m.body, 'vgw_collector_status_messages_total')).toBeGreaterThanOrEqual(5);
    expect(metric(m.body, 'vgw_collector_process_resident_memory_bytes')).toBeGreaterThan(10e6);

    // encounters per venue per hour add up to what was stored
    const chart = JSON.parse((await get('api/venue-hours?hours=3&top=2')).body);
    expect(chart.hours).toHaveLength(3);
    expect(chart.venues).toHaveLength(2);
    expect(chart.othersVenues).toBe(4);
    expect(chart.total.reduce((a: number, b: number) => a + b, 0)).toBe(encountersInDb);

    // bad requests get a reason, never a crash
    expect(await get('api/venue-hours?hours=abc')).toMatchObject({ status: 400, body: expect.stringContaining('hours: expected an integer from 1 to 336, got \\"abc\\"') });
    expect(await get('api/venue-hours?top=0')).toMatchObject({ status: 400 });
    expect(await get('nothing-here')).toMatchObject({ status: 404 });
    expect(await get('metrics', { method: 'POST' })).toMatchObject({ status: 405 });
    expect((await get('')).type).toBe('text/html; charset=utf-8');

    // a second collector on the same port says so and exits
    const port = new URL(base).port;
    const clash = writeJson(join(dir, 'clash.json'), { broker: { url: broker().url }, topicPrefix: prefix, collector: { controlKeyFile: testBackendKeyFile(dir), database: join(dir, 'clash.db'), registry, http: { port: Number(port) } } });
    const second = await runVgw(['collect', '-c', clash]);
    expect(second.status).toBe(1);
    expect(second.stderr).toContain(`collector.http.port: 127.0.0.1:${port} is in use (another collector?): choose another port, or 0 for any free one`);

    // health follows the broker
    expect((await get('healthz')).status).toBe(200);
    await broker().stop();
    const down = await waitFor('unhealthy while the broker is down', async () => {
      const h = await get('healthz');
      return h.status === 503 && JSON.parse(h.body);
    }, 20_000);
    expect(down).toMatchObject({ healthy: false, broker: { connected: false }, database: { kind: 'sqlite', ok: true } });
    await broker().restart();
    await waitFor('healthy again', async () => (await get('healthz')).status === 200, 30_000);

    await fleet.stop();
    expect(await stopGracefully(collector)).toBe(0);
  }, 180_000);
});
