// A command staged across the fleet (`vgw fleet command`, issue 26 item 6): each unit gets the
// signed request a single `vgw command` sends, in the rollout's stages, and is judged by its signed
// answer (and, for a restart, by coming back). Pure: the collector's rollout driver owns the
// requests in flight, the answers and the statuses, and calls settleCommands() on every tick.
import type { LogLevel } from '../wire/index.js';
import type { Rollout } from './rollout.js';

/** What a command rollout sends each unit (the ops of a request, docs/protocol.md "Requests"). */
export type FleetCommand =
  | { op: 'restart' }
  | { op: 'doctor' }
  | { op: 'logLevel'; level: LogLevel; forS: number }
  | { op: 'update'; manifest: string; version: string; downgrade?: boolean };

/** What a unit's status says, as a command's judgement needs it: whether it is up, since when, and its software updates. */
export interface UnitPresence {
  online: boolean;
  startedAt: number | null;
  /** The version it runs and its status's counters.update (absent: a unit that reports none). */
  software?: { version: string | null; update: { state: string; committed: string | null; last: { version: string; outcome: string; reason?: string; at: number } | null } | null };
}

/** What was true of the unit as the command went out: a restart and an update are judged against it. */
export interface SentBefore {
  startedAt: number | null;
  /** counters.update.last as it was (JSON), so an older outcome is not taken for this command's. */
  updateLast: string | null;
}

export const sentBefore = (presence: UnitPresence | null | undefined): SentBefore => ({
  startedAt: presence?.startedAt ?? null,
  updateLast: presence?.software?.update?.last ? JSON.stringify(presence.software.update.last) : null,
});

/** A unit's signed answer to the command, as far as the judgement needs it. */
export interface CommandAnswer {
  ok: boolean;
  error?: string;
  healthy?: boolean;
  checks?: Array<{ check: string; ok: boolean; detail?: string }>;
}

/**
 * What became of the command at one unit; null while it is still to be seen. `before` is what the
 * unit reported as the command went out: a restart is done once it is online having started since
 * (compared as the unit reported them, so its clock need not be right); an update once it runs the
 * release, committed, and failed once it reports the release refused or rolled back since.
 */
export function commandOutcome(
  command: FleetCommand, before: SentBefore, answer: CommandAnswer | null, status: UnitPresence | null,
): { state: 'applied' | 'failed'; reason?: string } | null {
  if (!answer) return null;
  if (!answer.ok) return { state: 'failed', reason: `refused: ${answer.error ?? 'no reason given'}` };
  if (command.op === 'update') {
    const update = status?.software?.update;
    const last = update?.last;
    if (last && last.version === command.version && last.outcome !== 'applied' && JSON.stringify(last) !== before.updateLast) {
      return { state: 'failed', reason: `${last.outcome === 'rolledBack' ? 'rolled back' : 'refused'}: ${last.reason ?? 'no reason given'}`.slice(0, 500) };
    }
    return status?.online && status.software?.version === command.version && update?.committed === command.version && update.state === 'idle' ? { state: 'applied' } : null;
  }
  if (command.op === 'doctor') {
    if (answer.healthy === true) return { state: 'applied' };
    const failing = (answer.checks ?? []).filter((c) => !c.ok).map((c) => (c.detail ? `${c.check} (${c.detail})` : c.check));
    return { state: 'failed', reason: `doctor: ${failing.length ? failing.join('; ') : 'not healthy'}`.slice(0, 500) };
  }
  if (command.op === 'restart') return status?.online && status.startedAt !== null && status.startedAt !== before.startedAt ? { state: 'applied' } : null;
  return { state: 'applied' };
}

/** The rollout with the units whose outcome is known settled; the same object when none is. */
export function settleCommands(rollout: Rollout, outcome: (gateway: string) => ReturnType<typeof commandOutcome>, now: number): Rollout {
  let changed = false;
  const units = rollout.units.map((u) => {
    if (u.state !== 'sent') return u;
    const o = outcome(u.gateway);
    if (!o) return u;
    changed = true;
    return { ...u, state: o.state, settledAt: now, ...(o.reason ? { reason: o.reason } : {}) };
  });
  return changed ? { ...rollout, units, updatedAt: now } : rollout;
}
