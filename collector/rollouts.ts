// Staged rollouts on the backend (issue 26, item 6): a change of a configuration layer goes out
// unit by unit as core/fleet/rollout.ts says, each unit getting its layers merged in one signed,
// retained message of its own (docs/protocol.md, "Configuration"), and is judged by what the units'
// statuses report; so do the backend keys to trust and orders to rotate a unit's key. A command
// goes out as a signed request and is judged by the unit's signed answer (core/fleet/command.ts).
// One collector of a fleet drives at a time (a lease in the database); any collector, and the CLI,
// can read and request.
import { ulid } from 'ulid';
import type { Logger } from '../core/log/index.js';
import { randomBytes } from 'node:crypto';
import {
  type CommandAnswer, commandOutcome, composeLayers, type SentBefore, sentBefore, type UnitPresence, control, counts, type ConfigLayer, type FleetCommand, layerApplies, type LayerScope, newRollout, type Rollout, type RolloutPlan,
  settleCommands, step, supersede, type UnitReport,
} from '../core/fleet/index.js';
import { systemTimers, type TimerHandle, type Timers } from '../core/time/index.js';
import { type ControlSigner, gatewayTopics, openUnitMessage, readCose, replyTopic, trustedKey } from '../core/wire/index.js';
import type { StatusRow } from './fleet.js';
import type { GovernanceStore } from './store.js';
import { type GatewayRegistry, openGatewayMessage } from './verify.js';

interface ReportedKeys {
  version?: number;
  last?: { version: number; outcome: 'applied' | 'refused'; reason?: string } | null;
}

type RolloutKind = NonNullable<Rollout['kind']>;
/** The kinds sent as a retained, versioned message and judged by the status. */
type RetainedKind = Exclude<RolloutKind, 'command'>;

/**
 * What a unit's status says of the backend's configuration (`config`), the keys it trusts
 * (`trust`) and its own key's rotation (`signingKey`), as a rollout judges it, and when the unit
 * started (a restart command is done once it is back): its document read once.
 */
export function unitReports(row: StatusRow): Record<RetainedKind, UnitReport> & { presence: UnitPresence } {
  let doc: {
    startedAt?: unknown; software?: { version?: unknown }; config?: { remote?: Partial<UnitReport> };
    counters?: { control?: { backendKeys?: ReportedKeys; signingKey?: ReportedKeys }; update?: NonNullable<UnitPresence['software']>['update'] };
  } = {};
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
    presence: {
      online, startedAt: typeof doc.startedAt === 'string' && Number.isFinite(Date.parse(doc.startedAt)) ? Date.parse(doc.startedAt) : null,
      software: { version: typeof doc.software?.version === 'string' ? doc.software.version : null, update: updateReport(doc.counters?.update) },
    },
  };
}

/** counters.update as a rollout reads it; null when absent or not of its shape (a unit that reports none). */
function updateReport(u: unknown): NonNullable<UnitPresence['software']>['update'] {
  if (u === null || typeof u !== 'object') return null;
  const r = u as { state?: unknown; committed?: unknown; last?: { version?: unknown; outcome?: unknown; reason?: unknown; at?: unknown } | null };
  if (typeof r.state !== 'string') return null;
  const l = r.last;
  const last = l && typeof l.version === 'string' && typeof l.outcome === 'string'
    ? { version: l.version, outcome: l.outcome, at: typeof l.at === 'number' ? l.at : 0, ...(typeof l.reason === 'string' ? { reason: l.reason } : {}) }
    : null;
  return { state: r.state, committed: typeof r.committed === 'string' ? r.committed : null, last };
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

/** The units of the fleet, a group or one unit (as a layer of that scope applies to them); an error naming the scope when there are none. */
function scopeUnits(
  store: { statuses(): Promise<StatusRow[]> }, registry: GatewayRegistry | null, scope: LayerScope, name: string,
): Promise<Array<FleetUnit & { online: boolean }>> {
  const none = scope === 'gateway' ? `no unit "${name}" in the registry` : scope === 'group' ? `no unit of the registry is in group "${name}" (a record's "groups")` : 'the registry holds no unit';
  return rolloutUnits(store, registry, (u) => layerApplies(scope, name, u), none);
}

/**
 * Changes a layer and starts its rollout over every unit the layer applies to, in one transaction
 * (a running rollout of the same layer is superseded). The collector holding the lease carries it out.
 */
export async function startChange(
  store: GovernanceStore & { statuses(): Promise<StatusRow[]> }, registry: GatewayRegistry | null,
  scope: LayerScope, name: string, settings: Record<string, unknown>, plan: RolloutPlan, now = Date.now(),
): Promise<{ layer: ConfigLayer; rollout: Rollout }> {
  const units = await scopeUnits(store, registry, scope, name);
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

/** How a command reads in a rollout's change: "restart", "log level debug for 600 s", "update to 0.2.0". */
function commandText(c: FleetCommand): string {
  if (c.op === 'logLevel') return `log level ${c.level} for ${c.forS} s`;
  if (c.op === 'update') return `update to ${c.version}${c.downgrade ? ' (downgrade allowed)' : ''}`;
  return c.op;
}

/**
 * Starts a rollout of what is sent to the units of a scope and judged on its own, not changed in a
 * layer: an order to make and register a new signing key (docs/operating.md, "Gateway keys"), or a
 * command (restart, doctor, log level, update). Rollouts already running go on: they reach other units, or
 * a unit again, which is harmless (a newer order covers an older one; a command runs again).
 */
export async function startScoped(
  store: GovernanceStore & { statuses(): Promise<StatusRow[]> }, registry: GatewayRegistry | null, scope: LayerScope, name: string,
  what: { kind: 'signingKey' } | { kind: 'command'; command: FleetCommand }, plan: RolloutPlan, now = Date.now(),
): Promise<Rollout> {
  const units = await scopeUnits(store, registry, scope, name);
  const change = what.kind === 'signingKey'
    ? `signing keys of ${describeLayer(scope, name)}`
    : `${commandText(what.command)} on ${describeLayer(scope, name)}`;
  const rollout: Rollout = { ...newRollout(ulid(now), change, { scope, name, version: 0 }, units, plan, now), ...what };
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
  /** Publishes QoS 1 (retained or not) through the collector's one connection; resolves once the broker has it. */
  publish: (topic: string, payload: Buffer, retain: boolean) => Promise<void>;
  /** This collector's name in the lease. */
  holder: string;
  tickMs?: number;
  timers?: Timers;
  log: Logger;
}

/** A command sent to one unit of a rollout, and its answer once it came. */
interface CommandSent {
  rollout: string;
  gateway: string;
  venue: string;
  nonce: string;
  before: SentBefore;
  answer: CommandAnswer | null;
}

/** Lease time: a driver that died is replaced after this. */
const LEASE_MS = 15_000;

export class RolloutDriver {
  /** The version each unit's retained configuration and key announcement hold (from the broker, as it tells us). */
  private readonly held: Record<RetainedKind, Map<string, number>> = { config: new Map(), trust: new Map(), signingKey: new Map() };
  /**
   * The commands sent, by rollout and unit, and the same by their request's nonce until answered
   * (in memory: a driver that restarts lets the ones it awaited time out).
   */
  private readonly commands = new Map<string, CommandSent>();
  private readonly unanswered = new Map<string, CommandSent>();
  private timer: TimerHandle | null = null;
  private ticking: Promise<void> | null = null;
  private readonly timers: Timers;
  /** The rollouts as of the last tick, for the metrics and views of this collector. */
  latest: Rollout[] = [];
  driving = false;

  constructor(private readonly options: RolloutDriverOptions) {
    this.timers = options.timers ?? systemTimers;
  }

  /** Where units answer the commands this driver sends (the collector subscribes to it). */
  get replyTopic(): string {
    return replyTopic(this.options.prefix, `${this.options.holder}-rollouts`);
  }

  /** A unit's answer on replyTopic: kept when its registered key signed it and it answers a command sent. */
  onReply(payload: Buffer): void {
    const unchecked = openUnitMessage(payload, null);
    const re = unchecked.ok ? (unchecked.doc as { re?: unknown }).re : undefined;
    const sent = typeof re === 'string' ? this.unanswered.get(re) : undefined;
    if (!sent) return;
    const opened = openGatewayMessage(this.options.registry, sent.venue, sent.gateway, payload);
    if (!opened.ok) {
      this.options.log.warn({ gateway: sent.gateway, reason: opened.reason }, 'command answer refused: not signed by the gateway');
      return;
    }
    this.unanswered.delete(sent.nonce);
    const doc = opened.doc as CommandAnswer;
    sent.answer = { ok: doc.ok === true, error: doc.error, healthy: doc.healthy, checks: doc.checks };
  }

  /** A retained configuration (`config`), key announcement (`trust`) or signing-key order or answer (`signingKey`) the broker holds for `gateway`. */
  onRetained(kind: RetainedKind, gateway: string, payload: Buffer): void {
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
      // Ended rollouts too while units they reached offline may still report (a command reaches none offline).
      const live = (s: (typeof stored)[number]) => s.rollout.state === 'running' || s.requested
        || s.rollout.units.some((u) => u.state === 'sent' || (u.state === 'offline' && s.rollout.kind !== 'command'));
      if (!this.driving || !stored.some(live)) return;
      const reports = new Map((await store.statuses()).map((s) => [s.gateway, unitReports(s)]));
      const layers = await store.layers();
      const stepped = new Map<string, Rollout>();
      const commandChanged = new Set<string>();
      for (const { rollout, requested } of stored.filter(live)) {
        let current = requested ? control(rollout, requested, now) : rollout;
        if (requested) log.warn({ rollout: rollout.id, request: requested }, 'rollout: an operator\'s request carried out');
        const kind = rollout.kind ?? 'config';
        let report: (g: string) => UnitReport | undefined;
        let nextVersion: (g: string) => number;
        if (kind === 'command') {
          // Settled by the answers; step() only stages and times out.
          const settled = settleCommands(current, (g) => {
            const sent = this.commands.get(`${rollout.id}/${g}`);
            return commandOutcome(rollout.command!, sent?.before ?? sentBefore(null), sent?.answer ?? null, reports.get(g)?.presence ?? null);
          }, now);
          if (settled !== current) commandChanged.add(rollout.id);
          current = settled;
          report = (g) => ({ online: reports.get(g)?.presence.online ?? false, version: null, state: 'none', last: null });
          nextVersion = () => 1;
        } else {
          report = (g) => reports.get(g)?.[kind];
          nextVersion = (g) => this.nextVersion(kind, g, report(g));
        }
        const result = step(current, now, report, nextVersion);
        for (const unit of result.send) await this.send(rollout, unit, unit.version!, layers, sentBefore(reports.get(unit.gateway)?.presence));
        if (result.rollout.state !== current.state) log.warn({ rollout: rollout.id, state: result.rollout.state, reason: result.rollout.reason }, `rollout ${result.rollout.state}`);
        current = result.rollout;
        if (current.state === 'aborted' && rollout.state !== 'aborted') current = await this.undo(current, now);
        if (result.changed || requested || commandChanged.has(rollout.id)) await store.saveRollout(current, requested);
        stepped.set(current.id, current);
      }
      this.latest = this.latest.map((r) => stepped.get(r.id) ?? r);
      this.forgetCommands(new Set([...stepped.values()].filter((r) => r.kind === 'command' && r.units.some((u) => u.state === 'sent')).map((r) => r.id)));
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
  private nextVersion(kind: RetainedKind, gateway: string, report: UnitReport | undefined): number {
    return Math.max(this.held[kind].get(gateway) ?? 0, report?.version ?? 0, report?.last?.version ?? 0) + 1;
  }

  /** What was kept of commands whose rollouts no longer await an answer. */
  private forgetCommands(awaiting: ReadonlySet<string>): void {
    for (const [at, sent] of this.commands) {
      if (awaiting.has(sent.rollout)) continue;
      this.commands.delete(at);
      this.unanswered.delete(sent.nonce);
    }
  }

  /**
   * A command as the signed request `vgw command` sends, answered on this driver's reply topic; none
   * to a unit offline. `before`: what the unit reported as it went out (a restart and an update are judged against it).
   */
  private async sendCommand(rollout: Rollout, unit: { gateway: string; venue: string; state: string }, before: SentBefore): Promise<void> {
    if (unit.state !== 'sent') return;
    const nonce = randomBytes(16).toString('base64url');
    const sent: CommandSent = { rollout: rollout.id, gateway: unit.gateway, venue: unit.venue, nonce, before, answer: null };
    this.commands.set(`${rollout.id}/${unit.gateway}`, sent);
    this.unanswered.set(nonce, sent);
    const request = this.options.control.sign({
      kind: 'request', venue: unit.venue, gateway: unit.gateway, issuedAt: this.timers.now(), nonce, replyTo: this.replyTopic, ...rollout.command!,
    });
    await this.options.publish(gatewayTopics(this.options.prefix, unit.venue, unit.gateway).request, request, false);
  }

  /** The unit's message of `rollout`'s kind, signed, retained: its layers merged, the keys to trust, or an order to rotate its key; a command as a request. */
  private async send(rollout: Rollout, unit: { gateway: string; venue: string; state: string }, version: number, layers: readonly ConfigLayer[], before: SentBefore): Promise<void> {
    const kind = rollout.kind ?? 'config';
    if (kind === 'command') return this.sendCommand(rollout, unit, before);
    const { gateway, venue } = unit;
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
    await this.options.publish(gatewayTopics(this.options.prefix, venue, gateway)[kind], this.options.control.sign(message), true);
  }
}
