import { Command } from 'commander';
import { startRotation, startScoped } from '../collector/rollouts.js';
import { loadBackendKeySeed } from '../core/trust/index.js';
import { ControlSigner } from '../core/wire/index.js';
import { fail, UsageError } from './errors.js';
import { governance, layerOf, printStarted, rolloutOptions, rolloutPlan, type RolloutOptions, type Target, targetOptions } from './rollout-options.js';

/** `vgw fleet rotate`: rotating what units trust, in stages (docs/operating.md, "Rotating the backend key"). */
export function fleetRotateCommand(): Command {
  const cmd = new Command('rotate')
    .description('rotate what the units trust, in a staged rollout')
    .addHelpText('after', '\nExamples:\n  vgw fleet rotate backend-key --keys 3f2a…,9c41… -c collector.json\n  vgw fleet rotate gateway-key --group city-kl -c collector.json');
  const keys = cmd.command('backend-key')
    .description('announce the backend keys the units are to trust from now on: signed by the collector driving the rollout, whose key the set must keep')
    .requiredOption('--keys <hex,…>', "the whole set, 1 to 8 Ed25519 public keys as 64 hex digits each (`vgw backend-key` prints one); the collector's own must be among them")
    .option('--gateway <id>', 'one unit only (default: every registered unit)');
  rolloutOptions(keys)
    .option('-c, --config <file>', "the collector's config: its database, registry and key")
    .addHelpText(
      'after',
      '\nWith an overlap, never a lockout:\n' +
        '  1. vgw backend-key --out new.key                 (prints its public key)\n' +
        '  2. vgw fleet rotate backend-key --keys OLD,NEW    (signed with the old key, which the set keeps)\n' +
        '  3. give every collector new.key (collector.controlKeyFile) and restart them\n' +
        '  4. vgw fleet rotate backend-key --keys NEW        (signed with the new key)\n' +
        'A unit takes a set only if it keeps the key that signed it, and only a version above the last.\n' +
        'Follow it with `vgw fleet config status`. Exit codes: 0 started, 1 failure, 2 bad arguments.\n' +
        'Example:\n  vgw fleet rotate backend-key --keys 3f2a…,9c41… -c collector.json',
    )
    .action(async (opts: RolloutOptions & { keys: string; gateway?: string; config?: string }) => {
      try {
        const set = [...new Set(opts.keys.split(',').map((k) => k.trim().toLowerCase()).filter((k) => k !== ''))];
        const bad = set.find((k) => !/^[0-9a-f]{64}$/.test(k));
        if (bad !== undefined) throw new UsageError(`--keys: "${bad}" is not an Ed25519 public key (64 hex digits, as \`vgw backend-key\` prints)`);
        if (set.length < 1 || set.length > 8) throw new UsageError(`--keys: ${set.length} keys; give 1 to 8`);
        const rollout = await governance(opts.config, async (store, registry, config) => {
          const own = new ControlSigner(loadBackendKeySeed(config.collector!.controlKeyFile)).key.publicKey.toString('hex');
          if (!set.includes(own)) throw new UsageError(`--keys: the set leaves out this collector's own key (${own}), which signs the announcements: units would refuse them`);
          return startRotation(store, registry, set, await rolloutPlan(opts, store, registry), opts.gateway);
        });
        process.stdout.write(JSON.stringify({ rollout: rollout.id, change: rollout.change, keys: set, units: rollout.units.length, plan: rollout.plan }) + '\n');
      } catch (err) {
        fail(err);
      }
    });
  const gatewayKeys = cmd.command('gateway-key')
    .description("have units make a new signing key each and register it (the registry's key and the new one both accepted during an overlap)");
  rolloutOptions(targetOptions(gatewayKeys))
    .option('-c, --config <file>', "the collector's config: its database and registry")
    .addHelpText(
      'after',
      '\nEach unit is ordered (signed, retained on <base>/key) to make rotation N of its key; it asks a collector\n' +
        'to register the new key (signed with its current key, with proof it holds the new one); the collector\n' +
        "records it in its database as that key's successor and says so; only then does the unit restart signing\n" +
        'with it. The old key stays accepted until the new one has been in use for an hour. The registry file is\n' +
        'not rewritten: its key starts the chain the database continues. A unit is done once its status reports\n' +
        'the rotation. Follow it with `vgw fleet config status`. Exit codes: 0 started, 1 failure, 2 bad arguments.\n' +
        'Example:\n  vgw fleet rotate gateway-key --fleet --canary 1% --rate 300 -c collector.json',
    )
    .action(async (opts: Target & RolloutOptions & { config?: string }) => {
      try {
        const { scope, name } = layerOf(opts);
        const rollout = await governance(opts.config, async (store, registry) => {
          if (!registry) throw new UsageError("--config: the collector has no registry (collector.registry): units' keys are registered against it");
          return startScoped(store, registry, scope, name, { kind: 'signingKey' }, await rolloutPlan(opts, store, registry));
        });
        printStarted(rollout, scope, name);
      } catch (err) {
        fail(err);
      }
    });
  return cmd;
}
