// A staged rollout (issue 26, item 6): a change reaches a canary share of the units first, then the
// rest at a rate, and stops by itself once `abortAfter` units failed (refused it, rolled it back,
// or said nothing within `settleMs`). Pure: the collector owns the database row, the clock, the
// broker and the units' statuses, and calls step() on every tick.
//
// What bounds the damage: beyond the canary, no more units are left waiting for an outcome than
// failures could still be afforded (abortAfter − failed), so a change that breaks every unit it
// reaches stops having reached at most the canary plus abortAfter units.

import type { FleetCommand } from './command.js';

export interface RolloutPlan {
  /** The first this many units (online ones first) take the change alone, all at once. */
  canary: number;
  /** Units started per minute after the canary settled (Infinity: as fast as the failure budget allows). */
  ratePerMinute: number;
  /** The rollout stops once this many units failed. */
  abortAfter: number;
  /** How long a unit has to report what became of the change before it counts as failed. */
  settleMs: number;
}

export type UnitProgress =
  /** Not sent yet. */
  | 'pending'
  /** Sent; its outcome is awaited. */
  | 'sent'
  /** Sent while the unit was offline: it takes the change when it returns (retained); not awaited. A command is not sent to it at all. */
  | 'offline'
  | 'applied'
  | 'failed';

export interface RolloutUnit {
  gateway: string;
  venue: string;
  state: UnitProgress;
  /** The version of its configuration the change went out as. */
  version?: number;
  sentAt?: number;
  settledAt?: number;
  reason?: string;
}

export type RolloutState = 'running' | 'paused' | 'aborted' | 'done';

export interface Rollout {
  v: 1;
  id: string;
  /** What goes out: a unit's merged configuration layers (the default), the backend keys it is to trust, an order to rotate its own signing key, or a command. */
  kind?: 'config' | 'trust' | 'signingKey' | 'command';
  /** A command rollout's command (sent as a signed request, not retained: a unit offline at its turn is not reached). */
  command?: FleetCommand;
  /** A trust rollout's keys (raw Ed25519 public keys, hex). */
  keys?: string[];
  /** What changed, for people: e.g. "group city-kl version 3". */
  change: string;
  /** The layer that changed, and its settings before (null: it did not exist), restored if the rollout aborts. */
  layer: { scope: 'fleet' | 'group' | 'gateway'; name: string; version: number; previous?: Record<string, unknown> | null };
  createdAt: number;
  state: RolloutState;
  reason?: string;
  plan: RolloutPlan;
  /** The canary first (units[0 .. plan.canary)). */
  units: RolloutUnit[];
  /** When the units after the canary began (null: the canary has not settled yet). */
  restStartedAt: number | null;
  updatedAt: number;
}

/** What a unit last said of the backend's configuration (its status: config.remote, and whether it is online). */
export interface UnitReport {
  online: boolean;
  /** The version it runs (committed or on trial). */
  version: number | null;
  state: 'none' | 'trial' | 'committed';
  last: { version: number; outcome: 'applied' | 'refused' | 'rolledBack'; reason?: string } | null;
}

export interface StepResult {
  rollout: Rollout;
  /** Units to send the change to now (their state is already 'sent' or 'offline' in `rollout`). */
  send: RolloutUnit[];
  /** Whether `rollout` differs from the one given (the row needs writing). */
  changed: boolean;
}

export function counts(rollout: Rollout): Record<UnitProgress, number> {
  const c: Record<UnitProgress, number> = { pending: 0, sent: 0, offline: 0, applied: 0, failed: 0 };
  for (const u of rollout.units) c[u.state]++;
  return c;
}

/** A new rollout over `units`, ordered online first so the canary is made of units that can answer. */
export function newRollout(
  id: string, change: string, layer: Rollout['layer'], units: ReadonlyArray<{ gateway: string; venue: string; online: boolean }>, plan: RolloutPlan, now: number,
): Rollout {
  const ordered = [...units].sort((a, b) => Number(b.online) - Number(a.online) || spread(a.gateway, id) - spread(b.gateway, id));
  return {
    v: 1, id, change, layer, createdAt: now, state: 'running', plan: { ...plan, canary: Math.min(plan.canary, units.length) },
    units: ordered.map((u) => ({ gateway: u.gateway, venue: u.venue, state: 'pending' })), restStartedAt: null, updatedAt: now,
  };
}

/** A stable order that differs per rollout, so one canary does not always take the same venues. */
function spread(gateway: string, salt: string): number {
  let h = 2166136261;
  for (const ch of `${salt}/${gateway}`) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  return h >>> 0;
}

/** What the unit's report says of version `version` of its configuration: settled or not yet. */
export function outcomeOf(report: UnitReport | undefined, version: number): { state: 'applied' | 'failed'; reason?: string } | null {
  if (!report) return null;
  const last = report.last;
  if (last && last.version >= version) {
    // A later version settled instead (a newer rollout overtook this one): judged by that one.
    if (last.outcome === 'applied') return { state: 'applied' };
    return { state: 'failed', reason: `${last.outcome === 'refused' ? 'refused' : 'rolled back'} version ${last.version}${last.reason ? `: ${last.reason}` : ''}` };
  }
  if (report.state === 'committed' && report.version !== null && report.version >= version) return { state: 'applied' };
  return null;
}

/**
 * One tick: settles what the units reported, stops on too many failures, and says whom to send
 * the change to now. `report(gateway)` is the unit's latest status, `nextVersion(gateway)` the
 * version its configuration goes out as.
 */
export function step(rollout: Rollout, now: number, report: (gateway: string) => UnitReport | undefined, nextVersion: (gateway: string) => number): StepResult {
  let changed = false;
  const units = rollout.units.map((u) => {
    if ((u.state !== 'sent' && u.state !== 'offline') || u.version === undefined) return u;
    const outcome = outcomeOf(report(u.gateway), u.version);
    if (outcome) {
      changed = true;
      return { ...u, state: outcome.state, settledAt: now, ...(outcome.reason ? { reason: outcome.reason } : {}) };
    }
    if (u.state === 'sent' && now - (u.sentAt ?? now) >= rollout.plan.settleMs) {
      changed = true;
      return { ...u, state: 'failed' as const, settledAt: now, reason: `no outcome reported within ${Math.round(rollout.plan.settleMs / 1000)} s` };
    }
    return u;
  });
  let next: Rollout = { ...rollout, units };
  const c = counts(next);
  const send: RolloutUnit[] = [];
  if (next.state === 'running' && c.failed >= next.plan.abortAfter) {
    next = { ...next, state: 'aborted', reason: `${c.failed} units failed (the rollout stops at ${next.plan.abortAfter})` };
    changed = true;
  }
  if (next.state === 'running') {
    const canary = next.units.slice(0, next.plan.canary);
    const due: number[] = [];
    if (canary.some((u) => u.state === 'pending')) {
      next.units.forEach((u, i) => i < next.plan.canary && u.state === 'pending' && due.push(i));
    } else if (!canary.some((u) => u.state === 'sent')) {
      const restStartedAt = next.restStartedAt ?? now;
      if (next.restStartedAt === null) {
        next = { ...next, restStartedAt };
        changed = true;
      }
      const rest = next.units.slice(next.plan.canary);
      const started = rest.filter((u) => u.state !== 'pending').length;
      const byRate = Number.isFinite(next.plan.ratePerMinute) ? Math.floor((next.plan.ratePerMinute * (now - restStartedAt)) / 60_000) + 1 - started : Infinity;
      const byBudget = next.plan.abortAfter - c.failed - c.sent;
      let allowed = Math.min(byRate, byBudget);
      for (let i = next.plan.canary; i < next.units.length && allowed > 0; i++) {
        if (next.units[i].state !== 'pending') continue;
        due.push(i);
        allowed--;
      }
    }
    if (due.length > 0) {
      const sentUnits = [...next.units];
      for (const i of due) {
        const u = sentUnits[i];
        const online = report(u.gateway)?.online ?? false;
        sentUnits[i] = { ...u, state: online ? 'sent' : 'offline', version: nextVersion(u.gateway), sentAt: now };
        send.push(sentUnits[i]);
      }
      next = { ...next, units: sentUnits };
      changed = true;
    }
    const after = counts(next);
    if (after.pending === 0 && after.sent === 0) {
      next = { ...next, state: 'done' };
      changed = true;
    }
  }
  return { rollout: changed ? { ...next, updatedAt: now } : rollout, send, changed };
}

/** Operators' hands on a rollout: pause keeps what was sent, resume carries on, abort stops for good. */
export function control(rollout: Rollout, action: 'pause' | 'resume' | 'abort', now: number): Rollout {
  if (rollout.state === 'done' || rollout.state === 'aborted') return rollout;
  if (action === 'pause') return { ...rollout, state: 'paused', updatedAt: now };
  if (action === 'resume') {
    // The rate carries on from here: a long pause is not a budget of units to send at once.
    const started = rollout.units.slice(rollout.plan.canary).filter((u) => u.state !== 'pending').length;
    const restStartedAt = rollout.restStartedAt === null || !Number.isFinite(rollout.plan.ratePerMinute)
      ? rollout.restStartedAt
      : now - (Math.max(0, started - 1) * 60_000) / rollout.plan.ratePerMinute;
    return { ...rollout, state: 'running', restStartedAt, updatedAt: now };
  }
  return { ...rollout, state: 'aborted', reason: 'aborted by an operator', updatedAt: now };
}

/** A newer version of the same layer is rolling out: this one stops (the newer carries the units on). */
export function supersede(rollout: Rollout, by: string, now: number): Rollout {
  if (rollout.state === 'done' || rollout.state === 'aborted') return rollout;
  return { ...rollout, state: 'aborted', reason: `superseded by rollout ${by}`, updatedAt: now };
}

export const ended = (rollout: Rollout): boolean => rollout.state === 'done' || rollout.state === 'aborted';
