// Time and timers passed into the concerns that keep them (the uplink's re-sends, the collector's
// group commit, the temp ID supply's checks), so they can be tested with fake time, as mqtt.js's
// get-timer lets its keepalive be. The default is the process's own, looked up at each call, so
// vitest's fake timers also replace it.

export type TimerHandle = ReturnType<typeof setTimeout>;

export interface Timers {
  /** Wall-clock unix ms. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | null): void;
  setInterval(fn: () => void, ms: number): TimerHandle;
  clearInterval(handle: TimerHandle | null): void;
}

export const systemTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => {
    if (handle !== null) clearTimeout(handle);
  },
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (handle) => {
    if (handle !== null) clearInterval(handle);
  },
};
