// What a simulated unit does with the backend's configuration: the real unit's rules (core/config/
// remote.ts: offer, trial, health gate, commit, roll back), kept in memory instead of a file, and
// a "restart" that reconnects its uplink with the settings instead of restarting a process. The
// simulated radio and store are always healthy, so the gate is the broker: connected within
// remote.healthGateS.
import {
  boot, commit, type Config, emptyRemoteState, offer, remoteConfig, remoteStatus, type RemoteConfigState, rollBack,
} from '../core/config/index.js';
import type { ControlConfig, RemoteConfigStatus } from '../core/wire/index.js';

export interface SimulatedRemoteOptions {
  /** The unit's config file, as JSON: the settings are laid over it and checked with the schema. */
  fileJson: Record<string, unknown>;
  /** Starts the unit again with `config` (the file's own when no settings apply). */
  restart: (config: Config) => Promise<void>;
  /** The status goes out now (a rollout awaits the outcome). */
  publishStatus: () => void;
  /** Connected to its broker. */
  healthy: () => boolean;
  now?: () => number;
}

export class SimulatedRemoteConfig {
  private state: RemoteConfigState = emptyRemoteState();
  private trial: number | null = null;
  private gate: NodeJS.Timeout | null = null;
  private restarting: Promise<void> = Promise.resolve();
  private readonly now: () => number;

  constructor(private readonly options: SimulatedRemoteOptions) {
    this.now = options.now ?? Date.now;
  }

  status(): RemoteConfigStatus {
    return remoteStatus(this.state, this.trial);
  }

  offered(message: ControlConfig): void {
    const verdict = offer(this.state, { version: message.version, settings: message.settings }, this.now(), (s) => void remoteConfig(this.options.fileJson, s.settings, s.version));
    if (verdict.kind === 'old') return;
    this.state = verdict.state;
    if (verdict.kind === 'refused') return this.options.publishStatus();
    this.restartOnce();
  }

  stop(): void {
    if (this.gate) clearInterval(this.gate);
    this.gate = null;
  }

  /** Reconnects with what boot() says runs now, and keeps the gate of a trial. */
  private restartOnce(): void {
    this.stop();
    this.restarting = this.restarting.then(async () => {
      const plan = boot(this.state, this.now());
      this.state = plan.state;
      const settings = plan.settings;
      this.trial = plan.kind === 'run' && plan.trial && settings ? settings.version : null;
      await this.options.restart(settings ? remoteConfig(this.options.fileJson, settings.settings, settings.version) : remoteConfig(this.options.fileJson, {}, 0));
      if (this.trial === null) return;
      const config = remoteConfig(this.options.fileJson, settings!.settings, settings!.version);
      const since = this.now();
      this.gate = setInterval(() => {
        if (this.options.healthy()) {
          this.stop();
          this.state = commit(this.state, this.now());
          this.trial = null;
          this.options.publishStatus();
        } else if (this.now() - since >= config.remote.healthGateS * 1000) {
          this.stop();
          this.state = rollBack(this.state, `not healthy within ${config.remote.healthGateS} s (broker connected)`, this.now()).state;
          this.restartOnce();
        }
      }, 250);
    });
  }
}
