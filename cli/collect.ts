import { Command } from 'commander';
import { batchGraceDays, checkCertificateAuthority, Collector, CollectorHttp, GatewayRegistry, loadBluetraceKey } from '../collector/index.js';
import { brokerOptions, defaultCollectorClientId } from '../core/mqtt/index.js';
import { ConfigError, loadConfig } from '../core/config/index.js';
import { createLogger } from '../core/log/index.js';
import { loadBackendKeySeed } from '../core/trust/index.js';
import { ControlSigner } from '../core/wire/index.js';
import { fail } from './errors.js';

export function collectCommand(): Command {
  return new Command('collect')
    .description('run the backend collector: store batches from every gateway (SQLite, or PostgreSQL for a fleet) and acknowledge them')
    .requiredOption('-c, --config <file>', 'config file with a "collector" section (database, registry, shareGroup)')
    .option('--pretty', 'human-readable logs instead of JSON lines')
    .addHelpText('after', '\nExample:\n  vgw collect --config collector.json --pretty')
    .action(async (opts: { config: string; pretty?: boolean }) => {
      let collector: Collector;
      let http: CollectorHttp | null = null;
      try {
        const config = loadConfig(opts.config);
        const c = config.collector;
        if (!c) throw new ConfigError(['collector: required by `vgw collect`: add {"collector": {"database": "collector.db", "registry": "gateways.json"}}'], opts.config);
        const log = createLogger(config.log.level, { pretty: opts.pretty });
        const registry = c.registry ? new GatewayRegistry(c.registry) : null;
        if (!registry) log.warn('collector.acceptUnsigned: batches are stored without checking who sent them (development only)');
        const bluetraceKey = c.bluetraceKeyFile ? loadBluetraceKey(c.bluetraceKeyFile) : undefined;
        const control = new ControlSigner(loadBackendKeySeed(c.controlKeyFile));
        const certificateAuthority = c.certificateAuthority && { certFile: c.certificateAuthority.cert, keyFile: c.certificateAuthority.key, days: c.certificateAuthority.days };
        if (certificateAuthority) {
          if (!registry) throw new ConfigError(['collector.certificateAuthority: needs collector.registry: certificates go only to registered units'], opts.config);
          checkCertificateAuthority(certificateAuthority);
        }
        collector = new Collector(
          {
            broker: brokerOptions(config, defaultCollectorClientId()), prefix: config.topicPrefix, database: c.database, shareGroup: c.shareGroup, registry, bluetraceKey, control, certificateAuthority,
            retentionDays: c.retentionDays, batchGraceDays: batchGraceDays(c.gatewayUnackedMaxDays), processMetrics: true,
          },
          log,
        );
        // Listening first: a port already taken stops this collector before it touches the broker.
        if (c.http.enabled) {
          http = new CollectorHttp(collector, c.http, log);
          await http.start();
        }
        await collector.start();
      } catch (err) {
        fail(err);
      }
      // Reverse order: the endpoints go first, then what arrived is stored and acknowledged.
      const stop = () => void (http?.stop() ?? Promise.resolve()).then(() => collector.stop()).then(() => process.exit(0), () => process.exit(1));
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
}
