import { Command } from 'commander';
import { currentConfig, publishConfig, reportedConfig } from '../collector/remote-config.js';
import { ConfigError, remoteConfig } from '../core/config/index.js';
import { fail, UsageError } from './errors.js';
import { type AddressOptions, addressOptions, gatewayAddress } from './gateway-address.js';

const addressed = (cmd: Command) => addressOptions(cmd, 'the configuration', 'the broker');

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

/** `vgw fleet config`: the backend's configuration of units (docs/protocol.md, "Configuration"). */
export function fleetConfigCommand(): Command {
  const cmd = new Command('config')
    .description("set and show the backend's configuration of a unit: signed, retained, applied by the unit behind a health gate")
    .addHelpText('after', '\nExample:\n  vgw fleet config set --venue mall-01 --gateway gw-01 --settings \'{"uplink":{"statusIntervalS":300}}\' -c collector.json');
  addressed(cmd.command('set'))
    .description('publish settings for one unit (laid over its config file), as the next version')
    .requiredOption('--settings <json>', 'config keys as JSON, e.g. \'{"uplink":{"statusIntervalS":300}}\' (never gateway, keys, certificates or store.path)')
    .addHelpText(
      'after',
      '\nThe unit checks them with the schema of `vgw config check`, restarts into them and keeps them once it is\n' +
        'healthy (broker, radio, a commit) within remote.healthGateS; otherwise it rolls back by itself.\n' +
        'Its status says what became of each version: `vgw fleet config show`.\n' +
        'Exit codes: 0 published, 1 failure, 2 bad arguments, 3 no broker.\n' +
        'Example:\n  vgw fleet config set --venue mall-01 --gateway gw-01 --settings \'{"uplink":{"statusIntervalS":300}}\' -c collector.json',
    )
    .action(async (opts: AddressOptions & { settings: string }) => {
      try {
        const settings = parseSettings(opts.settings);
        const { address } = gatewayAddress(opts, 'config');
        const published = await publishConfig(address, settings);
        process.stdout.write(JSON.stringify({ venue: published.venue, gateway: published.gateway, version: published.version, settings: published.settings }) + '\n');
      } catch (err) {
        fail(err);
      }
    });
  addressed(cmd.command('show'))
    .description('the configuration the backend holds for one unit, and what the unit last reported of it')
    .addHelpText('after', '\nExit codes: 0 ok, 1 failure, 2 bad arguments, 3 no broker.\nExample:\n  vgw fleet config show --venue mall-01 --gateway gw-01 -c collector.json')
    .action(async (opts: AddressOptions) => {
      try {
        const { address } = gatewayAddress(opts, 'config');
        const desired = await currentConfig(address);
        const reported = await reportedConfig(address);
        process.stdout.write(JSON.stringify({ desired: desired && { version: desired.version, issuedAt: new Date(desired.issuedAt).toISOString(), settings: desired.settings }, reported }) + '\n');
      } catch (err) {
        fail(err);
      }
    });
  return cmd;
}
