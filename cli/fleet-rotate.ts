import { Command } from 'commander';
import { startRotation } from '../collector/rollouts.js';
import { loadBackendKeySeed } from '../core/trust/index.js';
import { ControlSigner } from '../core/wire/index.js';
import { fail, UsageError } from './errors.js';
import { governance, rolloutOptions, rolloutPlan, type RolloutOptions } from './rollout-options.js';

/** `vgw fleet rotate`: rotating what units trust, in stages (docs/operating.md, "Rotating the backend key"). */
export function fleetRotateCommand(): Command {
  const cmd = new Command('rotate')
    .description('rotate what the units trust, in a staged rollout')
    .addHelpText('after', '\nExample:\n  vgw fleet rotate backend-key --keys 3f2a…,9c41… -c collector.json');
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
  return cmd;
}
