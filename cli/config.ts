import { Command } from 'commander';
import { configDocsPage, loadConfig, parseConfig } from '../core/config/index.js';
import { fail } from './errors.js';

export function configCommand(): Command {
  const cmd = new Command('config')
    .description('check, document and template the config file')
    .addHelpText('after', '\nExamples:\n  vgw config check /etc/venue-gateway/config.json\n  vgw config docs > docs/configuration.md\n  vgw config example --gateway gw-0042 --venue mall-01 > gateway.json');
  cmd
    .command('check')
    .description('validate a config file; errors name the field and the fix')
    .argument('<file>', 'config file (JSON)')
    .option('--json', 'print the config with every default filled in')
    .addHelpText('after', '\nExit codes: 0 valid, 2 invalid (each problem names the field and the fix).\nExamples:\n  vgw config check /etc/venue-gateway/config.json\n  vgw config check collector.json --json')
    .action((file: string, opts: { json?: boolean }) => {
      try {
        const config = loadConfig(file);
        if (opts.json) process.stdout.write(JSON.stringify(config, null, 2) + '\n');
        else process.stdout.write(`${file}: valid${config.gateway ? ` (gateway ${config.gateway.id} at venue ${config.gateway.venue})` : ''}\n`);
      } catch (err) {
        fail(err);
      }
    });
  cmd
    .command('docs')
    .description('print every config key with its default and meaning (Markdown: docs/configuration.md)')
    .addHelpText('after', '\nExample:\n  vgw config docs > docs/configuration.md')
    .action(() => {
      process.stdout.write(configDocsPage());
    });
  cmd
    .command('example')
    .description('print a minimal config for a gateway, one that `vgw run` accepts once `vgw provision` has written its secrets file')
    .addHelpText('after', '\nExample:\n  vgw config example --gateway gw-0042 --venue mall-01 > /etc/venue-gateway/config.json')
    .option('--gateway <id>', 'gateway id', 'gw-01')
    .option('--venue <id>', 'venue id', 'venue-01')
    .action((opts: { gateway: string; venue: string }) => {
      try {
        const example = {
          gateway: { id: opts.gateway, venue: opts.venue },
          broker: { url: 'mqtt://127.0.0.1:1883' },
          store: { path: '/var/lib/venue-gateway/gateway.db' },
          secretsFile: '/etc/venue-gateway/secrets.json',
        };
        parseConfig(example, '--gateway/--venue');
        process.stdout.write(JSON.stringify(example, null, 2) + '\n');
      } catch (err) {
        fail(err);
      }
    });
  return cmd;
}
