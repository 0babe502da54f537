// A test that needs a Debian package `make system-deps` installs fails when it is missing: it never
// skips, so a machine that missed a step cannot pass by running less (the few legitimate skips are
// listed in skips.ts and reported at the end of the run).
import { spawnSync } from 'node:child_process';

/** Throws, naming the package and the command that installs it, when `present` is false. */
export function requirePackage(present: boolean, what: string, debianPackage: string): void {
  if (!present) throw new Error(`${what} is missing: \`make system-deps\` installs it (Debian package ${debianPackage})`);
}

/** Whether `command` is on PATH. */
export function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
}
