// Which software a unit runs: the package's version, and the commit it was built from, which
// `make build` writes to dist/build-info.json (git is on the build machine, not on the unit).
// Every status carries both, so the fleet view shows what runs where.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SoftwareVersion {
  /** package.json's version. */
  version: string;
  /** The commit built (12 hex digits, `-dirty` when the tree had changes), or `unknown`. */
  commit: string;
}

let cached: SoftwareVersion | null = null;

/** The project's root: the nearest directory above this file with a package.json. */
export function projectRoot(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

function readJson(path: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export function softwareVersion(): SoftwareVersion {
  if (cached) return cached;
  const root = projectRoot();
  const pkg = root ? readJson(join(root, 'package.json')) : null;
  const build = root ? readJson(join(root, 'dist', 'build-info.json')) : null;
  cached = {
    version: typeof pkg?.version === 'string' ? pkg.version : 'unknown',
    commit: typeof build?.commit === 'string' && /^[0-9a-f]{7,40}(-dirty)?$/.test(build.commit) ? build.commit : 'unknown',
  };
  return cached;
}
