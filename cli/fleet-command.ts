import { Command } from 'commander';
import { startScoped } from '../collector/rollouts.js';
import type { FleetCommand } from '../core/fleet/index.js';
import { LOG_LEVELS } from '../core/wire/index.js';
import { fail, UsageError } from './errors.js';
import { governance, layerOf, printStarted, rolloutOptions, rolloutPlan, type RolloutOptions, type Target, targetOptions } from './rollout-options.js';

/** One subcommand: its units (--fleet, --group, --gateway), the rollout's options, and how it is judged. */
export function staged(parent: Command, name: string, description: string, judged: string, example: string): Command {
  return rolloutOptions(targetOptions(parent.command(name).description(description)))
    .option('-c, --config <file>', "the collector's config: its database and registry")
    .addHelpText(
      'after',
      `\n${judged}\nA running collector (\`vgw collect\`) sends each unit the signed request \`vgw command\` sends, in the\n` +
        "rollout's stages; a unit offline at its turn is not reached (a command is not kept for it). Follow it with\n" +
        '`vgw fleet config status`. Exit codes: 0 started, 1 failure, 2 bad arguments.\n' +
        `Example:\n  ${example}`,
    );
}

export type StagedOptions = Target & RolloutOptions & { config?: string };

/** The action of a subcommand: the command its options make, started as a rollout; errors as every command reports them. */
export function startWith<O extends StagedOptions>(make: (opts: O) => FleetCommand): (opts: O) => Promise<void> {
  return async (opts) => {
    try {
      const { scope, name } = layerOf(opts);
      const command = make(opts);
      const rollout = await governance(opts.config, async (store, registry) => startScoped(store, registry, scope, name, { kind: 'command', command }, await rolloutPlan(opts, store, registry)));
      printStarted(rollout, scope, name);
    } catch (err) {
      fail(err);
    }
  };
}

/** `vgw fleet command`: signed commands in stages across the fleet (docs/operating.md, "Commands"). */
export function fleetCommandCommand(): Command {
  const cmd = new Command('command')
    .description('send a signed command to many units in a staged rollout (a canary first, then a rate, stopping on failures)')
    .addHelpText('after', '\nExample:\n  vgw fleet command restart --group city-kl --canary 2 --rate 60 -c collector.json');
  staged(cmd, 'restart', 'restart the units: each answers, stops cleanly and its service starts it again',
    'A unit counts as done once it is back online, started since; as failed when it refuses or is not back within --settle.',
    'vgw fleet command restart --fleet --canary 1% --rate 120 -c collector.json')
    .action(startWith(() => ({ op: 'restart' })));
  staged(cmd, 'doctor', "run `vgw doctor` on the units: a unit whose checks fail counts as failed, the checks named",
    'A unit counts as done when its doctor is healthy, as failed when a check fails (named in the status\'s failures).',
    'vgw fleet command doctor --group city-kl --abort-after 100% -c collector.json')
    .action(startWith(() => ({ op: 'doctor' })));
  staged(cmd, 'log-level', 'log at a level for a while on the units; each falls back to its configured level by itself',
    'A unit counts as done once it answered.',
    'vgw fleet command log-level --gateway gw-01 --level debug --for 600 -c collector.json')
    .requiredOption('--level <level>', LOG_LEVELS.join(', '))
    .requiredOption('--for <s>', 'seconds, 1 to 86400')
    .action(startWith((opts: StagedOptions & { level: string; for: string }) => {
      const level = LOG_LEVELS.find((l) => l === opts.level);
      if (!level) throw new UsageError(`--level: "${opts.level}" is not one of ${LOG_LEVELS.join(', ')}`);
      const forS = Number(opts.for);
      if (!Number.isInteger(forS) || forS < 1 || forS > 86_400) throw new UsageError(`--for: "${opts.for}" must be whole seconds from 1 to 86400 (the level falls back by itself)`);
      return { op: 'logLevel', level, forS };
    }));
  return cmd;
}
