import { Command } from 'commander';
import { startDaemon } from '../daemon/index.js';
import { loadConfig, requireGateway } from '../core/config/index.js';
import { createLogger } from '../core/log/index.js';
import { fail } from './errors.js';

export function runCommand(): Command {
  return new Command('run')
    .description('run the gateway daemon: radio → encounters → SQLite → MQTT batches')
    .requiredOption('-c, --config <file>', 'config file (JSON; see `vgw config docs`)')
    .option('--pretty', 'human-readable logs instead of JSON lines')
    .addHelpText('after', '\nExample:\n  vgw run --config /etc/venue-gateway/config.json --pretty')
    .action((opts: { config: string; pretty?: boolean }) => {
      let daemon;
      try {
        const config = loadConfig(opts.config);
        requireGateway(config);
        daemon = startDaemon(config, createLogger(config.log.level, { pretty: opts.pretty }));
      } catch (err) {
        fail(err);
      }
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        // A second signal or a stuck broker must not keep the unit from stopping.
        const deadline = setTimeout(() => process.exit(1), 10_000);
        daemon.stop().then(
          () => {
            clearTimeout(deadline);
            process.exit(0);
          },
          (err) => {
            process.stderr.write(`vgw: stop after ${signal} failed: ${(err as Error).message}\n`);
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}
