import { Command } from 'commander';
import { prepareRemoteStart, startDaemon, type Daemon, type RemoteStart } from '../daemon/index.js';
import { loadConfig, requireGateway, type Config } from '../core/config/index.js';
import { createLogger, type Logger } from '../core/log/index.js';
import { EXIT, fail } from './errors.js';

/** A signal or a stuck broker must not keep the unit from stopping (systemd's TimeoutStopSec is 20). */
const STOP_DEADLINE_MS = 15_000;

export function runCommand(): Command {
  return new Command('run')
    .description('run the gateway daemon: radio → encounters → SQLite → MQTT batches')
    .requiredOption('-c, --config <file>', 'config file (JSON; see `vgw config docs`)')
    .option('--pretty', 'human-readable logs instead of JSON lines')
    .addHelpText('after', '\nExample:\n  vgw run --config /etc/venue-gateway/config.json --pretty')
    .action(async (opts: { config: string; pretty?: boolean }) => {
      let config: Config;
      let log: Logger;
      let daemon: Daemon | undefined;
      let remote: RemoteStart;
      try {
        config = loadConfig(opts.config);
        requireGateway(config);
        log = createLogger(config.log.level, { pretty: opts.pretty });
        // The backend's settings over the file: the committed ones, or a version on trial.
        remote = prepareRemoteStart(config, log);
        config = remote.config;
        log.level = config.log.level;
      } catch (err) {
        fail(err);
      }
      let stopping = false;
      const stop = (running: Daemon, why: string, code: number) => {
        if (stopping) return;
        stopping = true;
        const deadline = setTimeout(() => {
          log.error({ why }, 'stop took too long; exiting without waiting');
          process.exit(EXIT.failure);
        }, STOP_DEADLINE_MS);
        running.stop().then(
          () => {
            clearTimeout(deadline);
            process.exit(code);
          },
          (err: unknown) => {
            log.error({ why, err: (err as Error).message }, 'stop failed');
            process.exit(EXIT.failure);
          },
        );
      };
      // A stray rejection or exception anywhere (a radio callback, a library) must not end the
      // process before the store's final commit: stop through the controller, then exit non-zero.
      const whileStarting: Array<{ kind: string; err: unknown }> = [];
      const onFatal = (kind: string) => (err: unknown) => {
        if (daemon === undefined) {
          whileStarting.push({ kind, err }); // handled once the daemon is up (or its start failed)
          return;
        }
        log.fatal({ err }, `${kind}; stopping the daemon`);
        stop(daemon, kind, EXIT.failure);
      };
      process.on('unhandledRejection', onFatal('unhandled rejection'));
      process.on('uncaughtException', onFatal('uncaught exception'));
      // Handled from the first moment: a signal while the concerns start stops them once started
      // (the default action would end the process without the store's final commit).
      let signalled: string | null = null;
      let restartAsked = false;
      const onSignal = (signal: string) => () => {
        if (daemon === undefined) signalled ??= signal;
        else stop(daemon, signal, EXIT.ok);
      };
      process.on('SIGTERM', onSignal('SIGTERM'));
      process.on('SIGINT', onSignal('SIGINT'));
      try {
        daemon = await startDaemon(config, log, {
          configPath: opts.config,
          remote,
          restart: () => {
            if (daemon === undefined) restartAsked = true; // answered while the last concerns started
            else stop(daemon, 'restart command', EXIT.restart);
          },
        });
      } catch (err) {
        fail(err); // the concerns that had started are stopped by now, the store's last commit made
      }
      for (const { kind, err } of whileStarting) onFatal(kind)(err);
      if (signalled !== null) stop(daemon, signalled, EXIT.ok);
      else if (restartAsked) stop(daemon, 'restart command', EXIT.restart);
    });
}
