// The control plane's costs (issue 26): how long a unit takes to check one signed control message
// (COSE_Sign1 decode, Ed25519 verification, the schema), and the round trip of a signed command
// to a real daemon (`vgw run`, a private Mosquitto) and its signed answer, verified, as the
// backend's CLI does it. Prints one JSON object.
//   node dist/bench/control.js [commands] [verifies] [nodelay]
// With `nodelay` the broker runs with set_tcp_nodelay true (Mosquitto's default is false: Nagle's
// algorithm then holds small replies; 88 → 48 ms median here).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { LocalBroker } from '../simulators/index.js';
import { ControlSigner, gatewayTopics, openControl, openUnitMessage, trustedKey } from '../core/wire/index.js';

const COMMANDS = Number(process.argv[2] ?? 300);
const VERIFIES = Number(process.argv[3] ?? 20_000);
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.js');
const report: Record<string, number> = {};
const dir = mkdtempSync(join(tmpdir(), 'vgw-bench-control-'));
const backend = new ControlSigner(randomBytes(32));
const to = { venue: 'venue-bench', gateway: 'gw-bench' };
const replyTo = 'bench/v3/replies/bench-backend';
const request = (body: Record<string, unknown>) =>
  backend.sign({ kind: 'request', ...to, issuedAt: Date.now(), nonce: randomBytes(16).toString('base64url'), replyTo, ...body });

// 1. Verification alone: distinct signed requests and acks, as a unit opens them.
const trusted = [trustedKey(backend.key.publicKey)];
const messages = Array.from({ length: VERIFIES }, (_, i) => (i % 2 === 0 ? request({ op: 'status' }) : backend.sign({ kind: 'ack', ...to, acks: ['01M98F6KRKKRRAWDPDZHPEKFN5'] })));
let opened = 0;
const t0 = process.hrtime.bigint();
for (let i = 0; i < messages.length; i++) {
  if (openControl(messages[i], i % 2 === 0 ? 'request' : 'ack', to, trusted, 65_536).ok) opened++;
}
report.control_verify_us = +((Number(process.hrtime.bigint() - t0) / 1e3) / messages.length).toFixed(1);
if (opened !== messages.length) throw new Error(`only ${opened} of ${messages.length} control messages opened`);

// 2. Round trips to a real daemon.
const broker = await LocalBroker.start(join(dir, 'broker'), process.argv[4] === 'nodelay' ? 'set_tcp_nodelay true' : '');
const provision = spawnSync(process.execPath, [
  CLI, 'provision', '-y', '--json', '--gateway', to.gateway, '--venue', to.venue, '--broker', broker.url, '--backend-key', backend.key.publicKey.toString('hex'),
  '--config-dir', join(dir, 'etc'), '--data-dir', join(dir, 'var'), '--beacon', 'off',
], { encoding: 'utf8' });
if (provision.status !== 0) throw new Error(`vgw provision: ${provision.stderr}`);
const gatewayKey = Buffer.from((JSON.parse(readFileSync(join(dir, 'etc', 'registration.json'), 'utf8')) as { signingKey: string }).signingKey, 'hex');
const config = join(dir, 'gw.json');
writeFileSync(config, JSON.stringify({
  gateway: { id: to.gateway, venue: to.venue }, secretsFile: join(dir, 'etc', 'secrets.json'), broker: { url: broker.url }, topicPrefix: 'bench/v3',
  radio: { simulated: { seed: 4, phones: 0, arrivalsPerMinute: 60, minDwellS: 30, maxDwellS: 300, speed: 1 } },
  clock: { syncCheck: 'assume-synced' }, store: { path: join(dir, 'var', 'gw.db') }, log: { level: 'warn' },
}));
const daemon = spawn(process.execPath, [CLI, 'run', '-c', config], { stdio: ['ignore', 'ignore', 'inherit'] });
const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'bench-backend' });
const waiting = new Map<string, (payload: Buffer) => void>();
client.on('message', (_topic, payload, packet) => waiting.get(String(packet.properties?.correlationData))?.(payload));
await client.subscribeAsync(replyTo, { qos: 1 });
const topic = gatewayTopics('bench/v3', to.venue, to.gateway).request;
const ask = (corr: string, body: Record<string, unknown>, timeoutMs: number) =>
  new Promise<Buffer | null>((resolve) => {
    const timer = setTimeout(() => resolve(null), timeoutMs);
    waiting.set(corr, (payload) => {
      clearTimeout(timer);
      resolve(payload);
    });
    client.publish(topic, request(body), { qos: 1, properties: { correlationData: Buffer.from(corr) } });
  });
for (let probe = 0; !(await ask(`probe-${probe}`, { op: 'status' }, 500)); probe++) {
  if (probe > 120 || daemon.exitCode !== null) throw new Error(`the daemon never answered (exit ${daemon.exitCode})`);
}
const times: number[] = [];
for (let i = 0; i < COMMANDS; i++) {
  // Alternating a status request and a logLevel command: both signed, both answered signed.
  const body = i % 2 === 0 ? { op: 'status' } : { op: 'logLevel', level: 'warn', forS: 60 };
  const start = process.hrtime.bigint();
  const answer = await ask(`c-${i}`, body, 10_000);
  if (!answer) throw new Error(`command ${i} unanswered`);
  const doc = openUnitMessage(answer, gatewayKey);
  if (!doc.ok) throw new Error(`command ${i}: the answer does not verify (${doc.reason})`);
  times.push(Number(process.hrtime.bigint() - start) / 1e6);
}
times.sort((a, b) => a - b);
const at = (q: number) => +times[Math.min(times.length - 1, Math.floor(q * times.length))].toFixed(1);
report.command_roundtrip_p50_ms = at(0.5);
report.command_roundtrip_p99_ms = at(0.99);
report.command_roundtrips = times.length;
await client.endAsync();
daemon.kill('SIGTERM');
await new Promise((r) => daemon.once('exit', r));
await broker.stop();
rmSync(dir, { recursive: true, force: true });
process.stdout.write(JSON.stringify(report) + '\n');
