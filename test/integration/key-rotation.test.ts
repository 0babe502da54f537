// Rotating the backend key with an overlap, end to end (issue 26, item 5): the real daemon, a real
// Mosquitto and real collectors. The backend announces {old, new} (signed with the old key), moves
// its collector to the new key, and acks keep working; then announces {new} (signed with the new
// key): the old key is refused from then on, across a restart. A set that would drop the key that
// signed it is refused, and so is a collector's rotation that leaves out its own key.
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadBackendKeySeed } from '../../core/trust/index.js';
import { ControlSigner, gatewayTopics } from '../../core/wire/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { gatewayKeyOf, provisionTestGateway, TEST_BACKEND, testBackendKeyFile, unitDoc } from '../harness/identity.js';
import { controlProblems, unitProblems } from '../harness/protocol-schema.js';
import { runProcess, runVgw, spawnVgw, type Spawned, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';
import { simulatedUnitConfig } from '../harness/unit-config.js';

const dir = tempDir('vgw-keys-');
const broker = useLocalBroker(dir);
const prefix = 'keys/v3';

interface Keys { version: number; keys: string[]; last: { outcome: string; version: number; reason?: string } | null }
interface Status { state: string; counters?: { control: { trustedKeys: number; backendKeys: Keys; refused: Record<string, number> }; uplink: { acksReceived: number; acksInvalid: number } } }

describe('backend key rotation', () => {
  it('adds a new key with an overlap, moves the collector to it, drops the old one; a set without its signer is refused', async () => {
    const identity = provisionTestGateway(dir, 'gw-kr', 'venue-kr');
    const to = { venue: 'venue-kr', gateway: 'gw-kr' };
    const topics = gatewayTopics(prefix, to.venue, to.gateway);
    const { config } = simulatedUnitConfig({ dir, identity, brokerUrl: broker().url, prefix, seed: 21, extra: { uplink: { statusIntervalS: 1, batchMaxAgeS: 1 } } });
    const registry = writeJson(join(dir, 'registry.json'), [identity.record]);
    const made = await runVgw(['backend-key', '--out', join(dir, 'new.key')]);
    expect(made.status).toBe(0);
    const newKey = new ControlSigner(loadBackendKeySeed(join(dir, 'new.key')));
    const oldHex = TEST_BACKEND.key.publicKey.toString('hex');
    const newHex = newKey.key.publicKey.toString('hex');
    expect(made.stdout).toContain(newHex);
    const collectorConfig = (keyFile: string, name: string) => writeJson(join(dir, `${name}.json`), {
      broker: { url: broker().url, clientId: `collector-${name}` }, topicPrefix: prefix,
      collector: { database: join(dir, 'collector.db'), registry, controlKeyFile: keyFile, http: { port: 0 } },
    });
    const oldConfig = collectorConfig(testBackendKeyFile(dir), 'old');
    const newConfig = collectorConfig(join(dir, 'new.key'), 'new');
    const stored = () => {
      const c = new Database(join(dir, 'collector.db'), { readonly: true, fileMustExist: true });
      try {
        return c.prepare('SELECT count(*) FROM encounters').pluck().get() as number;
      } finally {
        c.close();
      }
    };

    const tool = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'keys-watch' });
    let status: Status | null = null;
    const announcements: Buffer[] = [];
    const statusProblems = new Set<string>();
    tool.on('message', (topic, payload) => {
      if (topic === topics.status) {
        status = unitDoc<Status>(payload, identity);
        for (const p of unitProblems('status', payload, gatewayKeyOf(identity))) statusProblems.add(p);
      }
      else if (topic === topics.trust && payload.length > 0) announcements.push(payload);
    });
    await tool.subscribeAsync([topics.status, topics.trust], { qos: 1 });
    const keys = () => (status as Status | null)?.counters?.control;
    let collector: Spawned = spawnVgw(['collect', '-c', oldConfig]);
    let unit: Spawned = spawnVgw(['run', '-c', config]);
    const rotate = async (set: string[], configFile: string) => {
      const r = await runVgw(['fleet', 'rotate', 'backend-key', '--keys', set.join(','), '--canary', '1', '--abort-after', '1', '-c', configFile]);
      expect(r.stderr).toBe('');
      return (JSON.parse(r.stdout) as { rollout: string }).rollout;
    };
    const rolloutState = async (id: string, configFile: string) =>
      (JSON.parse((await runVgw(['fleet', 'config', 'status', '--rollout', id, '-c', configFile])).stdout) as { state: string; applied: number }).state;
    try {
      await waitFor('the collector connected', () => collector.output().includes('collector connected'), 20_000);
      await waitFor('the unit acked by the old key', () => (keys() && (status as Status).counters!.uplink.acksReceived > 0 ? true : undefined), 30_000);
      expect(keys()).toMatchObject({ trustedKeys: 1, backendKeys: { version: 0, keys: [TEST_BACKEND.kid.toString('hex')], last: null } });

      // 1. the overlap: {old, new}, signed by the old key (the collector's)
      const first = await rotate([oldHex, newHex], oldConfig);
      await waitFor('the overlap applied', () => keys()?.backendKeys.version === 1, 20_000);
      expect(keys()).toMatchObject({ trustedKeys: 2, backendKeys: { keys: [TEST_BACKEND.kid.toString('hex'), newKey.kid.toString('hex')], last: { version: 1, outcome: 'applied' } } });
      await waitFor('its rollout done', async () => (await rolloutState(first, oldConfig)) === 'done', 20_000);
      expect(controlProblems('control-trust', announcements[0])).toEqual([]);

      // 2. the collector moves to the new key: acks signed with it are taken
      await stopGracefully(collector);
      collector = spawnVgw(['collect', '-c', newConfig]);
      await waitFor('the new collector connected', () => collector.output().includes('collector connected'), 20_000);
      const acksBefore = (status as Status | null)!.counters!.uplink.acksReceived;
      const storedBefore = stored();
      // the first acks may be of batches re-sent and already stored (duplicates): wait for new ones stored too
      await waitFor('acks signed by the new key taken, new batches stored', () => (status as Status | null)!.counters!.uplink.acksReceived > acksBefore && stored() > storedBefore, 60_000);
      expect((status as Status | null)!.counters!.uplink.acksInvalid).toBe(0);

      // a set that leaves out its signer is refused: the unit cannot be locked out by a wrong key
      await tool.publishAsync(topics.trust, newKey.sign({ kind: 'trust', ...to, version: 2, issuedAt: Date.now(), keys: [oldHex] }), { qos: 1, retain: true });
      await waitFor('the set without its signer refused', () => keys()?.backendKeys.last?.version === 2, 20_000);
      expect(keys()!.backendKeys).toMatchObject({ version: 2, last: { outcome: 'refused', reason: expect.stringMatching(/^keys: the set leaves out the key that signed it/) } });
      expect(keys()!.trustedKeys).toBe(2);
      // and the CLI will not start a rotation that leaves out the collector's own key
      const refused = await runVgw(['fleet', 'rotate', 'backend-key', '--keys', oldHex, '-c', newConfig]);
      expect([refused.status, refused.stderr]).toEqual([2, expect.stringMatching(/--keys: the set leaves out this collector's own key/)]);

      // 3. the old key dropped, signed by the new one
      const second = await rotate([newHex], newConfig);
      await waitFor('the old key dropped', () => keys()?.backendKeys.version === 3, 20_000);
      expect(keys()).toMatchObject({ trustedKeys: 1, backendKeys: { keys: [newKey.kid.toString('hex')], last: { version: 3, outcome: 'applied' } } });
      await waitFor('its rollout done', async () => (await rolloutState(second, newConfig)) === 'done', 20_000);
      // the Python client announces as the collector does: the version after the one held, signed with a key of the set
      const py = await runProcess('/usr/bin/python3', [
        '-m', 'vgw_client', 'trust-set', '--url', broker().url, '--prefix', prefix, '--venue', to.venue, '--gateway', to.gateway,
        '--control-key', join(dir, 'new.key'), '--keys', newHex,
      ], { cwd: join(__dirname, '../../clients/python'), timeoutMs: 30_000 });
      expect(py.stderr).toBe('');
      expect(JSON.parse(py.stdout)).toMatchObject({ version: 4, keys: [newHex] });
      await waitFor('the Python announcement applied', () => keys()?.backendKeys.last?.version === 4, 20_000);
      expect(keys()!.backendKeys).toMatchObject({ version: 4, keys: [newKey.kid.toString('hex')], last: { outcome: 'applied' } });
      // anything the old key signs is refused now, across a restart too
      await stopGracefully(unit);
      unit = spawnVgw(['run', '-c', config]);
      await waitFor('the unit back', () => (keys() && (status as Status).state === 'online' && unit.output().includes('broker connected') ? true : undefined), 20_000);
      const unknownBefore = keys()!.refused.unknownKey;
      await tool.publishAsync(topics.ack, TEST_BACKEND.sign({ kind: 'ack', ...to, acks: ['01M98F6KRKKRRAWDPDZHPEKFN5'] }), { qos: 1 });
      await waitFor('the old key refused', () => keys()!.refused.unknownKey === unknownBefore + 1, 20_000);
      expect(keys()).toMatchObject({ trustedKeys: 1, backendKeys: { version: 4 } });
      expect(JSON.parse(readFileSync(join(dir, 'backend-keys.json'), 'utf8'))).toMatchObject({ version: 4, keys: [newHex] });
      // every status on the way (keys applied and refused) conforms to docs/protocol.cddl
      expect([...statusProblems]).toEqual([]);
    } finally {
      await tool.endAsync();
      await stopGracefully(unit);
      await stopGracefully(collector);
    }
  }, 180_000);
});
