// Native addons in a release, by the machine their ELF header names: what the release tests check
// (x64 62, arm64 183, arm 40; -1: not an ELF at all).
import { closeSync, openSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';

export const ELF_MACHINE: Record<string, number> = { x64: 62, arm64: 183, arm: 40 };

/** Every .node file under `root` (paths relative to it) with its ELF machine. */
export function nativeAddons(root: string): Map<string, number> {
  const found = new Map<string, number>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.node')) {
        const head = Buffer.alloc(20);
        const fd = openSync(p, 'r');
        readSync(fd, head, 0, 20, 0);
        closeSync(fd);
        found.set(p.slice(root.length + 1), head.readUInt32BE(0) === 0x7f454c46 ? head.readUInt16LE(18) : -1);
      }
    }
  };
  walk(root);
  return found;
}
