// libfaketime for the clock-step and power-cut tests: the wall clock moved, the monotonic clock
// real (as under NTP), and no caching so a changed setting takes effect at once.
import { existsSync } from 'node:fs';

export const FAKETIME_LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
export const haveFaketime = existsSync(FAKETIME_LIB);

/** The environment that runs a process under libfaketime with `settings` (FAKETIME, ...). */
export function fakeClockEnv(settings: Record<string, string>): Record<string, string> {
  return { LD_PRELOAD: FAKETIME_LIB, FAKETIME_DONT_FAKE_MONOTONIC: '1', FAKETIME_NO_CACHE: '1', ...settings };
}
