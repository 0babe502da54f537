import { Command } from 'commander';
import { requestDoctor, requestLogLevel, requestRestart, requestUpdate } from '../collector/pull.js';
import { LOG_LEVELS, RELEASE_VERSION } from '../core/wire/index.js';
import { EXIT, fail, UsageError } from './errors.js';
import { type AddressOptions, addressOptions, gatewayAddress } from './gateway-address.js';

const EXIT_CODES = 'Exit codes: 0 ok, 1 failure (the gateway refused: the field is named), 2 bad arguments, 3 no answer in time.';

/** One subcommand addressed to one gateway, with the options every command shares. */
function toOneGateway(parent: Command, name: string, description: string, example: string): Command {
  return addressOptions(parent.command(name).description(description), 'the command', 'the answer')
    .addHelpText('after', `\n${EXIT_CODES}\nExample:\n  ${example}`);
}

/** Signed commands to one gateway, answered with a reply the gateway signs (docs/protocol.md, "Requests"). */
export function commandCommand(): Command {
  const cmd = new Command('command')
    .description('send a signed command to one gateway and print its signed answer')
    .addHelpText('after', '\nExample:\n  vgw command log-level --venue mall-01 --gateway gw-01 --level debug --for 600 -c collector.json');
  toOneGateway(cmd, 'log-level', 'log at a level for a while; the gateway falls back to its configured level by itself', 'vgw command log-level --venue mall-01 --gateway gw-01 --level debug --for 600 -c collector.json')
    .requiredOption('--level <level>', LOG_LEVELS.join(', '))
    .requiredOption('--for <s>', 'seconds, 1 to 86400')
    .action(async (opts: AddressOptions & { level: string; for: string }) => {
      try {
        const level = LOG_LEVELS.find((l) => l === opts.level);
        if (!level) throw new UsageError(`--level: "${opts.level}" is not one of ${LOG_LEVELS.join(', ')}`);
        const forS = Number(opts.for);
        if (!Number.isInteger(forS) || forS < 1 || forS > 86_400) throw new UsageError(`--for: "${opts.for}" must be whole seconds from 1 to 86400 (the level falls back by itself)`);
        const { address } = await gatewayAddress(opts, 'command');
        process.stdout.write(JSON.stringify(await requestLogLevel(address, level, forS)) + '\n');
      } catch (err) {
        fail(err);
      }
    });
  toOneGateway(cmd, 'restart', 'restart the gateway daemon: it answers, stops cleanly (its final commit) and its service starts it again', 'vgw command restart --venue mall-01 --gateway gw-01 -c collector.json')
    .action(async (opts: AddressOptions) => {
      try {
        const { address } = await gatewayAddress(opts, 'command');
        process.stdout.write(JSON.stringify(await requestRestart(address)) + '\n');
      } catch (err) {
        fail(err);
      }
    });
  toOneGateway(cmd, 'doctor', "run `vgw doctor` on the gateway and print its checks (exit 1 when one fails, as vgw doctor does)", 'vgw command doctor --venue mall-01 --gateway gw-01 -c collector.json --timeout 60')
    .action(async (opts: AddressOptions) => {
      try {
        const { address } = await gatewayAddress(opts, 'command');
        const answer = await requestDoctor(address);
        process.stdout.write(JSON.stringify(answer) + '\n');
        if (answer.healthy !== true) process.exitCode = EXIT.failure;
      } catch (err) {
        fail(err);
      }
    });
  toOneGateway(cmd, 'update', 'have the gateway take a signed release: it answers at once, then downloads, checks, installs and restarts into it on trial (its status says how it went)',
    'vgw command update --venue mall-01 --gateway gw-01 --manifest https://releases.example/venue-gateway-0.2.0-linux-arm64.manifest.cose --release-version 0.2.0 -c collector.json')
    .requiredOption('--manifest <url>', 'the https:// URL of the release manifest (`make release` writes it beside the tarball)')
    .requiredOption('--release-version <v>', 'the version the manifest must be of')
    .option('--downgrade', 'allow a version older than the running one')
    .action(async (opts: AddressOptions & { manifest: string; releaseVersion: string; downgrade?: boolean }) => {
      try {
        if (!/^https:\/\/\S+\.manifest\.cose$/.test(opts.manifest)) throw new UsageError(`--manifest: "${opts.manifest}" must be the https:// URL of a release manifest (…/venue-gateway-<version>-linux-<arch>.manifest.cose)`);
        if (!RELEASE_VERSION.test(opts.releaseVersion)) throw new UsageError(`--release-version: "${opts.releaseVersion}" is not a semantic version such as 0.2.0`);
        const { address } = await gatewayAddress(opts, 'command');
        process.stdout.write(JSON.stringify(await requestUpdate(address, opts.manifest, opts.releaseVersion, opts.downgrade)) + '\n');
      } catch (err) {
        fail(err);
      }
    });
  return cmd;
}
