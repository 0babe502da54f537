// Which release a unit runs (issue 27): releases sit side by side under the install root
// (releases/<version>), `current` names the one to start and `committed` the last that passed the
// health gate. A new release runs on trial: every start of it is counted before it runs (by the
// guard, which runs from the committed release), and it must pass the gate within a few starts or
// the unit returns to the committed release by itself; a version rolled back is never tried again.
// The state is one small file in the install root, replaced atomically; the links follow it, so a
// power cut between writing it and moving a link is mended at the next start. Pure.

/** What became of a release offered to the unit: the status and the backend hear the last. */
export interface ReleaseOutcome {
  version: string;
  outcome: 'applied' | 'refused' | 'rolledBack';
  reason?: string;
  at: number;
}

export interface SlotState {
  v: 1;
  /** The release that passed the health gate (or was installed by hand): what the unit returns to. */
  committed: string | null;
  /** The one committed before it: kept on disk, the rest are removed at a commit. */
  previous: string | null;
  /** A release being tried: started `boots` times so far without passing the gate. */
  trial: { version: string; boots: number; since: number } | null;
  /** Versions rolled back: refused from now on (newest last, at most FAILED_KEPT). */
  failed: string[];
  /** The latest outcomes, newest last (at most HISTORY_KEPT). */
  history: ReleaseOutcome[];
}

/** Starts of a trial release without passing the gate before the guard rolls it back. */
export const MAX_RELEASE_TRIAL_BOOTS = 3;
const FAILED_KEPT = 50;
const HISTORY_KEPT = 10;

export const emptySlotState = (committed: string | null = null): SlotState => ({ v: 1, committed, previous: null, trial: null, failed: [], history: [] });

const remember = (history: ReleaseOutcome[], outcome: ReleaseOutcome) => [...history, outcome].slice(-HISTORY_KEPT);

/** The state file as read; null when it is not one (the caller says so and starts from the links). */
export function parseSlotState(text: string): SlotState | null {
  try {
    const s = JSON.parse(text) as SlotState;
    const version = (v: unknown) => v === null || typeof v === 'string';
    if (s?.v !== 1 || !version(s.committed) || !version(s.previous) || !Array.isArray(s.failed) || !Array.isArray(s.history)) return null;
    if (s.trial !== null && (typeof s.trial?.version !== 'string' || typeof s.trial.boots !== 'number')) return null;
    return s;
  } catch {
    return null;
  }
}

/** Why the unit must not take `version` (null: it may): it is running it, or it broke the unit before. */
export function trialRefusal(state: SlotState, version: string): string | null {
  if (state.failed.includes(version)) return `version: ${version} was rolled back on this unit before and is not tried again (ship a new version)`;
  if (state.trial) return `version: ${state.trial.version} is on trial; wait until it is committed or rolled back`;
  if (state.committed === version) return `version: ${version} is the release this unit runs`;
  return null;
}

/** The release is installed and checked: it runs on trial from the next start. */
export function beginTrial(state: SlotState, version: string, now: number): SlotState {
  return { ...state, trial: { version, boots: 0, since: now } };
}

/** The release was refused before anything changed (the reason names the field): remembered for the status. */
export function refuseRelease(state: SlotState, version: string, reason: string, now: number): SlotState {
  return { ...state, history: remember(state.history, { version, outcome: 'refused', reason, at: now }) };
}

export type GuardPlan =
  /** Start `run` (null: nothing is installed); `state` counts the start of a trial. */
  | { kind: 'run'; run: string | null; trial: boolean; state: SlotState }
  /** The trial started MAX_RELEASE_TRIAL_BOOTS times without passing the gate: the committed release again. */
  | { kind: 'rolledBack'; run: string | null; trial: false; state: SlotState; reason: string };

/** At every start, before the daemon: which release to start, counting the starts of a trial. */
export function guardBoot(state: SlotState, now: number): GuardPlan {
  const trial = state.trial;
  if (!trial) return { kind: 'run', run: state.committed, trial: false, state };
  if (trial.boots >= MAX_RELEASE_TRIAL_BOOTS) {
    const reason = `started ${trial.boots} times without passing the health gate (it crashed, hung or never became healthy)`;
    return { kind: 'rolledBack', run: state.committed, trial: false, reason, state: failTrial(state, reason, now) };
  }
  return { kind: 'run', run: trial.version, trial: true, state: { ...state, trial: { ...trial, boots: trial.boots + 1 } } };
}

/** The trial passed the gate: the unit returns to it from now on. */
export function commitTrial(state: SlotState, now: number): SlotState {
  const trial = state.trial;
  if (!trial) return state;
  return {
    ...state, committed: trial.version, previous: state.committed, trial: null,
    history: remember(state.history, { version: trial.version, outcome: 'applied', at: now }),
  };
}

/** The trial broke the unit: back to the committed release, the version never tried again. */
export function failTrial(state: SlotState, reason: string, now: number): SlotState {
  const trial = state.trial;
  if (!trial) return state;
  return {
    ...state, trial: null, failed: [...state.failed.filter((v) => v !== trial.version), trial.version].slice(-FAILED_KEPT),
    history: remember(state.history, { version: trial.version, outcome: 'rolledBack', reason, at: now }),
  };
}

/** The releases to keep on disk: the committed one, the one before it, and a trial. */
export function releasesKept(state: SlotState): string[] {
  return [state.committed, state.previous, state.trial?.version ?? null].filter((v): v is string => v !== null);
}

/**
 * A release installed by hand (install.sh, or a technician's way back): committed at once, a
 * trial under way abandoned, and the version no longer counted as failed.
 */
export function adoptRelease(state: SlotState, version: string, now: number): SlotState {
  return {
    ...state, committed: version, previous: state.committed === version ? state.previous : state.committed, trial: null,
    failed: state.failed.filter((v) => v !== version), history: remember(state.history, { version, outcome: 'applied', reason: 'installed by hand', at: now }),
  };
}
