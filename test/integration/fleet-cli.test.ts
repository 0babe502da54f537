// `vgw fleet-sim` as an operator runs it: a private Mosquitto and collector, a JSON report whose
// figures are checked against the collector's database; and `vgw fleet config`'s rollouts as the
// CLI keeps them in the collector's database. Bad arguments name the option (exit 2).
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { provisionTestGateway, testBackendKeyFile } from '../harness/identity.js';
import { runVgw, writeJson } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';

describe('vgw fleet-sim', () => {
  it('runs a small fleet against its own broker and collector and reports nothing lost', async () => {
    const r = await runVgw(['fleet-sim', '--gateways', '20', '--minutes', '0.25', '--speed', '60', '--commit-s', '1', '--batch-age-s', '1', '--json'], { timeoutMs: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.gateways).toBe(20);
    expect(report.encountersMade).toBeGreaterThan(50);
    expect(report.atBackend).toEqual({ rows: report.encountersMade, lost: 0, duplicates: 0, foreign: 0 });
    expect(report.drained).toBe(true);
    expect(report.latencyMs.p50).toBeGreaterThan(0);
  }, 150_000);

  it('names the option that is wrong', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--gateways', '0'], /--gateways: "0" must be a whole number of at least 1/],
      [['--minutes', 'ten'], /--minutes: "ten" must be a number/],
      [['--minutes', '1', '--restart-broker-at', '90'], /--restart-broker-at: 90 s is not within the run/],
      [['--collectors', '2'], /--collectors: several collectors share a PostgreSQL database/],
      [['--broker', 'mqtt://127.0.0.1:1', '--restart-broker-at', '5'], /--restart-broker-at: only the private Mosquitto can be restarted/],
    ];
    for (const [args, message] of cases) {
      const r = await runVgw(['fleet-sim', ...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});

describe('vgw fleet config', () => {
  it('starts a rollout over the units a layer applies to, lists it, takes requests, and names what is wrong', async () => {
    const dir = tempDir('vgw-fleet-config-');
    const records = [['gw-1', 'mall-1', ['city-kl', 'mall']], ['gw-2', 'shop-2', ['city-kl']], ['gw-3', 'shop-3', ['city-jb']]].map(([g, v, groups]) => ({
      ...provisionTestGateway(dir, g as string, v as string).record, groups: groups as string[],
    }));
    const registry = writeJson(join(dir, 'registry.json'), records);
    const config = writeJson(join(dir, 'collector.json'), { collector: { database: join(dir, 'collector.db'), registry, controlKeyFile: testBackendKeyFile(dir) } });
    const vgw = async (...args: string[]) => runVgw(['fleet', 'config', ...args, '-c', config]);

    const set = await vgw('set', '--group', 'city-kl', '--settings', '{"uplink":{"statusIntervalS":300}}', '--canary', '1', '--rate', '30', '--abort-after', '50%');
    expect(set.stderr).toBe('');
    const started = JSON.parse(set.stdout) as { rollout: string };
    expect(started).toMatchObject({ layer: 'group city-kl', version: 1, units: 2, plan: { canary: 1, ratePerMinute: 30, abortAfter: 2, settleMs: 600_000 } });
    const listed = JSON.parse((await vgw('status')).stdout) as { rollouts: Array<Record<string, unknown>> };
    expect(listed.rollouts).toEqual([expect.objectContaining({ id: started.rollout, change: 'group city-kl version 1', state: 'running', units: 2, pending: 2, requested: null })]);
    const paused = await vgw('pause', started.rollout);
    expect(JSON.parse(paused.stdout)).toMatchObject({ rollout: started.rollout, requested: 'pause' });
    const one = JSON.parse((await vgw('status', '--rollout', started.rollout)).stdout) as { requested: string; units: Array<{ gateway: string }> };
    expect(one.requested).toBe('pause');
    expect(one.units.map((u) => u.gateway).sort()).toEqual(['gw-1', 'gw-2']);

    const cases: Array<[string[], RegExp]> = [
      [['set', '--settings', '{}'], /give exactly one of --fleet \(every unit\), --group NAME/],
      [['set', '--fleet', '--gateway', 'gw-1', '--settings', '{}'], /give exactly one of --fleet/],
      [['set', '--fleet', '--settings', '{"uplink":{"statusIntervalS":"often"}}'], /--settings: uplink\.statusIntervalS: /],
      [['set', '--fleet', '--settings', '{}', '--canary', '0%'], /--canary: "0%" must be a share above 0% and at most 100%/],
      [['set', '--fleet', '--settings', '{}', '--abort-after', 'some'], /--abort-after: "some" is neither a number of units/],
      [['set', '--fleet', '--settings', '{}', '--rate', '-5'], /--rate: "-5" must be a positive number of units per minute/],
      [['set', '--fleet', '--settings', '{}', '--settle', '2'], /--settle: "2" must be at least 10 seconds/],
      [['set', '--gateway', 'gw-1', '--venue', 'shop-2', '--settings', '{}'], /--venue: "gw-1" is registered at venue "mall-1", not "shop-2"/],
      [['status', '--rollout', 'nope'], /--rollout: no rollout "nope"/],
      [['abort', 'nope'], /<rollout>: no rollout "nope"/],
    ];
    for (const [args, message] of cases) {
      const r = await vgw(...args);
      expect([r.status, r.stderr], args.join(' ')).toEqual([2, expect.stringMatching(message)]);
    }
    // a group no unit is in is a failure of the request, not of its arguments
    const nobody = await vgw('set', '--group', 'city-xx', '--settings', '{}');
    expect([nobody.status, nobody.stderr]).toEqual([1, expect.stringMatching(/no unit of the registry is in group "city-xx"/)]);
    const noConfig = await runVgw(['fleet', 'config', 'status']);
    expect([noConfig.status, noConfig.stderr]).toEqual([2, expect.stringMatching(/-c\/--config: required: the collector's config/)]);

    // a rotation of the units' signing keys: a rollout of its own kind over a group's units, listed with the others
    const rotate = (...args: string[]) => runVgw(['fleet', 'rotate', 'gateway-key', ...args, '-c', config]);
    const rotation = await rotate('--group', 'city-kl', '--canary', '1');
    expect(rotation.stderr).toBe('');
    const rotating = JSON.parse(rotation.stdout) as { rollout: string };
    expect(rotating).toMatchObject({ change: 'signing keys of group city-kl', units: 2, of: 'group city-kl', plan: { canary: 1 } });
    const all = JSON.parse((await vgw('status')).stdout) as { rollouts: Array<{ id: string; change: string; state: string }> };
    expect(all.rollouts.find((r) => r.id === rotating.rollout)).toMatchObject({ change: 'signing keys of group city-kl', state: 'running' });
    expect([(await rotate()).status, (await rotate()).stderr]).toEqual([2, expect.stringMatching(/give exactly one of --fleet/)]);
    const unknownUnit = await rotate('--gateway', 'gw-9');
    expect([unknownUnit.status, unknownUnit.stderr]).toEqual([1, expect.stringMatching(/no unit "gw-9" in the registry/)]);
    const noRegistry = writeJson(join(dir, 'no-registry.json'), { collector: { database: join(dir, 'collector.db'), acceptUnsigned: true, controlKeyFile: testBackendKeyFile(dir) } });
    const without = await runVgw(['fleet', 'rotate', 'gateway-key', '--fleet', '-c', noRegistry]);
    expect([without.status, without.stderr]).toEqual([2, expect.stringMatching(/--config: the collector has no registry/)]);
  });
});
