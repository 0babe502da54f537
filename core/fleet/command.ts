// A command staged across the fleet (`vgw fleet command`, issue 26 item 6): each unit gets the
// signed request a single `vgw command` sends, in the rollout's stages, and is judged by its signed
// answer (and, for a restart, by coming back). Pure: the collector's rollout driver owns the
// requests in flight, the answers and the statuses, and calls settleCommands() on every tick.
import type { LogLevel } from '../wire/index.js';
import type { Rollout } from './rollout.js';

/** What a command rollout sends each unit (the ops of a request, docs/protocol.md "Requests"). */
export type FleetCommand = { op: 'restart' } | { op: 'doctor' } | { op: 'logLevel'; level: LogLevel; forS: number };

/** A unit's signed answer to the command, as far as the judgement needs it. */
export interface CommandAnswer {
  ok: boolean;
  error?: string;
  healthy?: boolean;
  checks?: Array<{ check: string; ok: boolean; detail?: string }>;
}

/**
 * What became of the command at one unit; null while it is still to be seen. `startedBefore` is
 * when the unit said it started as the command went out: a restart is done once it is online
 * having started since (compared as the unit reported them, so its clock need not be right).
 */
export function commandOutcome(
  command: FleetCommand, startedBefore: number | null, answer: CommandAnswer | null, status: { online: boolean; startedAt: number | null } | null,
): { state: 'applied' | 'failed'; reason?: string } | null {
  if (!answer) return null;
  if (!answer.ok) return { state: 'failed', reason: `refused: ${answer.error ?? 'no reason given'}` };
  if (command.op === 'doctor') {
    if (answer.healthy === true) return { state: 'applied' };
    const failing = (answer.checks ?? []).filter((c) => !c.ok).map((c) => (c.detail ? `${c.check} (${c.detail})` : c.check));
    return { state: 'failed', reason: `doctor: ${failing.length ? failing.join('; ') : 'not healthy'}`.slice(0, 500) };
  }
  if (command.op === 'restart') return status?.online && status.startedAt !== null && status.startedAt !== startedBefore ? { state: 'applied' } : null;
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
