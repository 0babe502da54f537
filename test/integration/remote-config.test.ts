// Remote configuration end to end (issue 26, items 3 and 6): the real daemon, a real Mosquitto, a
// real collector driving the rollout, and the backend's `vgw fleet config set|status|show`. The
// test plays systemd: a unit that exits 75 is started again. A good version is tried and
// committed; a bad one is refused with its field while the unit runs on; a local-only key is
// refused; one that cuts the unit off its broker is rolled back by the unit itself, which stops
// the rollout and takes the change back from its layer; an old version replayed and an unsigned
// one change nothing.
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configVersion, loadConfig, remoteConfig } from '../../core/config/index.js';
import { gatewayTopics, type ConfigVersion } from '../../core/wire/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { gatewayKeyOf, provisionTestGateway, TEST_BACKEND, testBackendKeyFile, unitDoc } from '../harness/identity.js';
import { controlProblems, unitProblems } from '../harness/protocol-schema.js';
import { runProcess, runVgw, spawnVgw, stopGracefully, superviseVgw, waitFor, writeJson } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';
import { simulatedUnitConfig } from '../harness/unit-config.js';

const dir = tempDir('vgw-remote-config-');
const broker = useLocalBroker(dir);
const prefix = 'remote/v3';

describe('remote configuration', () => {
  it('rolls a version out through the collector behind the health gate, refuses bad ones by field, stops the rollout of one that cuts the unit off, and ignores replays', async () => {
    const identity = provisionTestGateway(dir, 'gw-rc', 'venue-rc');
    const to = { venue: 'venue-rc', gateway: 'gw-rc' };
    const topics = gatewayTopics(prefix, to.venue, to.gateway);
    const { config, db } = simulatedUnitConfig({ dir, identity, brokerUrl: broker().url, prefix, seed: 9, extra: { uplink: { statusIntervalS: 30 }, remote: { healthGateS: 10 } } });
    const registry = writeJson(join(dir, 'rc-registry.json'), [identity.record]);
    const collectorConfig = writeJson(join(dir, 'rc-collector.json'), {
      broker: { url: broker().url }, topicPrefix: prefix, collector: { database: join(dir, 'rc-collector.db'), registry, controlKeyFile: testBackendKeyFile(dir), http: { port: 0 } },
    });
    const collector = spawnVgw(['collect', '-c', collectorConfig]);
    await waitFor('the collector connected', () => collector.output().includes('collector connected'), 20_000);
    const address = ['--venue', to.venue, '--gateway', to.gateway, '-c', collectorConfig];
    const rollout = async (settings: string) => {
      const r = await runVgw(['fleet', 'config', 'set', '--gateway', to.gateway, '--venue', to.venue, '--settings', settings, '--canary', '1', '--abort-after', '1', '--settle', '60', '-c', collectorConfig]);
      expect(r.stderr).toBe('');
      return JSON.parse(r.stdout) as { rollout: string; version: number; units: number };
    };
    const rolloutStatus = async (id: string) =>
      JSON.parse((await runVgw(['fleet', 'config', 'status', '--rollout', id, '-c', collectorConfig])).stdout) as { state: string; reason?: string; applied: number; failed: number; units: Array<{ state: string; version: number; reason?: string }> };
    const tool = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'rc-watch' });
    let status: { state: string; config: ConfigVersion } | null = null;
    const statusProblems = new Set<string>();
    let retainedConfig: Buffer | null = null;
    tool.on('message', (topic, payload) => {
      if (topic === topics.status) {
        status = unitDoc(payload, identity);
        for (const p of unitProblems('status', payload, gatewayKeyOf(identity))) statusProblems.add(p);
      } else if (topic === topics.config) retainedConfig = payload;
    });
    await tool.subscribeAsync([topics.status, topics.config], { qos: 1 });
    const reported = () => (status as { state: string; config: ConfigVersion } | null);
    const unit = superviseVgw(config);
    await waitFor('the unit online', () => reported()?.state === 'online', 30_000);
    expect(reported()!.config).toMatchObject({ source: 'file', remote: { version: null, state: 'none', last: null } });
    const file = loadConfig(config);

    // 1. A good version: the collector sends it, the unit restarts into it, passes the gate, commits it, and the rollout is done.
    // (store.checkpointS is not taken while running: the unit restarts into it)
    const first = await rollout('{"uplink":{"statusIntervalS":2},"store":{"checkpointS":0.5}}');
    expect(first).toMatchObject({ version: 1, units: 1, settings: { uplink: { statusIntervalS: 2 }, store: { checkpointS: 0.5 } } });
    await waitFor('version 1 applied', () => reported()?.config.remote?.last?.outcome === 'applied', 40_000);
    expect(unit.starts()).toBe(2);
    await waitFor('the rollout done', async () => (await rolloutStatus(first.rollout)).state === 'done', 20_000);
    expect(await rolloutStatus(first.rollout)).toMatchObject({ applied: 1, failed: 0, units: [{ state: 'applied', version: 1 }] });
    // the configuration as published conforms to docs/protocol.cddl, and so does every status
    expect(controlProblems('control-config', await waitFor('the retained configuration', () => retainedConfig ?? undefined, 10_000))).toEqual([]);
    expect(reported()!.config).toMatchObject({ source: 'remote', version: configVersion(remoteConfig(file, { uplink: { statusIntervalS: 2 }, store: { checkpointS: 0.5 } }, 1)), remote: { version: 1, state: 'committed', last: { version: 1, outcome: 'applied' } } });
    // the technician's own setting (statusIntervalS 30 in the file) stays visible as overridden, key by key
    expect(reported()!.config.remote!.overrides).toEqual(['uplink.statusIntervalS', 'store.checkpointS']);
    const show = JSON.parse((await runVgw(['fleet', 'config', 'show', ...address])).stdout) as { desired: { version: number }; reported: { source: string; remote: { version: number } } };
    expect(show).toMatchObject({
      layers: [{ layer: 'gateway gw-rc', version: 1, settings: { uplink: { statusIntervalS: 2 }, store: { checkpointS: 0.5 } } }],
      desired: { version: 1, settings: { uplink: { statusIntervalS: 2 }, store: { checkpointS: 0.5 } }, layers: [{ layer: 'gateway', name: 'gw-rc', version: 1 }] },
      reported: { state: 'online', source: 'remote', remote: { version: 1, state: 'committed' } },
    });

    // 2. Signed but invalid, and 3. a key only a technician sets: refused by field, nothing restarts.
    const publish = (payload: Buffer | string) => tool.publishAsync(topics.config, payload, { qos: 1, retain: true });
    const signed = (version: number, settings: Record<string, unknown>) => TEST_BACKEND.sign({ kind: 'config', ...to, version, issuedAt: Date.now(), settings });
    await publish(signed(2, { uplink: { statusIntervalS: 'often' } }));
    await waitFor('version 2 refused', () => reported()?.config.remote?.last?.version === 2, 20_000);
    expect(reported()!.config.remote!.last).toMatchObject({ outcome: 'refused', reason: expect.stringMatching(/^uplink\.statusIntervalS: /) });
    await publish(signed(3, { broker: { cert: '/tmp/another.crt' } }));
    await waitFor('version 3 refused', () => reported()?.config.remote?.last?.version === 3, 20_000);
    expect(reported()!.config.remote!.last).toMatchObject({ outcome: 'refused', reason: 'broker.cert: set on the unit only (`vgw provision`), never remotely' });
    expect(reported()!.config.remote).toMatchObject({ version: 1, state: 'committed' });
    expect(unit.starts()).toBe(2);
    // the CLI refuses the same before it changes anything
    const bad = await runVgw(['fleet', 'config', 'set', '--gateway', to.gateway, '--settings', '{"store":{"path":"/elsewhere.db"}}', '-c', collectorConfig]);
    expect([bad.status, bad.stderr]).toEqual([2, expect.stringMatching(/--settings: store\.path: set on the unit only/)]);

    // 4. A broker the unit cannot reach: it tries, fails the gate, and comes back by itself.
    const countEncounters = () => {
      const g = new Database(db, { readonly: true });
      try {
        return g.prepare('SELECT count(*) FROM encounters').pluck().get() as number;
      } finally {
        g.close();
      }
    };
    // The unit's version goes above the ones it was offered (2 and 3 were published by hand).
    const cut = await rollout('{"broker":{"url":"mqtt://127.0.0.1:9"}}');
    expect(cut).toMatchObject({ version: 2 });
    await waitFor('the trial of version 4 started', () => unit.starts() === 3, 20_000);
    const storedBefore = countEncounters();
    await waitFor('version 4 rolled back', () => reported()?.config.remote?.last?.version === 4, 60_000);
    const rolledBack = 'not healthy within 10 s (broker connected, radio on, a store commit)';
    expect(reported()!.config.remote).toMatchObject({ version: 1, state: 'committed', last: { outcome: 'rolledBack', reason: rolledBack } });
    expect(reported()!.state).toBe('online');
    expect(unit.starts()).toBe(4);
    expect(countEncounters()).toBeGreaterThanOrEqual(storedBefore);
    // the rollout stopped by itself, and its change is no longer in the layer
    await waitFor('the rollout aborted', async () => (await rolloutStatus(cut.rollout)).state === 'aborted', 20_000);
    expect(await rolloutStatus(cut.rollout)).toMatchObject({
      failed: 1, reason: '1 units failed (the rollout stops at 1); gateway gw-rc restored to its settings before version 2',
      units: [{ state: 'failed', version: 4, reason: `rolled back version 4: ${rolledBack}` }],
    });
    const layersAfter = JSON.parse((await runVgw(['fleet', 'config', 'show', ...address])).stdout) as { layers: unknown[] };
    expect(layersAfter.layers).toEqual([expect.objectContaining({ layer: 'gateway gw-rc', version: 3, settings: { uplink: { statusIntervalS: 2 }, store: { checkpointS: 0.5 } } })]);

    // The Python client publishes the next version as vgw fleet config set does, and the unit takes it.
    const py = await runProcess('/usr/bin/python3', [
      '-m', 'vgw_client', 'config-set', '--url', broker().url, '--prefix', prefix, '--venue', to.venue, '--gateway', to.gateway,
      '--control-key', testBackendKeyFile(dir), '--settings', '{"uplink":{"statusIntervalS":3}}',
    ], { cwd: join(__dirname, '../../clients/python'), timeoutMs: 30_000 });
    expect(py.stderr).toBe('');
    expect(JSON.parse(py.stdout)).toMatchObject({ version: 5 });
    await waitFor('version 5 applied', () => reported()?.config.remote?.last?.version === 5 && reported()?.config.remote?.last?.outcome === 'applied', 40_000);
    expect(reported()!.config.remote).toMatchObject({ version: 5, state: 'committed' });
    expect(unit.starts()).toBe(5);
    // a technician's doctor checks what the unit runs: the file with version 5 over it
    const doctor = JSON.parse((await runVgw(['doctor', '-c', config, '--json'])).stdout) as Array<{ check: string; detail: string }>;
    expect(doctor.find((c) => c.check === 'config')?.detail).toMatch(/the backend's configuration version 5 is laid over it, setting uplink\.statusIntervalS over this file's$/);

    // A version that changes only what a running unit takes (log.level, uplink.statusIntervalS): no restart, the same health gate.
    const hot = await runProcess('/usr/bin/python3', [
      '-m', 'vgw_client', 'config-set', '--url', broker().url, '--prefix', prefix, '--venue', to.venue, '--gateway', to.gateway,
      '--control-key', testBackendKeyFile(dir), '--settings', '{"uplink":{"statusIntervalS":4},"log":{"level":"debug"}}',
    ], { cwd: join(__dirname, '../../clients/python'), timeoutMs: 30_000 });
    expect(JSON.parse(hot.stdout)).toMatchObject({ version: 6 });
    await waitFor('version 6 applied', () => reported()?.config.remote?.last?.version === 6 && reported()?.config.remote?.last?.outcome === 'applied', 40_000);
    expect(unit.starts()).toBe(5);
    expect(unit.output()).toContain('remote configuration taken without a restart');
    expect(reported()!.config).toMatchObject({
      source: 'remote', version: configVersion(remoteConfig(file, { uplink: { statusIntervalS: 4 }, log: { level: 'debug' } }, 6)),
      remote: { version: 6, state: 'committed', overrides: ['uplink.statusIntervalS', 'log.level'] },
    });
    // at the debug level now: the unit logs what only debug shows
    await waitFor('a debug line', () => (/"level":20/.test(unit.output().split('remote configuration taken without a restart')[1] ?? '') ? true : undefined), 20_000);

    // 5. An old version replayed and an unsigned one: nothing restarts, the unsigned one is counted.
    await publish(signed(1, { uplink: { statusIntervalS: 2 } }));
    await publish(JSON.stringify({ v: 3, kind: 'config', ...to, version: 99, issuedAt: Date.now(), settings: { uplink: { statusIntervalS: 5 } } }));
    await waitFor('the unsigned one counted', () => (reported() as unknown as { counters?: { control: { refused: { unsigned: number } } } })?.counters?.control.refused.unsigned === 1, 20_000);
    expect(unit.starts()).toBe(5);
    expect(reported()!.config.remote).toMatchObject({ version: 6, state: 'committed' });

    expect([...statusProblems]).toEqual([]);
    await tool.endAsync();
    expect(await unit.stop()).toBe(0);
    expect(await stopGracefully(collector)).toBe(0);
  });
});
