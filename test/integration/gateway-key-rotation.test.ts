// Rotating a gateway's signing key with an overlap, end to end (issue 26, item 5): the real daemon
// under a supervisor that restarts it as systemd would, a real Mosquitto and a real collector.
// `vgw fleet rotate gateway-key` orders rotation 1; the unit makes a key, asks for it, and signs
// with it once the collector registered it; the collector takes the old key during the overlap,
// its batches and statuses go on with nothing refused, and a key made while the backend was away
// survives a power cut and is registered when it returns.
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { signBytes, signingKeyFromSeed, type SigningKeyState } from '../../core/trust/index.js';
import { encodeBatch, gatewayTopics, openUnitMessage } from '../../core/wire/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { provisionTestGateway, TEST_BACKEND, testBackendKeyFile } from '../harness/identity.js';
import { controlProblems, unitProblems } from '../harness/protocol-schema.js';
import { runProcess, runVgw, spawnProcess, spawnVgw, type Spawned, stopGracefully, superviseVgw, waitFor, writeJson } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';
import { simulatedUnitConfig } from '../harness/unit-config.js';

const dir = tempDir('vgw-gwkey-');
const broker = useLocalBroker(dir);
const prefix = 'gwkey/v3';

interface SigningKeyStatus { version: number; key: string; pending: number | null; last: { version: number; outcome: string; reason?: string } | null }
interface Status { state: string; counters?: { control: { signingKey: SigningKeyStatus }; uplink: { acksReceived: number } } }

describe('gateway signing key rotation', () => {
  it('rotates through the collector with an overlap: nothing refused, the new key survives restarts, a key made while the backend is away survives a power cut', async () => {
    const identity = provisionTestGateway(dir, 'gw-gk', 'venue-gk');
    const to = { venue: 'venue-gk', gateway: 'gw-gk' };
    const topics = gatewayTopics(prefix, to.venue, to.gateway);
    const { config, db } = simulatedUnitConfig({ dir, identity, brokerUrl: broker().url, prefix, seed: 23, extra: { uplink: { statusIntervalS: 1, batchMaxAgeS: 1 } } });
    const registry = writeJson(join(dir, 'registry.json'), [identity.record]);
    const collectorDb = join(dir, 'collector.db');
    const collectorConfig = writeJson(join(dir, 'collector.json'), {
      broker: { url: broker().url, clientId: 'collector-gk' }, topicPrefix: prefix,
      collector: { database: collectorDb, registry, shareGroup: 'collectors', controlKeyFile: testBackendKeyFile(dir), http: { port: 0 } },
    });
    const query = <T>(file: string, sql: string): T => {
      const c = new Database(file, { readonly: true, fileMustExist: true });
      try {
        return c.prepare(sql).all() as T;
      } finally {
        c.close();
      }
    };
    const storedCount = () => query<Array<{ n: number }>>(collectorDb, 'SELECT count(*) AS n FROM encounters')[0].n;
    const oldKey = identity.record.signingKey;

    // Everything the unit and the backend say about the key, as it goes over the broker.
    const tool = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'gk-watch' });
    let status: Status | null = null;
    let statusSigner: string | null = null;
    const requests: Buffer[] = [];
    let retainedKey: Buffer | null = null;
    tool.on('message', (topic, payload) => {
      if (topic === topics.status) {
        const doc = openUnitMessage(payload, null);
        if (!doc.ok) return;
        status = doc.doc as Status;
        const claimed = status.counters?.control.signingKey?.key ?? oldKey;
        // Which key signed it: the one the status names, checked.
        statusSigner = openUnitMessage(payload, Buffer.from(claimed, 'hex')).ok ? claimed : null;
      } else if (topic === topics.signingKeyRequest) requests.push(payload);
      else if (topic === topics.signingKey && payload.length > 0) retainedKey = payload;
    });
    await tool.subscribeAsync([topics.status, topics.signingKeyRequest, topics.signingKey], { qos: 1 });
    const reported = () => (status as Status | null)?.counters?.control.signingKey;

    let collector: Spawned = spawnVgw(['collect', '-c', collectorConfig]);
    let python: Spawned | null = null;
    const pyEvents = () => (python?.output() ?? '').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event: string; detail: unknown });
    const unit = superviseVgw(config);
    try {
      await waitFor('the collector connected', () => collector.output().includes('collector connected'), 20_000);
      await waitFor('batches stored under the provisioned key', () => (storedCount() > 0 && reported() ? true : undefined), 30_000);
      expect(reported()).toEqual({ version: 0, key: oldKey, pending: null, last: null });
      expect(statusSigner).toBe(oldKey);

      // 1. The rollout orders rotation 1; the unit makes a key, the collector registers it, the unit restarts signing with it.
      const started = await runVgw(['fleet', 'rotate', 'gateway-key', '--gateway', to.gateway, '--canary', '1', '--abort-after', '1', '--settle', '60', '-c', collectorConfig]);
      expect(started.stderr).toBe('');
      const rollout = (JSON.parse(started.stdout) as { rollout: string; units: number });
      expect(rollout.units).toBe(1);
      await waitFor('rotation 1 in use', () => (reported()?.version === 1 ? true : undefined), 40_000);
      expect(unit.starts()).toBe(2);
      const newKey = reported()!.key;
      expect(newKey).not.toBe(oldKey);
      expect(reported()).toMatchObject({ version: 1, pending: null, last: { version: 1, outcome: 'applied' } });
      // signed by the new key, which the collector takes: its statuses and batches go on
      await waitFor('a status signed by the new key', () => (statusSigner === newKey ? true : undefined), 20_000);
      const storedAtSwitch = storedCount();
      await waitFor('batches stored under the new key', () => (storedCount() > storedAtSwitch ? true : undefined), 30_000);
      expect(collector.output()).not.toMatch(/"msg":"(status|signing key request|batch) refused/);
      const signers = query<Array<{ signer: Buffer }>>(collectorDb, "SELECT DISTINCT signer FROM batches WHERE kind = 'batch'").map((r) => r.signer.toString('hex'));
      expect(signers.sort()).toEqual([newKey, oldKey].sort());
      expect(query<Array<{ key: string; previous: string; version: number }>>(collectorDb, 'SELECT key, previous, version FROM gateway_keys')).toEqual([{ key: newKey, previous: oldKey, version: 1 }]);
      const rolloutState = JSON.parse((await runVgw(['fleet', 'config', 'status', '--rollout', rollout.rollout, '-c', collectorConfig])).stdout) as { state: string };
      await waitFor('the rollout done', async () => (JSON.parse((await runVgw(['fleet', 'config', 'status', '--rollout', rollout.rollout, '-c', collectorConfig])).stdout) as { state: string }).state === 'done', 20_000);
      expect(['running', 'done']).toContain(rolloutState.state);
      // the request and the answer conform to docs/protocol.cddl; the request was signed with the old key
      expect(requests.length).toBeGreaterThan(0);
      expect(unitProblems('signing-key-request', requests[0], Buffer.from(oldKey, 'hex'))).toEqual([]);
      expect(controlProblems('control-signing-key', retainedKey!)).toEqual([]);
      // the new key's seed is kept beside the database, readable by the unit alone
      const statePath = join(dir, 'signing-key.json');
      expect(statSync(statePath).mode & 0o077).toBe(0);
      const kept = JSON.parse(readFileSync(statePath, 'utf8')) as SigningKeyState;
      expect(signingKeyFromSeed(Buffer.from(kept.seed!, 'hex')).publicKey.toString('hex')).toBe(newKey);
      expect(db).toContain(dir);

      // 2. The overlap: a batch the old key signed (in flight at the switch) is still taken; one by a stranger is not.
      const oldSigner = signingKeyFromSeed(Buffer.from(identity.secrets.signingKey, 'hex'));
      const lateBatch = (id: string, seq: number, key = oldSigner) => encodeBatch(
        { kind: 'batch', id, gateway: to.gateway, venue: to.venue, life: '00000000000000000000000000', seq, createdAt: Date.now() }, [], (data) => signBytes(key, data),
      );
      await tool.publishAsync(topics.batch, lateBatch('01KQ0000000000000000000001', 900_001), { qos: 1 });
      await tool.publishAsync(topics.batch, lateBatch('01KQ0000000000000000000002', 900_002, signingKeyFromSeed(Buffer.alloc(32, 0x42))), { qos: 1 });
      await waitFor('the old key\'s batch stored', () => (query<unknown[]>(collectorDb, "SELECT id FROM batches WHERE id = '01KQ0000000000000000000001'").length === 1 ? true : undefined), 20_000);
      await waitFor('the stranger\'s refused', () => (collector.output().includes('"code":"bad_signature"') ? true : undefined), 20_000);
      expect(query<unknown[]>(collectorDb, "SELECT id FROM batches WHERE id = '01KQ0000000000000000000002'")).toEqual([]);

      // 3. Across a restart (below) the unit keeps the new key.
      await unit.stop();

      // 4. The backend away: a rotation ordered by hand, the key made and kept, then a power cut; it is registered once the backend returns.
      await stopGracefully(collector);
      const restarted = superviseVgw(config);
      try {
        await waitFor('the unit back on the new key', () => (restarted.output().includes('broker connected') && statusSigner === newKey ? true : undefined), 30_000);
        expect(reported()).toMatchObject({ version: 1, key: newKey });
        // The Python consumer, from the registry's key, follows the rotations a backend registered (the retained answer).
        python = spawnProcess('/usr/bin/python3', [
          '-m', 'vgw_client', 'consume', '--url', broker().url, '--prefix', prefix, '--registry', registry, '--db', join(dir, 'py.db'),
          '--client-id', 'py-gk', '--control-key', testBackendKeyFile(dir), '--seconds', '180',
        ], { cwd: join(__dirname, '../../clients/python') });
        await waitFor('the Python consumer follows rotation 1', () => (pyEvents().some((e) => e.event === 'key' && (e.detail as { version: number }).version === 1) ? true : undefined), 20_000);
        await tool.publishAsync(topics.signingKey, TEST_BACKEND.sign({ kind: 'signingKey', ...to, version: 2, issuedAt: Date.now() }), { qos: 1, retain: true });
        await waitFor('rotation 2 pending', () => (reported()?.pending === 2 ? true : undefined), 20_000);
        const pending = (JSON.parse(readFileSync(statePath, 'utf8')) as SigningKeyState).pending!;
        restarted.current().proc.kill('SIGKILL');
        await restarted.current().exited();
        await restarted.stop();
        collector = spawnVgw(['collect', '-c', collectorConfig]);
        await waitFor('the collector back', () => collector.output().includes('collector connected'), 20_000);
        const after = superviseVgw(config);
        try {
          await waitFor('rotation 2 in use', () => (reported()?.version === 2 && statusSigner === reported()?.key ? true : undefined), 40_000);
          expect(reported()!.key).toBe(signingKeyFromSeed(Buffer.from(pending.seed, 'hex')).publicKey.toString('hex'));
          const storedNow = storedCount();
          await waitFor('batches stored under rotation 2', () => (storedCount() > storedNow ? true : undefined), 30_000);
          expect(collector.output()).not.toMatch(/"msg":"(status|signing key request) refused/);
          // the Python consumer followed rotation 2 too, and stored batches under it, refusing none
          const key2 = reported()!.key;
          await waitFor('the Python consumer follows rotation 2', () => (pyEvents().some((e) => e.event === 'key' && (e.detail as { key: string }).key === key2) ? true : undefined), 20_000);
          const storedByPy = () => pyEvents().filter((e) => e.event === 'stored').length;
          const pyBefore = storedByPy();
          await waitFor('the Python consumer stores batches of rotation 2', () => (storedByPy() > pyBefore ? true : undefined), 30_000);
          expect(pyEvents().filter((e) => e.event === 'refused' || e.event === 'key-refused')).toEqual([]);
          // and orders rotation 3 as the collector would: the version after the one held
          const py = await runProcess('/usr/bin/python3', [
            '-m', 'vgw_client', 'key-rotate', '--url', broker().url, '--prefix', prefix, '--venue', to.venue, '--gateway', to.gateway, '--control-key', testBackendKeyFile(dir),
          ], { cwd: join(__dirname, '../../clients/python'), timeoutMs: 30_000 });
          expect([py.stderr, JSON.parse(py.stdout)]).toEqual(['', { venue: to.venue, gateway: to.gateway, version: 3 }]);
          await waitFor('rotation 3 in use', () => (reported()?.version === 3 && statusSigner === reported()?.key ? true : undefined), 40_000);
        } finally {
          await after.stop();
        }
      } finally {
        await restarted.stop();
      }
    } finally {
      python?.proc.kill('SIGTERM');
      await tool.endAsync();
      await unit.stop();
      await stopGracefully(collector);
    }
  }, 240_000);
});
