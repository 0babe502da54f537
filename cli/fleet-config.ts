import { Command } from 'commander';
import { currentConfig, reportedConfig } from '../collector/remote-config.js';
import { describeLayer, rolloutProgress, startChange } from '../collector/rollouts.js';
import { ConfigError, remoteConfig } from '../core/config/index.js';
import { layerApplies } from '../core/fleet/index.js';
import { fail, UsageError } from './errors.js';
import { governance, layerOf, rolloutOptions, rolloutPlan, type RolloutOptions, type Target } from './rollout-options.js';
import { type AddressOptions, addressOptions, gatewayAddress } from './gateway-address.js';

/** The settings as JSON, checked as a unit would check them over an empty file (the unit checks them again over its own). */
function parseSettings(text: string): Record<string, unknown> {
  let settings: unknown;
  try {
    settings = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--settings: not JSON (${(err as Error).message}): give an object of config keys, e.g. '{"uplink":{"statusIntervalS":300}}'`);
  }
  if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) throw new UsageError('--settings: must be a JSON object of config keys (`vgw config docs`)');
  try {
    remoteConfig({}, settings as Record<string, unknown>, 0);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(`--settings: ${err.problems.join('; ')}`);
    throw err;
  }
  return settings as Record<string, unknown>;
}

const print = (value: unknown) => process.stdout.write(JSON.stringify(value) + '\n');

/** `vgw fleet config`: the backend's configuration of units in layers, rolled out in stages (docs/operating.md). */
export function fleetConfigCommand(): Command {
  const cmd = new Command('config')
    .description("the backend's configuration of units: layers (fleet, group, unit) rolled out in stages, each unit keeping a change only once healthy")
    .addHelpText('after', '\nExample:\n  vgw fleet config set --fleet --settings \'{"uplink":{"statusIntervalS":300}}\' --canary 5% --rate 600 --abort-after 2% -c collector.json');
  const set = cmd.command('set')
    .description('change a layer (its settings replaced, as its next version) and start rolling it out to the units it applies to')
    .option('--fleet', 'the fleet defaults: every unit')
    .option('--group <name>', 'a group: the units whose registry record lists it in "groups"')
    .option('--gateway <id>', "one unit's own overrides")
    .option('--venue <id>', 'the venue of --gateway (checked against the registry)')
    .requiredOption('--settings <json>', 'config keys as JSON, e.g. \'{"uplink":{"statusIntervalS":300}}\' (never gateway, keys, certificates or store.path); {} clears the layer');
  rolloutOptions(set)
    .option('-c, --config <file>', "the collector's config: its database and registry")
    .addHelpText(
      'after',
      '\nA unit gets the fleet layer, then its groups in its record\'s order, then its own, merged in one signed,\n' +
        'retained message. It checks them with the schema of `vgw config check`, restarts into them and keeps them once\n' +
        'healthy (broker, radio, a commit) within remote.healthGateS, or rolls back by itself. A running collector\n' +
        '(`vgw collect`) carries the rollout out; beyond the canary, no more units await an outcome than failures the\n' +
        'rollout can still afford, so a change that breaks units reaches at most the canary plus --abort-after of them.\n' +
        'Follow it with `vgw fleet config status`, the fleet page or /metrics (vgw_rollout_units).\n' +
        'Exit codes: 0 started, 1 failure, 2 bad arguments.\n' +
        'Examples:\n  vgw fleet config set --group city-kl --settings \'{"uplink":{"statusIntervalS":300}}\' -c collector.json\n' +
        '  vgw fleet config set --gateway gw-01 --venue mall-01 --settings \'{"log":{"level":"debug"}}\' --canary 1 -c collector.json',
    )
    .action(async (opts: Target & RolloutOptions & { venue?: string; settings: string; config?: string }) => {
      try {
        const { scope, name } = layerOf(opts);
        const settings = parseSettings(opts.settings);
        const started = await governance(opts.config, async (store, registry) => {
          if (scope === 'gateway' && opts.venue !== undefined) {
            const venue = registry?.lookup(name)?.record.venue;
            if (venue !== undefined && venue !== opts.venue) throw new UsageError(`--venue: "${name}" is registered at venue "${venue}", not "${opts.venue}"`);
          }
          return startChange(store, registry, scope, name, settings, await rolloutPlan(opts, store, registry));
        });
        print({ rollout: started.rollout.id, layer: describeLayer(scope, name), version: started.layer.version, settings, units: started.rollout.units.length, plan: started.rollout.plan });
      } catch (err) {
        fail(err);
      }
    });
  cmd.command('status')
    .description('the rollouts: each one\'s state, and its units pending, awaited, offline, applied and failed (with why)')
    .option('--rollout <id>', 'one rollout, with every unit')
    .option('-c, --config <file>', "the collector's config: its database")
    .addHelpText('after', '\nExit codes: 0 ok, 1 failure, 2 bad arguments.\nExample:\n  vgw fleet config status -c collector.json')
    .action(async (opts: { rollout?: string; config?: string }) => {
      try {
        await governance(opts.config, async (store) => {
          const rollouts = await store.rollouts(20);
          if (opts.rollout === undefined) return print({ rollouts: rollouts.map((r) => ({ ...rolloutProgress(r.rollout), requested: r.requested })) });
          const one = rollouts.find((r) => r.rollout.id === opts.rollout);
          if (!one) throw new UsageError(`--rollout: no rollout "${opts.rollout}" (\`vgw fleet config status\` lists them)`);
          print({ ...rolloutProgress(one.rollout), requested: one.requested, units: one.rollout.units });
        });
      } catch (err) {
        fail(err);
      }
    });
  for (const request of ['pause', 'resume', 'abort'] as const) {
    cmd.command(request)
      .description(request === 'pause' ? 'hold a rollout: nothing more is sent until resume' : request === 'resume' ? 'carry a paused rollout on at its rate' : 'stop a rollout for good (units that took the change keep it)')
      .argument('<rollout>', 'the rollout id (`vgw fleet config status`)')
      .option('-c, --config <file>', "the collector's config: its database")
      .addHelpText('after', `\nExit codes: 0 requested, 1 failure, 2 bad arguments (no such rollout).\nExample:\n  vgw fleet config ${request} 01JF3T2X6Q8R4M5N7P9S0V1W2Y -c collector.json`)
      .action(async (id: string, opts: { config?: string }) => {
        try {
          await governance(opts.config, async (store) => {
            if (!(await store.requestRollout(id, request))) throw new UsageError(`<rollout>: no rollout "${id}" (\`vgw fleet config status\` lists them)`);
          });
          print({ rollout: id, requested: request, note: 'the collector driving rollouts carries it out within a second or two' });
        } catch (err) {
          fail(err);
        }
      });
  }
  addressOptions(cmd.command('show'), 'the configuration', 'the broker')
    .description('the layers that apply to one unit, the configuration the broker holds for it, and what the unit last reported of it')
    .addHelpText('after', '\nExit codes: 0 ok, 1 failure, 2 bad arguments, 3 no broker.\nExample:\n  vgw fleet config show --venue mall-01 --gateway gw-01 -c collector.json')
    .action(async (opts: AddressOptions) => {
      try {
        const { address, config, registry } = await gatewayAddress(opts, 'config');
        const groups = registry?.lookup(opts.gateway)?.record.groups ?? [];
        const layers = config.collector
          ? await governance(opts.config, async (store) => (await store.layers()).filter((l) => layerApplies(l.scope, l.name, { gateway: opts.gateway, groups })))
          : [];
        const desired = await currentConfig(address);
        const reported = await reportedConfig(address);
        print({
          layers: layers.map((l) => ({ layer: describeLayer(l.scope, l.name), version: l.version, settings: l.settings, updatedAt: new Date(l.updatedAt).toISOString() })),
          desired: desired && { version: desired.version, issuedAt: new Date(desired.issuedAt).toISOString(), settings: desired.settings, layers: desired.layers ?? [] },
          reported,
        });
      } catch (err) {
        fail(err);
      }
    });
  return cmd;
}
