// The staged rollout's rules (core/fleet/rollout.ts) and the layers a unit's settings are merged
// from (core/fleet/layers.ts), stepped by hand: the canary alone first, then the rest at a rate,
// a stop by itself once abortAfter units failed, and never more than canary + abortAfter units
// reached by a change that breaks every unit.
import { describe, expect, it } from 'vitest';
import { commandOutcome, composeLayers, sentBefore, control, counts, layerApplies, newRollout, settleCommands, step, type ConfigLayer, type Rollout, type RolloutPlan, type UnitReport } from '../../core/fleet/index.js';

const units = (n: number, offline: number[] = []) =>
  Array.from({ length: n }, (_, i) => ({ gateway: `gw-${String(i + 1).padStart(3, '0')}`, venue: `v-${i + 1}`, online: !offline.includes(i + 1) }));
const plan = (p: Partial<RolloutPlan> = {}): RolloutPlan => ({ canary: 5, ratePerMinute: 60, abortAfter: 3, settleMs: 600_000, ...p });
const layer = { scope: 'fleet' as const, name: '', version: 2 };

/** Units that answer every version they are sent with `outcome` (null: silence), as their statuses would. */
class Fleet {
  readonly reports = new Map<string, UnitReport>();
  readonly versions = new Map<string, number>();
  constructor(private readonly outcome: (gateway: string) => 'applied' | 'rolledBack' | null, offline: string[] = []) {
    for (const g of offline) this.reports.set(g, { online: false, version: null, state: 'none', last: null });
  }

  report = (g: string): UnitReport => this.reports.get(g) ?? { online: true, version: null, state: 'none', last: null };
  next = (g: string): number => (this.versions.get(g) ?? 0) + 1;

  /** What the units do with what was sent, as their next statuses say. */
  answer(sent: ReadonlyArray<{ gateway: string; version?: number }>): void {
    for (const u of sent) {
      this.versions.set(u.gateway, u.version!);
      const outcome = this.outcome(u.gateway);
      if (outcome === null || this.reports.get(u.gateway)?.online === false) continue;
      this.reports.set(u.gateway, outcome === 'applied'
        ? { online: true, version: u.version!, state: 'committed', last: { version: u.version!, outcome } }
        : { online: true, version: null, state: 'none', last: { version: u.version!, outcome, reason: 'not healthy within 180 s' } });
    }
  }
}

/** Steps every `tickMs` until the rollout ends (or `maxMs`), the units answering at once. */
function run(r: Rollout, fleet: Fleet, tickMs: number, maxMs: number): { rollout: Rollout; reached: number; at: number } {
  let reached = 0;
  let now = r.createdAt;
  for (; now <= r.createdAt + maxMs; now += tickMs) {
    const result = step(r, now, fleet.report, fleet.next);
    r = result.rollout;
    reached += result.send.length;
    fleet.answer(result.send);
    if (r.state === 'done' || r.state === 'aborted') break;
  }
  return { rollout: r, reached, at: now };
}

describe('staged rollout', () => {
  it('sends the canary alone, waits for it, then the rest at the rate', () => {
    const fleet = new Fleet(() => null);
    let r = newRollout('r1', 'fleet version 2', layer, units(20), plan(), 0);
    const first = step(r, 0, fleet.report, fleet.next);
    expect(first.send.map((u) => u.state)).toEqual(['sent', 'sent', 'sent', 'sent', 'sent']);
    r = first.rollout;
    expect(step(r, 1000, fleet.report, fleet.next).send).toEqual([]); // the canary has not answered
    // the canary answers: applied
    for (const u of first.send) fleet.reports.set(u.gateway, { online: true, version: 1, state: 'committed', last: { version: 1, outcome: 'applied' } });
    const second = step(r, 2000, fleet.report, fleet.next);
    expect(counts(second.rollout)).toMatchObject({ applied: 5, sent: 1, pending: 14 });
    expect(second.rollout.restStartedAt).toBe(2000);
    r = second.rollout;
    // 60 a minute: one a second after the first; and never more than the failure budget waiting
    expect(step(r, 2500, fleet.report, fleet.next).send).toHaveLength(0);
    const later = step(r, 4000, fleet.report, fleet.next);
    expect(later.send).toHaveLength(2);
    expect(counts(step(later.rollout, 60_000, fleet.report, fleet.next).rollout).sent).toBe(3); // abortAfter − failed
  });

  it('finishes when every unit applied, each at the version after the one it had', () => {
    const fleet = new Fleet(() => 'applied');
    fleet.versions.set('gw-007', 41);
    const { rollout } = run(newRollout('r2', 'fleet version 2', layer, units(50), plan({ ratePerMinute: 600 }), 0), fleet, 1000, 3_600_000);
    expect(rollout.state).toBe('done');
    expect(counts(rollout)).toMatchObject({ applied: 50, failed: 0, pending: 0 });
    expect(rollout.units.find((u) => u.gateway === 'gw-007')!.version).toBe(42);
  });

  it('stops by itself when a change breaks units: at most canary + abortAfter units reached', () => {
    for (const [canary, abortAfter] of [[5, 3], [2, 10], [1, 1], [10, 50]]) {
      const fleet = new Fleet(() => 'rolledBack');
      const { rollout, reached } = run(newRollout('r3', 'fleet version 2', layer, units(200), plan({ canary, abortAfter, ratePerMinute: Infinity }), 0), fleet, 1000, 3_600_000);
      expect(rollout.state).toBe('aborted');
      expect(rollout.reason).toBe(`${counts(rollout).failed} units failed (the rollout stops at ${abortAfter})`);
      expect(reached).toBeLessThanOrEqual(canary + abortAfter);
      expect(counts(rollout).failed).toBe(reached);
      expect(rollout.units.find((u) => u.state === 'failed')!.reason).toBe('rolled back version 1: not healthy within 180 s');
    }
  });

  it('a change that breaks a few units goes on until the budget is spent', () => {
    const broken = new Set(['gw-030', 'gw-060', 'gw-090', 'gw-120']);
    const fleet = new Fleet((g) => (broken.has(g) ? 'rolledBack' : 'applied'));
    const some = run(newRollout('r4', 'x', layer, units(150), plan({ abortAfter: 10, ratePerMinute: Infinity }), 0), fleet, 1000, 3_600_000).rollout;
    expect(some.state).toBe('done');
    expect(counts(some)).toMatchObject({ failed: 4, applied: 146, pending: 0 });
  });

  it('counts silence as failure after settleMs, and sends offline units without waiting for them', () => {
    const fleet = new Fleet((g) => (g === 'gw-002' ? null : 'applied'), ['gw-004']);
    let r = newRollout('r5', 'x', layer, units(4, [4]), plan({ canary: 2, abortAfter: 2, settleMs: 60_000 }), 0);
    expect(r.units.at(-1)!.gateway).toBe('gw-004'); // online units make the canary
    const done = run(r, fleet, 1000, 600_000);
    r = done.rollout;
    expect(r.state).toBe('done');
    expect(r.units.find((u) => u.gateway === 'gw-002')).toMatchObject({ state: 'failed', reason: 'no outcome reported within 60 s' });
    expect(r.units.find((u) => u.gateway === 'gw-004')).toMatchObject({ state: 'offline', version: 1 });
    expect(done.at).toBeGreaterThanOrEqual(60_000);
    // the offline unit returns and reports: settled after the end
    fleet.reports.set('gw-004', { online: true, version: 1, state: 'committed', last: { version: 1, outcome: 'applied' } });
    expect(counts(step(r, done.at + 1000, fleet.report, fleet.next).rollout)).toMatchObject({ applied: 3, failed: 1, offline: 0 });
  });

  it('judges a unit by a later version that overtook the one sent', () => {
    const fleet = new Fleet(() => null);
    let r = step(newRollout('r6', 'x', layer, units(1), plan({ canary: 1 }), 0), 0, fleet.report, fleet.next).rollout;
    fleet.reports.set('gw-001', { online: true, version: 3, state: 'committed', last: { version: 3, outcome: 'applied' } });
    r = step(r, 1000, fleet.report, fleet.next).rollout;
    expect(r.units[0]).toMatchObject({ state: 'applied' });
  });

  it('pauses, resumes at the rate (not a burst), and an abort is final', () => {
    const fleet = new Fleet(() => 'applied');
    let r = run(newRollout('r7', 'x', layer, units(30), plan({ canary: 2, ratePerMinute: 6, abortAfter: 10 }), 0), fleet, 1000, 30_000).rollout;
    const before = counts(r);
    r = control(r, 'pause', 31_000);
    expect(step(r, 600_000, fleet.report, fleet.next).send).toEqual([]);
    r = control(r, 'resume', 600_000);
    expect(step(r, 600_000, fleet.report, fleet.next).send.length).toBeLessThanOrEqual(1);
    r = control(r, 'abort', 601_000);
    expect(r).toMatchObject({ state: 'aborted', reason: 'aborted by an operator' });
    expect(control(r, 'resume', 602_000).state).toBe('aborted');
    expect(before.pending).toBeGreaterThan(0);
  });
});

describe('configuration layers', () => {
  const at = 1;
  const layers: ConfigLayer[] = [
    { scope: 'fleet', name: '', version: 3, settings: { uplink: { statusIntervalS: 300, flushIntervalS: 10 } }, updatedAt: at },
    { scope: 'group', name: 'city-kl', version: 2, settings: { uplink: { statusIntervalS: 120 } }, updatedAt: at },
    { scope: 'group', name: 'mall', version: 5, settings: { radio: { scanWindowMs: 50 } }, updatedAt: at },
    { scope: 'gateway', name: 'gw-9', version: 1, settings: { uplink: { flushIntervalS: 5 } }, updatedAt: at },
  ];

  it('merges fleet, then groups in the unit\'s order, then the unit\'s own, and notes each version', () => {
    expect(composeLayers(layers, { gateway: 'gw-9', groups: ['city-kl', 'mall'] })).toEqual({
      settings: { uplink: { statusIntervalS: 120, flushIntervalS: 5 }, radio: { scanWindowMs: 50 } },
      notes: [{ layer: 'fleet', version: 3 }, { layer: 'group', name: 'city-kl', version: 2 }, { layer: 'group', name: 'mall', version: 5 }, { layer: 'gateway', name: 'gw-9', version: 1 }],
    });
    expect(composeLayers(layers, { gateway: 'gw-1' })!.settings).toEqual({ uplink: { statusIntervalS: 300, flushIntervalS: 10 } });
    expect(composeLayers([], { gateway: 'gw-1' })).toBeNull();
    expect([layerApplies('group', 'mall', { gateway: 'x', groups: ['mall'] }), layerApplies('gateway', 'gw-9', { gateway: 'gw-1' }), layerApplies('fleet', '', { gateway: 'a' })]).toEqual([true, false, true]);
  });
});

describe('a command across the fleet, judged by the answers (core/fleet/command.ts)', () => {
  it('applies on a good answer, fails on a refusal or an unhealthy doctor with its checks named, and counts a restart only once the unit is back', () => {
    const ok = { ok: true };
    const none = sentBefore(null);
    const at = (startedAt: number) => ({ startedAt, updateLast: null });
    expect(commandOutcome({ op: 'logLevel', level: 'debug', forS: 60 }, none, null, null)).toBeNull();
    expect(commandOutcome({ op: 'logLevel', level: 'debug', forS: 60 }, none, ok, null)).toEqual({ state: 'applied' });
    expect(commandOutcome({ op: 'restart' }, none, { ok: false, error: 'op: restart is not carried out by this unit' }, null)).toEqual({ state: 'failed', reason: 'refused: op: restart is not carried out by this unit' });
    expect(commandOutcome({ op: 'doctor' }, none, { ok: true, healthy: true, checks: [{ check: 'config', ok: true }] }, null)).toEqual({ state: 'applied' });
    expect(commandOutcome({ op: 'doctor' }, none, { ok: true, healthy: false, checks: [{ check: 'config', ok: true }, { check: 'tls', ok: false, detail: 'expires in 3 days' }, { check: 'disk', ok: false }] }, null))
      .toEqual({ state: 'failed', reason: 'doctor: tls (expires in 3 days); disk' });
    // a restart: answered, but done only once online having started since (as the unit tells it: its clock need not be right)
    expect(commandOutcome({ op: 'restart' }, at(1000), ok, { online: true, startedAt: 1000 })).toBeNull();
    expect(commandOutcome({ op: 'restart' }, at(1000), ok, { online: false, startedAt: 5 })).toBeNull();
    expect(commandOutcome({ op: 'restart' }, at(1000), ok, { online: true, startedAt: 5 })).toEqual({ state: 'applied' });
    expect(commandOutcome({ op: 'restart' }, none, ok, { online: true, startedAt: 5 })).toEqual({ state: 'applied' });
  });

  it('counts an update done once the unit runs the release, committed; failed once it reports it refused or rolled back since it was sent', () => {
    const update = { op: 'update' as const, manifest: 'https://r.example/venue-gateway-0.2.0-linux-arm64.manifest.cose', version: '0.2.0' };
    const ok = { ok: true };
    const unit = (version: string, state: string, committed: string, last: { version: string; outcome: string; reason?: string; at: number } | null, online = true) =>
      ({ online, startedAt: 5, software: { version, update: { state, committed, last } } });
    const earlier = { version: '0.2.0', outcome: 'refused', reason: 'artifact.sha256: altered', at: 100 };
    const before = sentBefore(unit('0.1.0', 'idle', '0.1.0', earlier));
    expect(commandOutcome(update, before, null, unit('0.2.0', 'idle', '0.2.0', null))).toBeNull(); // no answer yet
    expect(commandOutcome(update, before, { ok: false, error: 'update.releaseKeys: empty' }, null)).toEqual({ state: 'failed', reason: 'refused: update.releaseKeys: empty' });
    // under way: downloading, then on trial; an outcome from before the command is not this one's
    expect(commandOutcome(update, before, ok, unit('0.1.0', 'downloading', '0.1.0', earlier))).toBeNull();
    expect(commandOutcome(update, before, ok, unit('0.2.0', 'trial', '0.1.0', earlier))).toBeNull();
    expect(commandOutcome(update, before, ok, unit('0.2.0', 'idle', '0.2.0', { version: '0.2.0', outcome: 'applied', at: 200 }))).toEqual({ state: 'applied' });
    expect(commandOutcome(update, before, ok, unit('0.2.0', 'idle', '0.2.0', null, false))).toBeNull(); // offline: not yet seen
    expect(commandOutcome(update, before, ok, unit('0.1.0', 'idle', '0.1.0', { version: '0.2.0', outcome: 'rolledBack', reason: 'started 3 times', at: 300 })))
      .toEqual({ state: 'failed', reason: 'rolled back: started 3 times' });
    expect(commandOutcome(update, before, ok, unit('0.1.0', 'idle', '0.1.0', { ...earlier, at: 400 }))).toEqual({ state: 'failed', reason: 'refused: artifact.sha256: altered' });
  });

  it('settles the units sent whose outcome is known, and leaves the rest to step() (its stages and its settle time)', () => {
    const r: Rollout = { ...newRollout('01C', 'restart on fleet', layer, units(3), plan({ canary: 1, abortAfter: 1 }), 0), kind: 'command', command: { op: 'restart' } };
    const sent = step(r, 0, () => ({ online: true, version: null, state: 'none', last: null }), () => 1).rollout;
    expect(counts(sent)).toMatchObject({ sent: 1, pending: 2 });
    expect(settleCommands(sent, () => null, 10)).toBe(sent);
    const settled = settleCommands(sent, () => ({ state: 'failed', reason: 'refused: no' }), 10);
    expect(settled.units[0]).toMatchObject({ state: 'failed', settledAt: 10, reason: 'refused: no' });
    // and the rollout stops as for any change: one failure is its budget
    expect(step(settled, 10, () => ({ online: true, version: null, state: 'none', last: null }), () => 1).rollout).toMatchObject({ state: 'aborted' });
  });
});
