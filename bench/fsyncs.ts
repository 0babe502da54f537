// Syncs counted by strace: only fsync and fdatasync are traced (through seccomp-bpf, so the
// traced process runs at full speed otherwise), every thread and child included.
import { readFileSync, rmSync } from 'node:fs';

/** strace's arguments that run `command` and write its sync counts to `out`. */
export function straceSyncArgs(out: string, command: string[]): string[] {
  return ['-f', '--seccomp-bpf', '-c', '-e', 'trace=fsync,fdatasync', '-o', out, ...command];
}

/** The fsync and fdatasync calls in strace's summary at `out` (removed once read). */
export function countSyncs(out: string): number {
  const text = readFileSync(out, 'utf8');
  rmSync(out, { force: true });
  return [...text.matchAll(/^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(fsync|fdatasync)\s*$/gm)].reduce((n, m) => n + Number(m[1]), 0);
}
