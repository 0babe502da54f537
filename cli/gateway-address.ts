// How the backend's CLI reaches one gateway (vgw pull, vgw command): the broker and topic prefix
// of a collector config (or --broker), the backend key that signs the request, and the gateway's
// registered key that must verify its answer. Every problem names its option.
import { GatewayRegistry, openCollectorStore } from '../collector/index.js';
import type { GatewayAddress } from '../collector/pull.js';
import { defaultCollectorClientId } from '../core/mqtt/index.js';
import type { Command } from 'commander';
import { Config, loadConfig, parseConfig } from '../core/config/index.js';
import { loadBackendKeySeed } from '../core/trust/index.js';
import { ControlSigner } from '../core/wire/index.js';
import { UsageError } from './errors.js';

export interface AddressOptions {
  venue: string;
  gateway: string;
  config?: string;
  broker?: string;
  controlKey?: string;
  timeout: string;
}

/** The options of AddressOptions on `cmd`: `signed` says what the backend key signs, `timeout` what is waited for. */
export function addressOptions(cmd: Command, signed: string, timeout: string): Command {
  return cmd
    .requiredOption('--venue <id>', 'venue id')
    .requiredOption('--gateway <id>', 'gateway id')
    .option('-c, --config <file>', "collector config: its broker, backend key and registry (an answer must verify with the gateway's key)")
    .option('--broker <url>', 'broker URL when no config is given')
    .option('--control-key <file>', `the backend key file ${signed} is signed with (default: the config's collector.controlKeyFile)`)
    .option('--timeout <s>', `seconds to wait for ${timeout}`, '10');
}

/**
 * The registry of a collector config with the gateways' rotated keys its database holds (an answer
 * signed by a unit's rotated key must verify); without the database, its records alone, said on stderr.
 */
async function registryWithRotations(config: Config): Promise<GatewayRegistry | null> {
  const c = config.collector;
  if (!c?.registry) return null;
  const registry = new GatewayRegistry(c.registry);
  try {
    const store = await openCollectorStore(c.database);
    try {
      registry.setRotations(await store.gatewayKeys());
    } finally {
      await store.close();
    }
  } catch (err) {
    process.stderr.write(`note: collector.database: ${(err as Error).message}; checking answers with the registry's keys only (a unit whose key was rotated is not recognised)\n`);
  }
  return registry;
}

export async function gatewayAddress(opts: AddressOptions, purpose: string): Promise<{ address: GatewayAddress; config: Config; registry: GatewayRegistry | null }> {
  const timeoutS = Number(opts.timeout);
  if (!(timeoutS > 0)) throw new UsageError(`--timeout: "${opts.timeout}" is not a positive number of seconds`);
  const config: Config = opts.config ? loadConfig(opts.config) : parseConfig({ broker: { url: opts.broker ?? 'mqtt://127.0.0.1:1883' } }, '--broker');
  // Its own client id: reusing the collector's would disconnect the running collector.
  const broker = { ...config.broker, clientId: `${defaultCollectorClientId()}-${purpose}-${process.pid}` };
  const keyFile = opts.controlKey ?? config.collector?.controlKeyFile;
  if (!keyFile) throw new UsageError('--control-key: required without a collector config: the backend key file the request is signed with (gateways answer signed requests only)');
  const control = new ControlSigner(loadBackendKeySeed(keyFile));
  const registry = await registryWithRotations(config);
  const entry = registry?.lookup(opts.gateway);
  if (registry && !entry) throw new UsageError(`--gateway: "${opts.gateway}" is registered nowhere in ${config.collector?.registry}: add its registration record (\`vgw provision\` prints it)`);
  if (entry && entry.record.venue !== opts.venue) throw new UsageError(`--venue: "${opts.gateway}" is registered at venue "${entry.record.venue}", not "${opts.venue}"`);
  return {
    address: { broker, prefix: config.topicPrefix, venue: opts.venue, gateway: opts.gateway, timeoutMs: timeoutS * 1000, control, gatewayKeys: entry ? entry.keys.map((k) => k.signer) : null },
    config,
    registry,
  };
}
