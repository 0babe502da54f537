// Staged rollouts on the backend (issue 26, item 6): a change of a configuration layer goes out
// unit by unit as core/fleet/rollout.ts says, each unit getting its layers merged in one signed,
// retained message of its own (docs/protocol.md, "Configuration"), and is judged by what the units'
// statuses report. One collector of a fleet drives at a time (a lease in the database); any
// collector, and the CLI, can read and request.
import { ulid } from 'ulid';
import type { Logger } from '../core/log/index.js';
import {
  composeLayers, control, counts, type ConfigLayer, layerApplies, type LayerScope, newRollout, type Rollout, type RolloutPlan, step, supersede, type UnitReport,
} from '../core/fleet/index.js';
import { systemTimers, type TimerHandle, type Timers } from '../core/time/index.js';
import { type ControlSigner, gatewayTopics, readCose, trustedKey } from '../core/wire/index.js';
import type { StatusRow } from './fleet.js';
import type { GovernanceStore } from './store.js';
import type { GatewayRegistry } from './verify.js';

interface ReportedKeys {
  version?: number;
  last?: { version: number; outcome: 'applied' | 'refused'; reason?: string } | null;
}

type RolloutKind = NonNullable<Rollout['kind']>;

/** What a unit's status says of the backend's configuration (`config`), the keys it trusts (`trust`) and its own key's rotation (`signingKey`), as a rollout judges it: its document read once. */
export function unitReports(row: StatusRow): Record<RolloutKind, UnitReport> {
  let doc: { config?: { remote?: Partial<UnitReport> }; counters?: { control?: { backendKeys?: ReportedKeys; signingKey?: ReportedKeys } } } = {};
  try {
    doc = JSON.parse(row.document) as typeof doc;
  } catch {
    doc = {};
  }
  const online = row.state === 'online';
  const remote = doc.config?.remote;
  return {
    config: {
      online,
      version: typeof remote?.version === 'number' ? remote.version : null,
      state: remote?.state === 'trial' || remote?.state === 'committed' ? remote.state : 'none',
      last: remote?.last && typeof remote.last.version === 'number' ? remote.last : null,
    },
    trust: versionedReport(online, doc.counters?.control?.backendKeys),
    signingKey: versionedReport(online, doc.counters?.control?.signingKey),
  };
}

/** A status part that counts versions (backend keys announced, signing key rotations) and says how the last one went. */
function versionedReport(online: boolean, keys: ReportedKeys | undefined): UnitReport {
  const version = typeof keys?.version === 'number' ? keys.version : null;
  const last = keys?.last && typeof keys.last.version === 'number' ? keys.last : null;
  return {
    online, version, state: version !== null && version > 0 ? 'committed' : 'none',
    last: last && { version: last.version, outcome: last.outcome === 'applied' ? 'applied' : 'refused', ...(last.reason ? { reason: last.reason } : {}) },
  };
}

export interface FleetUnit {
  gateway: string;
  venue: string;
  groups: string[];
}

/** The fleet as the backend knows it: the registry's units, or (without one, in development) those that sent a status. */
export function fleetUnits(registry: GatewayRegistry | null, statuses: readonly StatusRow[]): FleetUnit[] {
  if (registry) return registry.records().map((r) => ({ gateway: r.gateway, venue: r.venue, groups: r.groups ?? [] }));
  return statuses.map((s) => ({ gateway: s.gateway, venue: s.venue, groups: [] }));
}

/** The units `applies` selects, each with whether its last status says online (the canary is made of those). */
async function rolloutUnits(
  store: { statuses(): Promise<StatusRow[]> }, registry: GatewayRegistry | null, applies: (u: FleetUnit) => boolean, none: string,
): Promise<Array<FleetUnit & { online: boolean }>> {
  const statuses = await store.statuses();
  const online = new Set(statuses.filter((s) => s.state === 'online').map((s) => s.gateway));
  const units = fleetUnits(registry, statuses).filter(applies);
  if (units.length === 0) throw new Error(none);
  return units.map((u) => ({ ...u, online: online.has(u.gateway) }));
}

/**
 * Changes a layer and starts its rollout over every unit the layer applies to, in one transaction
 * (a running rollout of the same layer is superseded). The collector holding the lease carries it out.
 */
export async function startChange(
  store: GovernanceStore & { statuses(): Promise<StatusRow[]> }, registry: GatewayRegistry | null,
  scope: LayerScope, name: string, settings: Record<string, unknown>, plan: RolloutPlan, now = Date.now(),
): Promise<{ layer: ConfigLayer; rollout: Rollout }> {
  const none = scope === 'gateway' ? `no unit "${name}" in the registry` : scope === 'group' ? `no unit of the registry is in group "${name}" (a record's "groups")` : 'the registry holds no unit';
  const units = await rolloutUnits(store, registry, (u) => layerApplies(scope, name, u), none);
  return store.changeLayer(scope, name, settings, now, (layer, previous) =>
    newRollout(ulid(now), `${describeLayer(scope, name)} version ${layer.version}`, { scope, name, version: layer.version, previous }, units, plan, now),
  );
}

/**
 * Starts a rollout of the backend keys units are to trust (all registered units, or one), a
 * running one of the same kind superseded. The collector driving it signs each unit's
 * announcement with its own key, which the set must keep.
 */
export async function startRotation(
  store: GovernanceStore & { statuses(): Promise<StatusRow[]> }, registry: GatewayRegistry | null, keys: string[], plan: RolloutPlan, gateway?: string, now = Date.now(),
): Promise<Rollout> {
  const units = await rolloutUnits(store, registry, (u) => gateway === undefined || u.gateway === gateway, gateway ? `no unit "${gateway}" in the registry` : 'the registry holds no unit');
  const kids = keys.map((k) => trustedKey(Buffer.from(k, 'hex')).kid.toString('hex')).join(', ');
  const rollout: Rollout = {
    ...newRollout(ulid(now), `backend keys ${kids}`, { scope: gateway ? 'gateway' : 'fleet', name: gateway ?? '', version: 0 }, units, plan, now),
    kind: 'trust', keys,
  };
  for (const { rollout: other } of await store.rollouts(0)) if (other.kind === 'trust') await store.saveRollout(supersede(other, rollout.id, now), null);
  await store.saveRollout(rollout, null);
  return rollout;
}

/**
 * Starts a rollout that has units make and register a new signing key (docs/operating.md, "Gateway
 * keys"): every registered unit, a group's or one. Rotations already running go on: they order
 * other units, or a later rotation of the same unit, which the newer order then covers.
 */
export async function startKeyRotation(
  store: GovernanceStore & { statuses(): Promise<StatusRow[]> }, registry: GatewayRegistry | null, scope: LayerScope, name: string, plan: RolloutPlan, now = Date.now(),
): Promise<Rollout> {
  const none = scope === 'gateway' ? `no unit "${name}" in the registry` : scope === 'group' ? `no unit of the registry is in group "${name}" (a record's "groups")` : 'the registry holds no unit';
  const units = await rolloutUnits(store, registry, (u) => layerApplies(scope, name, u), none);
  const rollout: Rollout = { ...newRollout(ulid(now), `signing keys of ${describeLayer(scope, name)}`, { scope, name, version: 0 }, units, plan, now), kind: 'signingKey' };
  await store.saveRollout(rollout, null);
  return rollout;
}

export function describeLayer(scope: LayerScope, name: string): string {
  return scope === 'fleet' ? 'fleet' : `${scope} ${name}`;
}

/** A rollout in a line's worth of numbers, for `vgw fleet config status`, /api/fleet and the page. */
export function rolloutProgress(r: Rollout): Record<string, unknown> {
  return {
    id: r.id, change: r.change, state: r.state, ...(r.reason ? { reason: r.reason } : {}), createdAt: new Date(r.createdAt).toISOString(),
    units: r.units.length, canary: r.plan.canary, ...counts(r),
    failures: r.units.filter((u) => u.state === 'failed').slice(0, 10).map((u) => ({ gateway: u.gateway, reason: u.reason })),
  };
}

/** The version a retained configuration carries, read without trusting it: only to go above it. */
function heldVersion(payload: Buffer): number | null {
  const read = readCose(payload);
  if (!read.ok) return null;
  try {
    const version = (JSON.parse(read.message.payload.toString('utf8')) as { version?: unknown }).version;
    return typeof version === 'number' && Number.isSafeInteger(version) ? version : null;
  } catch {
    return null;
  }
}

export interface RolloutDriverOptions {
  store: GovernanceStore & { statuses(): Promise<StatusRow[]> };
  registry: GatewayRegistry | null;
  control: ControlSigner;
  prefix: string;
  /** Publishes retained, QoS 1, through the collector's one connection; resolves once the broker has it. */
  publish: (topic: string, payload: Buffer) => Promise<void>;
  /** This collector's name in the lease. */
  holder: string;
  tickMs?: number;
  timers?: Timers;
  log: Logger;
}

/** Lease time: a driver that died is replaced after this. */
const LEASE_MS = 15_000;

export class RolloutDriver {
  /** The version each unit's retained configuration and key announcement hold (from the broker, as it tells us). */
  private readonly held = { config: new Map<string, number>(), trust: new Map<string, number>(), signingKey: new Map<string, number>() };
  private timer: TimerHandle | null = null;
  private ticking: Promise<void> | null = null;
  private readonly timers: Timers;
  /** The rollouts as of the last tick, for the metrics and views of this collector. */
  latest: Rollout[] = [];
  driving = false;

  constructor(private readonly options: RolloutDriverOptions) {
    this.timers = options.timers ?? systemTimers;
  }

  /** A retained configuration (`config`), key announcement (`trust`) or signing-key order or answer (`signingKey`) the broker holds for `gateway`. */
  onRetained(kind: RolloutKind, gateway: string, payload: Buffer): void {
    const version = payload.length === 0 ? null : heldVersion(payload);
    if (version !== null && version > (this.held[kind].get(gateway) ?? 0)) this.held[kind].set(gateway, version);
  }

  get started(): boolean {
    return this.timer !== null;
  }

  start(): void {
    this.timer = this.timers.setInterval(() => {
      this.ticking ??= this.tick().finally(() => {
        this.ticking = null;
      });
    }, this.options.tickMs ?? 1000);
  }

  async stop(): Promise<void> {
    this.timers.clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
  }

  /** One pass: takes or renews the lease, carries out requests, steps each running rollout and sends what is due. */
  async tick(): Promise<void> {
    const { store, log } = this.options;
    const now = this.timers.now();
    try {
      this.driving = await store.leaseRollouts(this.options.holder, now, LEASE_MS);
      const stored = await store.rollouts();
      this.latest = stored.map((s) => s.rollout);
      // Ended rollouts too while units they reached offline may still report.
      const live = (s: (typeof stored)[number]) => s.rollout.state === 'running' || s.requested || s.rollout.units.some((u) => u.state === 'sent' || u.state === 'offline');
      if (!this.driving || !stored.some(live)) return;
      const reports = new Map((await store.statuses()).map((s) => [s.gateway, unitReports(s)]));
      const layers = await store.layers();
      const stepped = new Map<string, Rollout>();
      for (const { rollout, requested } of stored.filter(live)) {
        let current = requested ? control(rollout, requested, now) : rollout;
        if (requested) log.warn({ rollout: rollout.id, request: requested }, 'rollout: an operator\'s request carried out');
        const kind = rollout.kind ?? 'config';
        const report = (g: string) => reports.get(g)?.[kind];
        const result = step(current, now, report, (g) => this.nextVersion(kind, g, report(g)));
        for (const unit of result.send) await this.send(rollout, unit.gateway, unit.venue, unit.version!, layers);
        if (result.rollout.state !== current.state) log.warn({ rollout: rollout.id, state: result.rollout.state, reason: result.rollout.reason }, `rollout ${result.rollout.state}`);
        current = result.rollout;
        if (current.state === 'aborted' && rollout.state !== 'aborted') current = await this.undo(current, now);
        if (result.changed || requested) await store.saveRollout(current, requested);
        stepped.set(current.id, current);
      }
      this.latest = this.latest.map((r) => stepped.get(r.id) ?? r);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'rollout pass failed; trying again');
    }
  }

  /**
   * An aborted change is taken back from its layer, so that no later rollout carries it to more
   * units; the units that took it keep it until a change reaches them again.
   */
  private async undo(rollout: Rollout, now: number): Promise<Rollout> {
    const { scope, name, version, previous } = rollout.layer;
    if (previous === undefined) return rollout;
    const restored = await this.options.store.restoreLayer(scope, name, version, previous, now);
    const note = restored ? `; ${describeLayer(scope, name)} restored to its settings before version ${version}` : `; ${describeLayer(scope, name)} changed since, so left as it is`;
    this.options.log.warn({ rollout: rollout.id, restored }, 'rollout aborted: its change taken back from the layer');
    return { ...rollout, reason: `${rollout.reason ?? 'aborted'}${note}` };
  }

  /** Above every version the unit was sent or reported. */
  private nextVersion(kind: RolloutKind, gateway: string, report: UnitReport | undefined): number {
    return Math.max(this.held[kind].get(gateway) ?? 0, report?.version ?? 0, report?.last?.version ?? 0) + 1;
  }

  /** The unit's message of `rollout`'s kind, signed, retained: its layers merged, or the keys to trust. */
  private async send(rollout: Rollout, gateway: string, venue: string, version: number, layers: readonly ConfigLayer[]): Promise<void> {
    const kind = rollout.kind ?? 'config';
    const issued = { venue, gateway, version, issuedAt: this.timers.now() };
    let message;
    if (kind === 'trust') {
      message = { kind, ...issued, keys: [...(rollout.keys ?? [])] };
    } else if (kind === 'signingKey') {
      message = { kind, ...issued };
    } else {
      const groups = this.options.registry?.lookup(gateway)?.record.groups ?? [];
      const merged = composeLayers(layers, { gateway, groups }) ?? { settings: {}, notes: [] };
      message = { kind, ...issued, settings: merged.settings, layers: merged.notes };
    }
    this.held[kind].set(gateway, version);
    await this.options.publish(gatewayTopics(this.options.prefix, venue, gateway)[kind], this.options.control.sign(message));
  }
}
