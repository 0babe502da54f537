// `vgw update`: the unit's side of software updates (docs/operating.md, "Releases"). `guard` is
// what the service runs before every start, from the committed release; `adopt` makes a release
// installed by hand the committed one (install.sh; a technician's way back); `status` shows the
// install root. Releases arrive over the air by a signed update request (`vgw fleet update`).
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { adoptRelease } from '../core/release/index.js';
import { guard, linkedVersion, pointLink, readSlotState, releaseDir, releasesDir, writeSlotState } from '../daemon/index.js';
import { fail, UsageError } from './errors.js';

const ROOT_HELP = 'the install root (the config\'s update.root)';

export function updateCommand(): Command {
  const cmd = new Command('update')
    .description('software updates on the unit: the start guard, a release installed by hand, the install root\'s state')
    .addHelpText('after', '\nReleases arrive over the air by a signed request: vgw command update (one unit).\nExample:\n  vgw update status --root /opt/venue-gateway');
  cmd.command('guard')
    .description('before every start (the service\'s ExecStartPre): count a trial release\'s start, roll it back after 3 without passing the health gate, and point `current` at the release to start')
    .option('--root <dir>', ROOT_HELP, '/opt/venue-gateway')
    .addHelpText('after', '\nExample:\n  vgw update guard --root /opt/venue-gateway')
    .action((opts: { root: string }) => {
      try {
        if (!existsSync(opts.root)) throw new UsageError(`--root: ${opts.root} does not exist: install a release there (provisioning/install.sh)`);
        const plan = guard(opts.root, Date.now());
        if (plan.problem) process.stderr.write(`vgw: ${plan.problem}\n`);
        if (plan.kind === 'rolledBack') process.stderr.write(`vgw: release ${plan.state.history.at(-1)?.version} rolled back: ${plan.reason}; starting ${plan.run}\n`);
        if (plan.run === null) throw new Error(`no release is installed under ${releasesDir(opts.root)}: install one (provisioning/install.sh)`);
        process.stdout.write(JSON.stringify({ start: plan.run, trial: plan.trial, committed: plan.state.committed, ...(plan.kind === 'rolledBack' ? { rolledBack: plan.reason } : {}) }) + '\n');
      } catch (err) {
        fail(err);
      }
    });
  cmd.command('adopt')
    .description('make an installed release the committed one and start it next (install.sh does this; a technician\'s way back to a release on disk)')
    .requiredOption('--release <version>', 'a version under <root>/releases')
    .option('--root <dir>', ROOT_HELP, '/opt/venue-gateway')
    .addHelpText('after', '\nExample:\n  sudo vgw update adopt --release 0.2.0 --root /opt/venue-gateway && sudo systemctl restart venue-gateway')
    .action((opts: { release: string; root: string }) => {
      try {
        if (!existsSync(join(releaseDir(opts.root, opts.release), 'dist/cli/main.js'))) {
          const have = existsSync(releasesDir(opts.root)) ? readdirSync(releasesDir(opts.root)).filter((n) => !n.startsWith('.')) : [];
          throw new UsageError(`--release: ${opts.release} is not installed under ${releasesDir(opts.root)} (installed: ${have.join(', ') || 'none'})`);
        }
        const state = adoptRelease(readSlotState(opts.root).state, opts.release, Date.now());
        writeSlotState(opts.root, state);
        pointLink(opts.root, 'committed', opts.release);
        pointLink(opts.root, 'current', opts.release);
        process.stdout.write(JSON.stringify({ committed: opts.release }) + '\n');
      } catch (err) {
        fail(err);
      }
    });
  cmd.command('status')
    .description('the install root: the releases on disk, the links, the committed release, a trial, the versions refused and the last outcome')
    .option('--root <dir>', ROOT_HELP, '/opt/venue-gateway')
    .addHelpText('after', '\nExample:\n  vgw update status --root /opt/venue-gateway')
    .action((opts: { root: string }) => {
      try {
        const { state, problem } = readSlotState(opts.root);
        const installed = existsSync(releasesDir(opts.root)) ? readdirSync(releasesDir(opts.root)).filter((n) => !n.startsWith('.')).sort() : [];
        process.stdout.write(JSON.stringify({ installed, current: linkedVersion(opts.root, 'current'), ...state, ...(problem ? { problem } : {}) }, null, 2) + '\n');
      } catch (err) {
        fail(err);
      }
    });
  return cmd;
}
