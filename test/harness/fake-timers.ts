// Time that moves only when a test says so, for the concerns that take their timers in
// (core/time): the test advances it and every timer due on the way fires, in order.
import type { TimerHandle, Timers } from '../../core/time/index.js';

interface Pending {
  at: number;
  fn: () => void;
  every: number | null;
}

export class FakeTimers implements Timers {
  private t: number;
  private next = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(start: number) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, ms, null);
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, ms, Math.max(1, ms));
  }

  clearTimeout(handle: TimerHandle | null): void {
    if (handle !== null) this.pending.delete(handle as unknown as number);
  }

  clearInterval(handle: TimerHandle | null): void {
    this.clearTimeout(handle);
  }

  /** Timers waiting to fire. */
  get count(): number {
    return this.pending.size;
  }

  /** Moves time on by `ms`, firing every timer that falls due on the way, earliest first. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let due: [number, Pending] | null = null;
      for (const entry of this.pending) if (entry[1].at <= end && (due === null || entry[1].at < due[1].at)) due = entry;
      if (due === null) break;
      const [id, p] = due;
      this.t = Math.max(this.t, p.at);
      if (p.every === null) this.pending.delete(id);
      else p.at += p.every;
      p.fn();
    }
    this.t = end;
  }

  private add(fn: () => void, ms: number, every: number | null): TimerHandle {
    const id = this.next++;
    this.pending.set(id, { at: this.t + Math.max(0, ms), fn, every });
    return id as unknown as TimerHandle;
  }
}
