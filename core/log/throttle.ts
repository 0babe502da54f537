// Floods (a thousand bogus acks a second) must not become a thousand log lines on an SD card:
// the first warning of a kind in an interval is logged, the rest are counted and summed up in
// one line when the interval ends.
import type { Logger } from 'pino';

interface Window {
  startedAt: number;
  suppressed: number;
  msg: string;
}

export class WarningThrottle {
  private readonly windows = new Map<string, Window>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly log: Logger, private readonly intervalMs = 60_000, private readonly now: () => number = Date.now) {}

  warn(kind: string, fields: Record<string, unknown>, msg: string): void {
    const now = this.now();
    const w = this.windows.get(kind);
    if (w !== undefined && now - w.startedAt < this.intervalMs) {
      w.suppressed++;
      this.arm();
      return;
    }
    if (w !== undefined) this.summarise(kind, w);
    this.windows.set(kind, { startedAt: now, suppressed: 0, msg });
    this.log.warn({ ...fields, kind }, msg);
  }

  /** Logs the counts of what was held back (also called when the interval ends). */
  flush(): void {
    const now = this.now();
    for (const [kind, w] of this.windows) {
      if (now - w.startedAt < this.intervalMs) continue;
      this.summarise(kind, w);
      this.windows.delete(kind);
    }
    if (this.windows.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  stop(): void {
    for (const [kind, w] of this.windows) this.summarise(kind, w);
    this.windows.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private summarise(kind: string, w: Window): void {
    if (w.suppressed > 0) this.log.warn({ kind, repeated: w.suppressed, seconds: Math.round(this.intervalMs / 1000) }, `${w.msg} (repeated ${w.suppressed} more times)`);
    w.suppressed = 0;
  }

  private arm(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }
}
