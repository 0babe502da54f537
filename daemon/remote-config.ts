// The backend's configuration on the unit (docs/protocol.md, "Configuration"). A version offered
// is checked with the config schema; a good one is written down as a trial and the daemon
// restarts into it (a clean stop, exit 75, the service starts it again: every concern, bleno's
// singleton included, starts afresh). The trial must pass the health gate (broker connected, radio
// on, a store commit) within `remote.healthGateS`; then it is committed, otherwise the unit rolls
// back by itself and restarts into what it ran before. The state is one small file beside the
// database, replaced atomically: a power cut leaves the old state or the new one.
import { existsSync, readFileSync } from 'node:fs';
import {
  besideDatabase, boot, commit, type Config, emptyRemoteState, hotOnly, offer, overriddenKeys, remoteConfig, remoteStatus, type RemoteConfigState, type RemoteSettings, rollBack, setAside,
} from '../core/config/index.js';
import type { Logger } from '../core/log/index.js';
import { systemTimers, type TimerHandle, type Timers } from '../core/time/index.js';
import type { ControlConfig, RemoteConfigStatus } from '../core/wire/index.js';
import { writeFileAtomic } from './atomic-file.js';

export function remoteStatePath(config: Pick<Config, 'store'>): string {
  return besideDatabase(config, 'remote-config.json');
}

function readState(path: string): { state: RemoteConfigState; problem: string | null } {
  if (!existsSync(path)) return { state: emptyRemoteState(), problem: null };
  try {
    const state = JSON.parse(readFileSync(path, 'utf8')) as RemoteConfigState;
    if (state?.v !== 1 || typeof state.highest !== 'number' || !Array.isArray(state.history)) throw new Error('not a remote configuration state (v 1)');
    return { state, problem: null };
  } catch (err) {
    // The file alone then: a unit that starts beats one that waits for a file it cannot read.
    return { state: emptyRemoteState(), problem: (err as Error).message };
  }
}

/**
 * The configuration a start would run now, read only: what `vgw doctor` checks, so that it probes
 * the broker the unit uses, not only the one its file names. `remote`: the version laid over it.
 */
export function effectiveConfig(fileConfig: Config): { config: Config; remote: number | null; overrides: string[] } {
  const settings = boot(readState(remoteStatePath(fileConfig)).state, Date.now()).settings;
  if (!settings) return { config: fileConfig, remote: null, overrides: [] };
  try {
    return { config: remoteConfig(fileConfig, settings.settings, settings.version), remote: settings.version, overrides: overriddenKeys(fileConfig, settings.settings) };
  } catch {
    return { config: fileConfig, remote: null, overrides: [] }; // as a start would: the file alone
  }
}

/** What `vgw run` starts: the config to run, and the remote state the daemon carries on with. */
export interface RemoteStart {
  config: Config;
  state: RemoteConfigState;
  /** The version running on trial (it must pass the health gate), or null. */
  trial: number | null;
  path: string;
  fileConfig: Config;
  /** The keys the running version sets over the file's own (a technician's settings stay visible as such). */
  overrides: string[];
}

/**
 * Decides at every start which settings run over the file: the committed ones, or a trial's (its
 * start counted on disk first, so a crash loop rolls it back by itself).
 */
export function prepareRemoteStart(fileConfig: Config, log: Logger, now = Date.now()): RemoteStart {
  const path = remoteStatePath(fileConfig);
  const { state: read, problem } = readState(path);
  if (problem) log.error({ path, err: problem }, 'remote configuration state unreadable; running the config file alone until the backend offers a new version');
  const plan = boot(read, now);
  if (plan.kind === 'rolledBack') log.error({ reason: plan.reason }, 'remote configuration rolled back');
  let state = plan.state;
  // Written only when a start changes it (a trial's start counted): the database's folder may not exist yet.
  if (state !== read) writeFileAtomic(path, JSON.stringify(state));
  const settings: RemoteSettings | null = plan.settings;
  if (!settings) return { config: fileConfig, state, trial: null, path, fileConfig, overrides: [] };
  try {
    const config = remoteConfig(fileConfig, settings.settings, settings.version);
    return { config, state, trial: plan.kind === 'run' && plan.trial ? settings.version : null, path, fileConfig, overrides: overriddenKeys(fileConfig, settings.settings) };
  } catch (err) {
    // The file changed under the settings (a technician's edit): the file alone, and say so.
    const reason = `no longer valid over the config file: ${(err as Error).message}`;
    state = setAside(state, settings, reason, now);
    writeFileAtomic(path, JSON.stringify(state));
    log.error({ version: settings.version, reason }, 'remote configuration set aside');
    return { config: fileConfig, state, trial: null, path, fileConfig, overrides: [] };
  }
}

export interface RemoteConfigurationOptions {
  start: RemoteStart;
  /** How long a trial has to pass the gate. */
  healthGateMs: number;
  /** Broker connected, radio on, a store commit since the start. */
  healthy: () => boolean;
  /** A clean stop for a restart (exit 75). */
  restart: () => void;
  /** A version was applied or refused: the status says so now, not at its next interval (a rollout awaits it). */
  onOutcome?: () => void;
  /** Takes a configuration that changes only HOT_KEYS without a restart (absent: every version restarts the daemon). */
  applyHot?: (config: Config) => void;
  timers?: Timers;
  log: Logger;
}

/** The concern that takes the backend's versions and keeps the health gate of a trial. */
export class RemoteConfiguration {
  private state: RemoteConfigState;
  private trial: number | null;
  private gate: TimerHandle | null = null;
  private readonly timers: Timers;
  private restarting = false;
  /** The configuration in effect, and the keys it sets over the file (both change when a version is taken without a restart). */
  private running: Config;
  private overrides: string[];

  constructor(private readonly options: RemoteConfigurationOptions) {
    this.state = options.start.state;
    this.trial = options.start.trial;
    this.timers = options.timers ?? systemTimers;
    this.running = options.start.config;
    this.overrides = options.start.overrides;
  }

  start(): void {
    if (this.trial === null) return;
    const since = this.timers.now();
    this.options.log.warn({ version: this.trial, gateS: this.options.healthGateMs / 1000 }, 'remote configuration on trial: it must pass the health gate');
    this.gate = this.timers.setInterval(() => {
      if (this.options.healthy()) return this.passGate();
      if (this.timers.now() - since >= this.options.healthGateMs) this.failGate(`not healthy within ${this.options.healthGateMs / 1000} s (broker connected, radio on, a store commit)`);
    }, 500);
  }

  stop(): void {
    if (this.gate) this.timers.clearInterval(this.gate);
    this.gate = null;
  }

  status(): RemoteConfigStatus {
    return remoteStatus(this.state, this.trial, this.overrides);
  }

  /** A signed configuration for this unit, from the uplink. */
  offered(message: ControlConfig): void {
    const next = { version: message.version, settings: message.settings };
    const verdict = offer(this.state, next, this.timers.now(), (s) => void remoteConfig(this.options.start.fileConfig, s.settings, s.version));
    if (verdict.kind === 'old') return;
    this.save(verdict.state);
    if (verdict.kind === 'refused') {
      this.options.log.warn({ version: message.version, reason: verdict.reason }, 'remote configuration refused');
      this.options.onOutcome?.();
      return;
    }
    const taken = remoteConfig(this.options.start.fileConfig, message.settings, message.version);
    if (this.options.applyHot && this.trial === null && !this.restarting && hotOnly(this.running, taken)) {
      // On trial as after a restart (a crash now boots into it, counted), with the same health gate.
      this.trial = message.version;
      this.running = taken;
      this.overrides = overriddenKeys(this.options.start.fileConfig, message.settings);
      this.options.applyHot(taken);
      this.options.log.warn({ version: message.version }, 'remote configuration taken without a restart (it changes only log.level or uplink.statusIntervalS)');
      this.start();
      this.options.onOutcome?.();
      return;
    }
    this.options.log.warn({ version: message.version }, 'remote configuration accepted: restarting into it');
    this.restartOnce();
  }

  private passGate(): void {
    this.stop();
    this.save(commit(this.state, this.timers.now()));
    this.options.log.info({ version: this.trial }, 'remote configuration applied: it passed the health gate');
    this.trial = null;
    this.options.onOutcome?.();
  }

  private failGate(reason: string): void {
    this.stop();
    this.save(rollBack(this.state, reason, this.timers.now()).state);
    this.options.log.error({ version: this.trial, reason }, 'remote configuration rolled back: restarting into the last good one');
    this.restartOnce();
  }

  private save(state: RemoteConfigState): void {
    this.state = state;
    writeFileAtomic(this.options.start.path, JSON.stringify(state));
  }

  private restartOnce(): void {
    if (this.restarting) return;
    this.restarting = true;
    this.options.restart();
  }
}
