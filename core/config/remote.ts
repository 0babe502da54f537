// Remote configuration (docs/protocol.md, "Configuration"): the backend's settings for one unit,
// laid over the technician's file, and what a unit does with each version it is offered. Pure:
// the daemon owns the state file, the health gate's timer and the restarts.
import type { Config } from './schema.js';
import { ConfigError, parseConfig } from './schema.js';

/**
 * What the backend may not set: who the unit is, its keys and trust anchors (rotated by their own
 * messages), where its data and control socket live (moving them would orphan what is stored),
 * and which releases it trusts (the control plane's key must not be able to ship code).
 */
export const LOCAL_ONLY_KEYS = [
  'gateway', 'secretsFile', 'broker.ca', 'broker.cert', 'broker.key', 'broker.username', 'broker.password', 'broker.clientId',
  'store.path', 'health.controlSocket', 'beacon.identityKey', 'update.root', 'update.releaseKeys', 'update.ca',
] as const;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every dotted path of `settings` that names a local-only key (or one under it). */
export function localOnlyPaths(settings: Record<string, unknown>, prefix = ''): string[] {
  const found: string[] = [];
  for (const [key, value] of Object.entries(settings)) {
    const path = prefix + key;
    if ((LOCAL_ONLY_KEYS as readonly string[]).includes(path)) found.push(path);
    else if (isObject(value)) found.push(...localOnlyPaths(value, `${path}.`));
  }
  return found;
}

/**
 * The keys (dotted paths to values) `settings` sets to something other than `base` holds (the
 * unit's file with its defaults): where the backend's configuration overrides the unit's own, so
 * a technician's setting stays visible as such.
 */
export function overriddenKeys(base: unknown, settings: Record<string, unknown>, prefix = ''): string[] {
  const found: string[] = [];
  for (const [key, value] of Object.entries(settings)) {
    const held = isObject(base) ? base[key] : undefined;
    if (isObject(value) && (isObject(held) || held === undefined)) found.push(...overriddenKeys(held, value, `${prefix}${key}.`));
    else if (JSON.stringify(value) !== JSON.stringify(held)) found.push(prefix + key);
  }
  return found;
}

/**
 * What a running unit takes without a restart: the concerns that read these are told (the
 * uplink's status timer, the log level). Anything else restarts the daemon cleanly.
 */
export const HOT_KEYS = ['log.level', 'uplink.statusIntervalS'] as const;

/** Whether `to` differs from `from` in HOT_KEYS alone (and so needs no restart). */
export function hotOnly(from: Config, to: Config): boolean {
  const without = (c: Config) => {
    const copy = JSON.parse(JSON.stringify(c)) as Record<string, Record<string, unknown>>;
    for (const key of HOT_KEYS) {
      const [section, name] = key.split('.');
      if (copy[section]) delete copy[section][name];
    }
    return JSON.stringify(copy);
  };
  return without(from) === without(to);
}

/** `over` laid on `base`: objects merge key by key, anything else (arrays too) replaces. */
export function overlay(base: unknown, over: unknown): unknown {
  if (!isObject(base) || !isObject(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) out[key] = overlay(base[key], value);
  return out;
}

/**
 * The configuration a unit runs with `settings` (version `version`) over its file's JSON: checked
 * with the very schema of `vgw config check`. Throws a ConfigError naming each field.
 */
export function remoteConfig(fileJson: unknown, settings: Record<string, unknown>, version: number): Config {
  const source = `(remote configuration version ${version})`;
  const forbidden = localOnlyPaths(settings);
  if (forbidden.length > 0) {
    throw new ConfigError(forbidden.map((p) => `${p}: set on the unit only (\`vgw provision\`), never remotely`), source);
  }
  return parseConfig(overlay(fileJson, settings), source);
}

/** One version the unit was offered and what became of it. */
export interface RemoteOutcome {
  version: number;
  outcome: 'applied' | 'refused' | 'rolledBack';
  reason?: string;
  /** Unix ms (the unit's clock). */
  at: number;
}

export interface RemoteSettings {
  version: number;
  settings: Record<string, unknown>;
}

/** Kept on disk beside the database, written atomically (a power cut leaves the old or the new). */
export interface RemoteConfigState {
  v: 1;
  /** The last version that passed the health gate: what the unit returns to. */
  committed: RemoteSettings | null;
  /** A version being tried: the unit runs it until it passes the gate or is rolled back. */
  trial: (RemoteSettings & { since: number; boots: number }) | null;
  /** The highest version offered so far: anything not above it is old news. */
  highest: number;
  /** The latest outcomes, newest last (the status reports the last; at most HISTORY kept). */
  history: RemoteOutcome[];
}

export const HISTORY = 10;
/** Starts of a trial version without passing the gate before it is rolled back unseen. */
export const MAX_TRIAL_BOOTS = 3;

export const emptyRemoteState = (): RemoteConfigState => ({ v: 1, committed: null, trial: null, highest: 0, history: [] });

const remember = (history: RemoteOutcome[], outcome: RemoteOutcome) => [...history, outcome].slice(-HISTORY);

export type OfferVerdict =
  /** Not above the highest version offered: a retained message delivered again, or a replay. */
  | { kind: 'old'; state: RemoteConfigState }
  | { kind: 'refused'; state: RemoteConfigState; reason: string }
  /** A restart into the trial is due. */
  | { kind: 'try'; state: RemoteConfigState };

/**
 * What a unit does with version `offer.version`: `check` is the schema check of the resulting
 * configuration (remoteConfig), throwing a ConfigError. A refused or old version changes nothing
 * the unit runs.
 */
export function offer(state: RemoteConfigState, next: RemoteSettings, now: number, check: (s: RemoteSettings) => void): OfferVerdict {
  if (next.version <= state.highest) return { kind: 'old', state };
  try {
    check(next);
  } catch (err) {
    const reason = err instanceof ConfigError ? err.problems.join('; ') : (err as Error).message;
    return {
      kind: 'refused',
      reason,
      state: { ...state, highest: next.version, history: remember(state.history, { version: next.version, outcome: 'refused', reason, at: now }) },
    };
  }
  return { kind: 'try', state: { ...state, highest: next.version, trial: { ...next, since: now, boots: 0 } } };
}

export type BootPlan =
  | { kind: 'run'; settings: RemoteSettings | null; trial: boolean; state: RemoteConfigState }
  /** The trial failed to pass the gate over MAX_TRIAL_BOOTS starts: run the committed settings. */
  | { kind: 'rolledBack'; settings: RemoteSettings | null; state: RemoteConfigState; reason: string };

/** At every start: which settings to run, counting the starts of a trial. */
export function boot(state: RemoteConfigState, now: number): BootPlan {
  const trial = state.trial;
  if (!trial) return { kind: 'run', settings: state.committed, trial: false, state };
  if (trial.boots >= MAX_TRIAL_BOOTS) return rollBack(state, `started ${trial.boots} times without passing the health gate`, now);
  return { kind: 'run', settings: trial, trial: true, state: { ...state, trial: { ...trial, boots: trial.boots + 1 } } };
}

/**
 * What a status says of it (the status's config.remote): the version in effect, on trial or
 * committed, the unit's own keys it overrides (`overrides`, overriddenKeys) and the last outcome.
 */
export function remoteStatus(
  state: RemoteConfigState, trial: number | null, overrides: readonly string[] = [],
): { version: number | null; state: 'none' | 'committed' | 'trial'; overrides?: string[]; last: RemoteOutcome | null } {
  const version = trial ?? state.committed?.version ?? null;
  return {
    version, state: trial !== null ? 'trial' : version !== null ? 'committed' : 'none', ...(version !== null ? { overrides: [...overrides] } : {}), last: state.history.at(-1) ?? null,
  };
}

/** The trial passed the gate: it is what the unit returns to from now on. */
export function commit(state: RemoteConfigState, now: number): RemoteConfigState {
  const trial = state.trial;
  if (!trial) return state;
  return { ...state, committed: { version: trial.version, settings: trial.settings }, trial: null, history: remember(state.history, { version: trial.version, outcome: 'applied', at: now }) };
}

/** The settings in effect no longer hold over the file (a technician's edit): the file alone from now on. */
export function setAside(state: RemoteConfigState, settings: RemoteSettings, reason: string, now: number): RemoteConfigState {
  return { ...state, committed: null, trial: null, history: remember(state.history, { version: settings.version, outcome: 'rolledBack', reason, at: now }) };
}

/** The trial broke the unit: back to the committed settings, the version never tried again. */
export function rollBack(state: RemoteConfigState, reason: string, now: number): Extract<BootPlan, { kind: 'rolledBack' }> {
  const trial = state.trial;
  const history = trial ? remember(state.history, { version: trial.version, outcome: 'rolledBack', reason, at: now }) : state.history;
  return { kind: 'rolledBack', settings: state.committed, reason, state: { ...state, trial: null, history } };
}
