// Mutual TLS and per-gateway ACLs on a real Mosquitto running the shipped example config
// (provisioning/mosquitto, paths and ports rewritten), with certificates made by the shipped
// provisioning/tls/certs.sh: a gateway works end to end; without a certificate nothing
// connects; one gateway can neither publish to, read, nor take over another's topics, nor join the
// collectors' shared subscription (the shared-subscription guard, built here by build-guard.sh).
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import mqtt, { IClientOptions, MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, LocalBroker } from '../../simulators/index.js';
import { gatewayTopics } from '../../core/wire/index.js';
import { gatewayKeyOf, provisionTestGateway, signedRequest, testBackendKeyFile } from '../harness/identity.js';
import { runProcess, runVgw, sleep, spawnVgw, Spawned, stopGracefully, superviseVgw, waitFor, writeJson } from '../harness/processes.js';
import { fakeClockEnv } from '../harness/faketime.js';
import { tempDir } from '../harness/tmp.js';
import { requirePackage } from '../harness/system-packages.js';
import { controlProblems, jsonProblems, unitProblems } from '../harness/protocol-schema.js';

const PROVISIONING = resolve(__dirname, '../../provisioning');
const dir = tempDir('vgw-mtls-');
const pki = join(dir, 'pki');
let broker: LocalBroker;
let gatewayPort: number;
let backendPort: number;
const clients: MqttClient[] = [];

function buildGuard(): string {
  const out = join(dir, 'vgw_shared_subscription_guard.so');
  const r = spawnSync('sh', [join(PROVISIONING, 'mosquitto/build-guard.sh'), out], { encoding: 'utf8' });
  requirePackage(r.status === 0, `the shared-subscription guard's build (${r.stderr.trim()})`, 'gcc mosquitto-dev libmosquitto-dev');
  return out;
}

function certs(...args: string[]): void {
  const r = spawnSync('sh', [join(PROVISIONING, 'tls/certs.sh'), ...args], { encoding: 'utf8', env: { ...process.env, CERT_DAYS: args[2] === 'gw-soon' ? '10' : '' } });
  if (r.status !== 0) throw new Error(`certs.sh ${args.join(' ')}: ${r.stderr}`);
}

function tls(name: string | null): IClientOptions {
  return {
    ca: readFileSync(join(pki, 'ca.crt')),
    ...(name ? { cert: readFileSync(join(pki, `${name}.crt`)), key: readFileSync(join(pki, `${name}.key`)) } : {}),
    rejectUnauthorized: true,
  };
}

async function connect(port: number, name: string | null, clientId: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtts://127.0.0.1:${port}`, { protocolVersion: 5, clientId, reconnectPeriod: 0, connectTimeout: 5000, ...tls(name) });
  clients.push(client);
  return client;
}

beforeAll(async () => {
  certs('ca', pki);
  certs('server', pki, 'broker', 'IP:127.0.0.1');
  for (const name of ['gw-a', 'gw-b', 'collector-1', 'gw-soon']) certs('client', pki, name);
  gatewayPort = await freePort();
  backendPort = await freePort();
  const etc = join(dir, 'etc');
  mkdirSync(etc, { recursive: true });
  for (const f of ['gateways.acl', 'backend.acl']) copyFileSync(join(PROVISIONING, 'mosquitto', f), join(etc, f));
  for (const f of ['ca.crt', 'broker.crt', 'broker.key']) copyFileSync(join(pki, f), join(etc, f));
  const config = readFileSync(join(PROVISIONING, 'mosquitto/venue-gateway.conf'), 'utf8')
    .replaceAll('/etc/mosquitto/venue-gateway', etc)
    .replaceAll('/usr/local/lib/mosquitto/vgw_shared_subscription_guard.so', buildGuard())
    .replace('listener 8883', `listener ${gatewayPort} 127.0.0.1`)
    .replace('listener 8884', `listener ${backendPort} 127.0.0.1`);
  broker = await LocalBroker.fromConfig(join(dir, 'broker'), gatewayPort, `${config}\npersistence false\nlog_dest file ${join(dir, 'mosquitto.log')}\n${process.getuid?.() === 0 ? 'user root\n' : ''}`);
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await broker?.stop();
});

describe('mutual TLS and per-gateway ACLs (the example Mosquitto config)', () => {
  it('a provisioned gateway with its certificate delivers signed batches to a collector on the backend listener', async () => {
    const identity = provisionTestGateway(dir, 'gw-a', 'mall-01');
    const registry = writeJson(join(dir, 'gateways.json'), [identity.record]);
    const collectorConfig = writeJson(join(dir, 'collector.json'), {
      broker: { url: `mqtts://127.0.0.1:${backendPort}`, ca: join(pki, 'ca.crt'), cert: join(pki, 'collector-1.crt'), key: join(pki, 'collector-1.key'), reconnectS: 0.5 },
      collector: { controlKeyFile: testBackendKeyFile(dir), database: join(dir, 'collector.db'), registry, http: { port: 0 } },
    });
    const gatewayConfig = writeJson(join(dir, 'gw-a.json'), {
      gateway: { id: 'gw-a', venue: 'mall-01' },
      secretsFile: identity.secretsFile,
      broker: { url: `mqtts://127.0.0.1:${gatewayPort}`, ca: join(pki, 'ca.crt'), cert: join(pki, 'gw-a.crt'), key: join(pki, 'gw-a.key'), reconnectS: 0.5 },
      radio: { simulated: { seed: 8, phones: 6, arrivalsPerMinute: 600, minDwellS: 60, maxDwellS: 90, speed: 60 } },
      clock: { syncCheck: 'assume-synced' },
      store: { path: join(dir, 'gw-a.db'), checkpointS: 0.25 },
      uplink: { batchMaxAgeS: 1 },
    });
    let collector: Spawned | null = null;
    let daemon: Spawned | null = null;
    try {
      collector = spawnVgw(['collect', '-c', collectorConfig]);
      await waitFor('the collector connected over mTLS', () => collector!.output().includes('collector connected'), 20_000);
      daemon = spawnVgw(['run', '-c', gatewayConfig]);
      await waitFor('6 encounters stored at the collector', () => storedCount() >= 6, 60_000);
      expect(collector.output()).not.toContain('batch refused');
      expect(daemon.output()).toContain('broker connected');
      // its status says when its certificates expire: certs.sh's 825 and 3,650 days, no warning yet
      const local = JSON.parse((await runVgw(['status', '-c', gatewayConfig, '--json'])).stdout) as { counters: { tls: { certificates: Array<{ file: string; daysLeft: number }>; warning: string | null } } };
      expect(local.counters.tls.certificates.map((c) => [c.file, c.daysLeft])).toEqual([['broker.cert', 824], ['broker.ca', 3649]]);
      expect(local.counters.tls.warning).toBeNull();
      for (const c of local.counters.tls.certificates) expect(jsonProblems('certificate-expiry', JSON.stringify(c))).toEqual([]);
      // A signed pull whose replyTo is under the replies prefix but deeper than the gateway's ACL
      // lets it write (replies/+): the broker refuses every part, and the gateway says so instead
      // of "pull answered".
      const backend = await connect(backendPort, 'collector-1', 'backend-puller');
      const topics = gatewayTopics('vgw/v3', 'mall-01', 'gw-a');
      await backend.publishAsync(topics.request, signedRequest({ venue: 'mall-01', gateway: 'gw-a' }, 'vgw/v3/replies/too/deep', { op: 'pull', from: 0, to: Date.now() + 60_000 }), { qos: 1 });
      const line = await waitFor('the gateway reports the refused pull', () => daemon!.output().split('\n').find((l) => l.includes('pull not delivered')), 20_000);
      expect(JSON.parse(line)).toMatchObject({ refused: 1, parts: 1, unconfirmed: 0, reason: expect.stringMatching(/not authori[sz]ed/i) });
      expect(daemon.output()).not.toContain('pull answered');
    } finally {
      if (daemon) await stopGracefully(daemon);
      if (collector) await stopGracefully(collector);
    }
  });

  it('without a client certificate the broker refuses the connection', async () => {
    await expect(connect(gatewayPort, null, 'anonymous')).rejects.toThrow();
    await expect(connect(backendPort, null, 'anonymous-backend')).rejects.toThrow();
  });

  it("gw-b can neither publish on gw-a's topics nor read them, and cannot take over gw-a's session", async () => {
    const a = await connect(gatewayPort, 'gw-a', 'vgw-gw-a');
    const collector = await connect(backendPort, 'collector-1', 'collector-watch');
    const seen: string[] = [];
    collector.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`));
    expect((await collector.subscribeAsync('vgw/v3/+/+/batch', { qos: 1 }))[0].qos).toBe(1);

    // gw-b, its own certificate, claiming gw-a's client id
    const b = await connect(gatewayPort, 'gw-b', 'vgw-gw-a');
    const forgedOnA = gatewayTopics('vgw/v3', 'mall-01', 'gw-a');
    const denied = await b.publishAsync(forgedOnA.batch, 'not from gw-a', { qos: 1 }).then(() => 'accepted', (err: Error) => err.message);
    expect(denied).toMatch(/not authori[sz]ed/i);
    // Mosquitto 2 grants any subscription and checks the ACL on delivery: gw-b hears nothing of gw-a's.
    const heardByB: string[] = [];
    const heardByA: string[] = [];
    b.on('message', (topic) => heardByB.push(topic));
    a.on('message', (topic) => heardByA.push(topic));
    await b.subscribeAsync([forgedOnA.ack, forgedOnA.request, forgedOnA.config], { qos: 1 });
    await a.subscribeAsync([forgedOnA.ack, forgedOnA.request, forgedOnA.config], { qos: 1 });
    await collector.publishAsync(forgedOnA.ack, JSON.stringify({ v: 3, acks: [] }), { qos: 1 });
    await collector.publishAsync(forgedOnA.request, JSON.stringify({ v: 3, op: 'status' }), { qos: 1 });
    await collector.publishAsync(forgedOnA.config, JSON.stringify({ v: 3, kind: 'config' }), { qos: 1, retain: true });
    await waitFor("gw-a hears its ack, request and configuration", () => heardByA.length === 3, 10_000);
    // gw-b on its own topics is fine
    await b.publishAsync(gatewayTopics('vgw/v3', 'mall-01', 'gw-b').batch, 'from gw-b', { qos: 1 });
    await a.publishAsync(forgedOnA.batch, 'from gw-a', { qos: 1 });
    await waitFor('both legitimate messages at the collector', () => seen.length >= 2, 10_000);
    await sleep(300);
    expect(seen.sort()).toEqual(['vgw/v3/mall-01/gw-a/batch from gw-a', 'vgw/v3/mall-01/gw-b/batch from gw-b']);
    expect(heardByB).toEqual([]);
    expect(heardByA.sort()).toEqual([forgedOnA.ack, forgedOnA.config, forgedOnA.request].sort());
    // The broker gave gw-b its certificate's name as client id, so gw-a was not disconnected.
    expect(a.connected).toBe(true);
  });

  it('a gateway certificate gets nothing on the backend listener', async () => {
    const b = await connect(backendPort, 'gw-b', 'gw-b-on-backend');
    const collector = await connect(backendPort, 'collector-1', 'collector-watch-2');
    const heardByB: string[] = [];
    const heardByCollector: string[] = [];
    b.on('message', (topic) => heardByB.push(topic));
    collector.on('message', (topic) => heardByCollector.push(topic));
    await b.subscribeAsync('vgw/v3/#', { qos: 1 });
    await collector.subscribeAsync('vgw/v3/+/+/batch', { qos: 1 });
    const denied = await b.publishAsync('vgw/v3/mall-01/gw-a/ack', JSON.stringify({ v: 3, acks: [] }), { qos: 1 }).then(() => 'accepted', (err: Error) => err.message);
    expect(denied).toMatch(/not authori[sz]ed/i);
    const gwA = await connect(gatewayPort, 'gw-a', 'gw-a-2');
    await gwA.publishAsync('vgw/v3/mall-01/gw-a/batch', 'x', { qos: 1 });
    await waitFor('the collector hears the batch', () => heardByCollector.length === 1, 10_000);
    await sleep(300);
    expect(heardByB).toEqual([]);
  });

  it("no gateway certificate can join the collectors' shared subscription, on either listener; every batch reaches the collectors on its first send", async () => {
    const shared = '$share/collectors/vgw/v3/+/+/batch';
    const refusal = (c: MqttClient, filter: string) => c.subscribeAsync(filter, { qos: 1 }).then((granted) => granted[0].qos, (err: { packet?: { granted?: number[] } }) => err.packet?.granted?.[0]);
    const collectorA = await connect(backendPort, 'collector-1', 'collector-share-1');
    const onGateways = await connect(gatewayPort, 'gw-b', 'gw-b-share');
    const onBackend = await connect(backendPort, 'gw-b', 'gw-b-share-on-backend');
    expect(await refusal(collectorA, shared)).toBe(1);
    // 0x87: not authorised. Without the guard Mosquitto grants both (QoS 1) and then refuses to
    // deliver them their turn of the group's messages, which the gateways re-send only later.
    expect(await refusal(onGateways, shared)).toBe(0x87);
    expect(await refusal(onBackend, shared)).toBe(0x87);
    expect(await refusal(onBackend, '$share/other-group/vgw/v3/+/+/batch')).toBe(0x87);
    // its own topics are as before
    expect(await refusal(onGateways, 'vgw/v3/+/gw-b/ack')).toBe(1);
    const heard: string[] = [];
    collectorA.on('message', (_topic, payload) => heard.push(payload.toString()));
    const gwA = await connect(gatewayPort, 'gw-a', 'gw-a-share');
    const sent = Array.from({ length: 12 }, (_, i) => `batch ${i}`);
    for (const m of sent) await gwA.publishAsync('vgw/v3/mall-01/gw-a/batch', m, { qos: 1 });
    await waitFor('every batch at the collector', () => heard.length >= sent.length, 10_000);
    expect(heard.sort()).toEqual([...sent].sort());
    await waitFor('the refusal in the broker log', () => /shared-subscription guard: refused/.test(readFileSync(join(dir, 'mosquitto.log'), 'utf8')), 10_000);
    expect(readFileSync(join(dir, 'mosquitto.log'), 'utf8')).toMatch(/shared-subscription guard: refused \$share\/collectors\/vgw\/v3\/\+\/\+\/batch to gw-b/);
  });

  it('a certificate that expires within 30 days: the unit warns at start and in its status, and doctor fails its tls check with the fix', async () => {
    const identity = provisionTestGateway(dir, 'gw-soon', 'mall-01');
    const config = writeJson(join(dir, 'gw-soon.json'), {
      gateway: { id: 'gw-soon', venue: 'mall-01' },
      secretsFile: identity.secretsFile,
      broker: { url: `mqtts://127.0.0.1:${gatewayPort}`, ca: join(pki, 'ca.crt'), cert: join(pki, 'gw-soon.crt'), key: join(pki, 'gw-soon.key'), reconnectS: 0.5 },
      radio: { simulated: { seed: 3, phones: 0, arrivalsPerMinute: 60, minDwellS: 30, maxDwellS: 60, speed: 10 } },
      clock: { syncCheck: 'assume-synced' },
      store: { path: join(dir, 'gw-soon.db') },
    });
    const doctor = JSON.parse((await runVgw(['doctor', '-c', config, '--json'])).stdout) as Array<{ check: string; ok: boolean; detail: string; fix?: string }>;
    expect(doctor.find((c) => c.check === 'tls')).toMatchObject({ ok: false, detail: expect.stringMatching(/^broker\.cert expires in 9 days \(.*\): renew before then/), fix: expect.stringContaining('certs.sh client') });
    const daemon = spawnVgw(['run', '-c', config]);
    try {
      const status = await waitFor('its status', async () => {
        const r = await runVgw(['status', '-c', config, '--json']);
        return r.status === 0 ? (JSON.parse(r.stdout) as { counters: { tls: { warning: string | null } } }) : undefined;
      }, 30_000);
      expect(status.counters.tls.warning).toMatch(/^broker\.cert expires in 9 days/);
      expect(daemon.output()).toContain('a certificate expires soon');
    } finally {
      await stopGracefully(daemon);
    }
  });

  it('a unit whose certificate is about to expire renews it over MQTT and survives the expiry, and a power cut after it, with no technician', async () => {
    // gw-exp's certificate, made by certs.sh as if 825 days ago: it expires EXPIRES_IN_S from now
    const EXPIRES_IN_S = 45;
    const issuedAt = new Date(Date.now() - 825 * 86_400_000 + EXPIRES_IN_S * 1000).toISOString().replace('T', ' ').slice(0, 19);
    const made = await runProcess('sh', [join(PROVISIONING, 'tls/certs.sh'), 'client', pki, 'gw-exp'], { env: { ...fakeClockEnv({ FAKETIME: `@${issuedAt}` }), TZ: 'UTC' } });
    expect(made.status, made.stderr).toBe(0);
    const oldNotAfter = Date.parse(new X509Certificate(readFileSync(join(pki, 'gw-exp.crt'))).validTo);
    expect(oldNotAfter - Date.now()).toBeLessThan((EXPIRES_IN_S + 5) * 1000);
    const identity = provisionTestGateway(dir, 'gw-exp', 'mall-09');
    mkdirSync(join(dir, 'exp'), { recursive: true });
    const registry = writeJson(join(dir, 'exp-gateways.json'), [identity.record]);
    const collectorConfig = writeJson(join(dir, 'exp-collector.json'), {
      broker: { url: `mqtts://127.0.0.1:${backendPort}`, ca: join(pki, 'ca.crt'), cert: join(pki, 'collector-1.crt'), key: join(pki, 'collector-1.key'), clientId: 'collector-exp', reconnectS: 0.5 },
      collector: { controlKeyFile: testBackendKeyFile(dir), database: join(dir, 'exp-collector.db'), registry, http: { port: 0 }, certificateAuthority: { cert: join(pki, 'ca.crt'), key: join(pki, 'ca.key') } },
    });
    const gatewayConfig = writeJson(join(dir, 'gw-exp.json'), {
      gateway: { id: 'gw-exp', venue: 'mall-09' },
      secretsFile: identity.secretsFile,
      broker: { url: `mqtts://127.0.0.1:${gatewayPort}`, ca: join(pki, 'ca.crt'), cert: join(pki, 'gw-exp.crt'), key: join(pki, 'gw-exp.key'), reconnectS: 0.5, reconnectMaxS: 2 },
      radio: { simulated: { seed: 12, phones: 4, arrivalsPerMinute: 240, minDwellS: 30, maxDwellS: 60, speed: 60 } },
      clock: { syncCheck: 'assume-synced' },
      store: { path: join(dir, 'exp', 'gw-exp.db'), checkpointS: 0.25 },
      uplink: { batchMaxAgeS: 1 },
      remote: { healthGateS: 10 },
    });
    const expStored = () => {
      const db = new Database(join(dir, 'exp-collector.db'), { readonly: true, fileMustExist: true });
      try {
        return db.prepare('SELECT count(*) FROM encounters').pluck().get() as number;
      } finally {
        db.close();
      }
    };
    type Tls = { certificates: Array<{ file: string; daysLeft: number }>; warning: string | null; renewal: { using: string; last: { outcome: string } | null } };
    const localTls = async () => (JSON.parse((await runVgw(['status', '-c', gatewayConfig, '--json'])).stdout) as { counters: { tls: Tls } }).counters.tls;
    const collector = spawnVgw(['collect', '-c', collectorConfig]);
    let unit: ReturnType<typeof superviseVgw> | null = null;
    let again: Spawned | null = null;
    try {
      await waitFor('the collector connected over mTLS', () => collector.output().includes('collector connected'), 20_000);
      // what crosses the broker, checked against docs/protocol.cddl
      const watch = await connect(backendPort, 'collector-1', 'renewal-watch');
      const wire = gatewayTopics('vgw/v3', 'mall-09', 'gw-exp');
      const crossed: Array<[string, Buffer]> = [];
      watch.on('message', (topic, payload) => crossed.push([topic, payload]));
      await watch.subscribeAsync([wire.certificateRequest, wire.certificate], { qos: 1 });
      unit = superviseVgw(gatewayConfig);
      // asked, issued, restarted into it on trial, kept once the broker took it
      await waitFor('the renewed certificate in use', () => unit!.output().includes('renewed certificate in use'), 30_000);
      expect(unit.starts()).toBe(2);
      expect(collector.output()).toContain('certificate issued');
      expect(crossed.map(([t]) => t)).toEqual([wire.certificateRequest, wire.certificate]);
      expect(unitProblems('certificate-request', crossed[0][1], gatewayKeyOf(identity))).toEqual([]);
      expect(controlProblems('control-certificate', crossed[1][1])).toEqual([]);
      const renewed = await waitFor('the status says renewed', async () => {
        const t = await localTls();
        return t.renewal.using === 'renewed' && t.renewal.last?.outcome === 'renewed' ? t : undefined;
      }, 20_000);
      expect(renewed.certificates.find((c) => c.file === 'broker.cert')!.daysLeft).toBe(824);
      expect(renewed.warning).toBeNull();
      // its renewed key never left the unit: only the certificate came back (kept 0600 beside the database)
      const kept = JSON.parse(readFileSync(join(dir, 'exp', 'tls-renewal.json'), 'utf8')) as { renewed: { keyPem: string } };
      expect(statSync(join(dir, 'exp', 'tls-renewal.json')).mode & 0o077).toBe(0);
      expect(collector.output()).not.toContain(kept.renewed.keyPem.split('\n')[1]);
      // a technician's doctor checks the certificate the unit uses, not the file's
      const doctor = JSON.parse((await runVgw(['doctor', '-c', gatewayConfig, '--json'])).stdout) as Array<{ check: string; ok: boolean; detail: string }>;
      expect(doctor.find((c) => c.check === 'tls')).toMatchObject({ ok: true, detail: 'the certificate renewed over MQTT CN gw-exp, valid 824 more days (renewed over MQTT from 30 days before)' });
      // the old certificate expires; the broker now refuses it…
      await waitFor('the old certificate expired', () => Date.now() > oldNotAfter + 2000, (EXPIRES_IN_S + 10) * 1000);
      await expect(connect(gatewayPort, 'gw-exp', 'gw-exp-old')).rejects.toThrow();
      // …and a power cut after the expiry: the unit comes back on the renewed one and delivers
      unit.current().proc.kill('SIGKILL');
      await unit.current().exited();
      const before = expStored();
      again = spawnVgw(['run', '-c', gatewayConfig]);
      await waitFor('new encounters at the collector after the expiry', () => expStored() > before, 60_000);
      expect(again.output()).toContain('broker connected');
    } finally {
      if (again) await stopGracefully(again);
      await unit?.stop();
      await stopGracefully(collector);
    }
  }, 150_000);

  it('the daemon refuses a client key others can read', async () => {
    const loose = join(dir, 'loose.key');
    copyFileSync(join(pki, 'gw-a.key'), loose);
    chmodSync(loose, 0o644);
    const identity = provisionTestGateway(dir, 'gw-loose', 'mall-01');
    const config = writeJson(join(dir, 'loose.json'), {
      gateway: { id: 'gw-loose', venue: 'mall-01' },
      secretsFile: identity.secretsFile,
      broker: { url: `mqtts://127.0.0.1:${gatewayPort}`, ca: join(pki, 'ca.crt'), cert: join(pki, 'gw-a.crt'), key: loose },
      store: { path: join(dir, 'loose.db') },
    });
    const r = await runVgw(['run', '-c', config]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/broker\.key .*loose\.key is readable by others \(mode 644\): run `chmod 600/);
  });
});

function storedCount(): number {
  const db = new Database(join(dir, 'collector.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT count(*) FROM encounters').pluck().get() as number;
  } finally {
    db.close();
  }
}
