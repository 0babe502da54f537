// `vgw fleet command` end to end (issue 26, item 6): two real daemons under a supervisor that
// restarts them on 75 as systemd does, a real Mosquitto and a real `vgw collect` driving the
// rollouts. A restart goes to the canary alone first and counts only once the unit is back; a
// doctor's verdict is the one `vgw doctor` gives beside the unit; a unit offline at its turn is not
// reached and does not hold the rollout open.
import mqtt from 'mqtt';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gatewayTopics, openUnitMessage } from '../../core/wire/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { provisionTestGateway, testBackendKeyFile } from '../harness/identity.js';
import { runVgw, spawnVgw, stopGracefully, superviseVgw, waitFor, writeJson } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';
import { simulatedUnitConfig } from '../harness/unit-config.js';

const dir = tempDir('vgw-fleet-command-');
const broker = useLocalBroker(dir);
const prefix = 'fcmd/v3';

interface RolloutView {
  state: string;
  reason?: string;
  applied: number;
  failed: number;
  offline: number;
  units: Array<{ gateway: string; state: string; sentAt?: string | number; settledAt?: string | number; reason?: string }>;
}

describe('vgw fleet command', () => {
  it('restarts units in stages and counts each once back, runs doctor with the verdict of vgw doctor, and skips a unit offline', async () => {
    const units = ['gw-fc1', 'gw-fc2'].map((gateway, i) => {
      const home = join(dir, gateway);
      mkdirSync(home);
      const identity = provisionTestGateway(home, gateway, `venue-fc${i + 1}`);
      const { config } = simulatedUnitConfig({ dir: home, identity, brokerUrl: broker().url, prefix, seed: 31 + i, extra: { uplink: { statusIntervalS: 1, batchMaxAgeS: 1 } } });
      return { gateway, venue: identity.record.venue, identity, config };
    });
    const registry = writeJson(join(dir, 'registry.json'), units.map((u) => u.identity.record));
    const collectorConfig = writeJson(join(dir, 'collector.json'), {
      broker: { url: broker().url, clientId: 'collector-fc' }, topicPrefix: prefix,
      collector: { database: join(dir, 'collector.db'), registry, controlKeyFile: testBackendKeyFile(dir), http: { port: 0 } },
    });
    const tool = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'fc-watch' });
    const online = new Map<string, string>();
    tool.on('message', (topic, payload) => {
      const opened = openUnitMessage(payload, null);
      if (!opened.ok) return;
      const doc = opened.doc as { gateway: string; state: string; startedAt?: string };
      if (doc.state === 'online') online.set(doc.gateway, doc.startedAt ?? '');
      else online.delete(doc.gateway);
    });
    await tool.subscribeAsync(units.map((u) => gatewayTopics(prefix, u.venue, u.gateway).status), { qos: 1 });
    const collector = spawnVgw(['collect', '-c', collectorConfig]);
    const supervised = units.map((u) => superviseVgw(u.config));
    const fleet = (...args: string[]) => runVgw(['fleet', 'command', ...args, '--settle', '60', '-c', collectorConfig]);
    const view = async (id: string) => JSON.parse((await runVgw(['fleet', 'config', 'status', '--rollout', id, '-c', collectorConfig])).stdout) as RolloutView;
    const ended = (id: string) => waitFor(`rollout ${id} ended`, async () => {
      const v = await view(id);
      return v.state === 'done' || v.state === 'aborted' ? v : undefined;
    }, 90_000);
    try {
      await waitFor('the collector connected', () => collector.output().includes('collector connected'), 20_000);
      await waitFor('both units online', () => (online.size === 2 ? true : undefined), 30_000);
      // the collector holds both statuses before the rollout picks its online units
      await waitFor('the collector saw both online', async () => {
        const r = await runVgw(['fleet', '-c', collectorConfig, '--json']);
        const rows = (JSON.parse(r.stdout) as { gateways: Array<{ state: string }> }).gateways;
        return rows.filter((g) => g.state === 'online').length === 2 ? true : undefined;
      }, 20_000);
      const startedBefore = new Map(online);

      // 1. restart: the canary alone, back online, then the other
      const started = await fleet('restart', '--fleet', '--canary', '1', '--abort-after', '2', '--rate', 'max');
      expect(started.stderr).toBe('');
      const restart = JSON.parse(started.stdout) as { rollout: string; units: number; change: string };
      expect(restart).toMatchObject({ units: 2, change: 'restart on fleet' });
      const restarted = await ended(restart.rollout);
      expect(restarted).toMatchObject({ state: 'done', applied: 2, failed: 0 });
      expect(supervised.map((s) => s.starts())).toEqual([2, 2]);
      const [canary, rest] = restarted.units;
      expect(new Date(canary.settledAt!).getTime()).toBeLessThanOrEqual(new Date(rest.sentAt!).getTime());
      await waitFor('both back online, started again', () => (units.every((u) => online.has(u.gateway) && online.get(u.gateway) !== startedBefore.get(u.gateway)) ? true : undefined), 20_000);

      // 2. doctor: each unit's verdict is the one vgw doctor gives beside it
      const doctor = JSON.parse((await fleet('doctor', '--fleet', '--canary', '1', '--abort-after', '100%', '--rate', 'max')).stdout) as { rollout: string };
      const doctored = await ended(doctor.rollout);
      for (const u of units) {
        const local = JSON.parse((await runVgw(['doctor', '-c', u.config, '--json'])).stdout) as Array<{ check: string; ok: boolean }>;
        const remote = doctored.units.find((x) => x.gateway === u.gateway)!;
        if (local.every((c) => c.ok)) expect(remote).toMatchObject({ state: 'applied' });
        else expect(remote).toMatchObject({ state: 'failed', reason: expect.stringContaining(`doctor: ${local.find((c) => !c.ok)!.check}`) });
      }

      // 3. a unit offline is not reached and does not hold the rollout open
      await supervised[1].stop();
      await waitFor('the collector saw it go', async () => {
        const rows = (JSON.parse((await runVgw(['fleet', '-c', collectorConfig, '--json'])).stdout) as { gateways: Array<{ gateway: string; state: string }> }).gateways;
        return rows.find((g) => g.gateway === units[1].gateway)?.state === 'offline' ? true : undefined;
      }, 20_000);
      const level = JSON.parse((await fleet('log-level', '--fleet', '--level', 'debug', '--for', '60', '--canary', '1', '--abort-after', '1', '--rate', 'max')).stdout) as { rollout: string; change: string };
      expect(level.change).toBe('log level debug for 60 s on fleet');
      const leveled = await ended(level.rollout);
      expect(leveled).toMatchObject({ state: 'done', applied: 1, failed: 0, offline: 1 });
      expect(supervised[0].output()).toMatch(/log level set by a signed command/);

      // arguments are checked before anything starts
      const bad = await runVgw(['fleet', 'command', 'log-level', '--fleet', '--level', 'loud', '--for', '60', '-c', collectorConfig]);
      expect([bad.status, bad.stderr]).toEqual([2, expect.stringMatching(/--level: "loud" is not one of fatal, error/)]);
      const noTarget = await runVgw(['fleet', 'command', 'restart', '-c', collectorConfig]);
      expect([noTarget.status, noTarget.stderr]).toEqual([2, expect.stringMatching(/give exactly one of --fleet/)]);
    } finally {
      await tool.endAsync();
      for (const s of supervised) await s.stop();
      await stopGracefully(collector);
    }
  }, 240_000);
});
