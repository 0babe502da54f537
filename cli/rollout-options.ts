// What the commands that start a staged rollout share (`vgw fleet config set`, `vgw fleet rotate`):
// the collector's database and registry, the units it is for, and the plan's options with their checks.
import type { Command } from 'commander';
import { GatewayRegistry, openCollectorStore, type CollectorStore } from '../collector/index.js';
import { type Config, loadConfig } from '../core/config/index.js';
import type { LayerScope, Rollout, RolloutPlan } from '../core/fleet/index.js';
import { describeLayer } from '../collector/rollouts.js';
import { UsageError } from './errors.js';

export interface RolloutOptions {
  canary: string;
  rate: string;
  abortAfter: string;
  settle: string;
}

export function rolloutOptions(cmd: Command): Command {
  return cmd
    .option('--canary <n|%>', 'units that take the change first, alone (online ones first)', '5%')
    .option('--rate <units/min>', 'units started per minute once the canary is healthy ("max": as fast as the failure budget allows)', '600')
    .option('--abort-after <n|%>', 'the rollout stops by itself once this many units failed (refused, rolled back, or silent)', '2%')
    .option('--settle <s>', 'seconds a unit has to report its outcome before it counts as failed', '600');
}

/** "5%" of `units` (at least 1) or a count. */
function unitsOf(value: string, units: number, option: string): number {
  const share = /^(\d+(?:\.\d+)?)%$/.exec(value);
  if (share) {
    const pct = Number(share[1]);
    if (!(pct > 0 && pct <= 100)) throw new UsageError(`${option}: "${value}" must be a share above 0% and at most 100%`);
    return Math.max(1, Math.ceil((pct / 100) * units));
  }
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError(`${option}: "${value}" is neither a number of units (1 or more) nor a share such as 5%`);
  return Number(value);
}

/** The plan the options give, shares taken of the fleet the registry (or, without one, the statuses) holds. */
export async function rolloutPlan(opts: RolloutOptions, store: CollectorStore, registry: GatewayRegistry | null): Promise<RolloutPlan> {
  const rate = opts.rate === 'max' ? Infinity : Number(opts.rate);
  if (!(rate > 0)) throw new UsageError(`--rate: "${opts.rate}" must be a positive number of units per minute (or "max")`);
  const settleS = Number(opts.settle);
  if (!(settleS >= 10)) throw new UsageError(`--settle: "${opts.settle}" must be at least 10 seconds (a unit restarts and passes its health gate first)`);
  const fleetSize = registry ? registry.records().length : (await store.statuses()).length;
  return { canary: unitsOf(opts.canary, fleetSize, '--canary'), ratePerMinute: rate, abortAfter: unitsOf(opts.abortAfter, fleetSize, '--abort-after'), settleMs: settleS * 1000 };
}

/** The collector's config, its database open, and its registry: where layers and rollouts live. */
export async function governance<T>(configFile: string | undefined, use: (store: CollectorStore, registry: GatewayRegistry | null, config: Config) => Promise<T>): Promise<T> {
  if (!configFile) throw new UsageError("-c/--config: required: the collector's config (its database holds the layers and rollouts, its registry the units)");
  const config = loadConfig(configFile);
  if (!config.collector) throw new UsageError(`--config: ${configFile} has no "collector" section: give a collector's config`);
  const registry = config.collector.registry ? new GatewayRegistry(config.collector.registry) : null;
  const store = await openCollectorStore(config.collector.database);
  try {
    return await use(store, registry, config);
  } finally {
    await store.close();
  }
}

export interface Target {
  fleet?: boolean;
  group?: string;
  gateway?: string;
}

/** Which layer the options name: exactly one of --fleet, --group, --gateway. */
export function layerOf(opts: Target): { scope: LayerScope; name: string } {
  const given = [opts.fleet ? 'fleet' : null, opts.group !== undefined ? 'group' : null, opts.gateway !== undefined ? 'gateway' : null].filter((x) => x !== null);
  if (given.length !== 1) throw new UsageError('give exactly one of --fleet (every unit), --group NAME (units whose registry record lists it) or --gateway ID (one unit)');
  if (opts.fleet) return { scope: 'fleet', name: '' };
  if (opts.group !== undefined) return { scope: 'group', name: opts.group };
  return { scope: 'gateway', name: opts.gateway! };
}

/** --fleet, --group, --gateway: the units something is sent to (`vgw fleet rotate gateway-key`, `vgw fleet command`). */
export function targetOptions(cmd: Command): Command {
  return cmd
    .option('--fleet', 'every registered unit')
    .option('--group <name>', 'the units whose registry record lists it in "groups"')
    .option('--gateway <id>', 'one unit');
}

/** What a command that started a rollout prints: the rollout, what it changes, over how many units, with which plan. */
export function printStarted(rollout: Rollout, scope: LayerScope, name: string): void {
  process.stdout.write(JSON.stringify({ rollout: rollout.id, change: rollout.change, units: rollout.units.length, plan: rollout.plan, of: describeLayer(scope, name) }) + '\n');
}
