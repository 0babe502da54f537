// The log level raised for a while by a signed command (docs/protocol.md, "Requests": logLevel),
// so a unit can be diagnosed from the backend without a visit; it falls back by itself, so a
// forgotten "debug" never fills an SD card. The configured level is what it falls back to.
import type { Logger } from '../core/log/index.js';
import { systemTimers, type TimerHandle, type Timers } from '../core/time/index.js';
import type { LogLevel } from '../core/wire/index.js';

export class LogLevelWindow {
  private timer: TimerHandle | null = null;

  constructor(private readonly log: Logger, private configured: string, private readonly timers: Timers = systemTimers) {}

  /** A new configured level (the backend's configuration, taken without a restart): in effect now unless a window is open. */
  setConfigured(level: string): void {
    this.configured = level;
    if (this.timer === null) this.log.level = level;
  }

  /** Sets `level` for `forMs`, replacing any window still open; returns when it falls back (unix ms). */
  raise(level: LogLevel, forMs: number): number {
    this.timers.clearTimeout(this.timer);
    this.log.level = level;
    this.log.warn({ level, forS: Math.round(forMs / 1000) }, 'log level set by a signed command');
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.log.level = this.configured;
      this.log.info({ level: this.configured }, 'log level back to the configured one');
    }, forMs);
    return this.timers.now() + forMs;
  }

  stop(): void {
    this.timers.clearTimeout(this.timer);
    this.timer = null;
  }
}
