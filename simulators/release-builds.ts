// Releases made from one `make release` build as a developer's next builds would differ: another
// version, perhaps a change in the code, repackaged and signed with a release key. For the tests
// and benchmarks that take units through updates (a good release, one that crashes at start, one
// signed by a key no unit trusts) without compiling the project again for each.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ReleaseManifest, signManifest } from '../core/release/index.js';
import { loadSeedFile, signingKeyFromSeed } from '../core/trust/index.js';

export const releaseTarball = (version: string, arch = process.arch) => `venue-gateway-${version}-linux-${arch}.tar.gz`;
export const releaseManifest = (version: string, arch = process.arch) => `venue-gateway-${version}-linux-${arch}.manifest.cose`;

/**
 * Writes `version`'s tarball and signed manifest into `out`, from `from`'s (both in `out`): its
 * folder renamed, package.json's version changed, then `change` on the unpacked tree. gzip -1:
 * signed all the same, and quicker than make release's -9.
 */
export function deriveRelease(o: { out: string; work: string; from: string; version: string; keyFile: string; change?: (slot: string) => void }): ReleaseManifest {
  const work = join(o.work, `derive-${o.version}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  execFileSync('tar', ['-xzf', join(o.out, releaseTarball(o.from)), '-C', work]);
  const slot = join(work, `venue-gateway-${o.version}`);
  renameSync(join(work, `venue-gateway-${o.from}`), slot);
  const pkg = JSON.parse(readFileSync(join(slot, 'package.json'), 'utf8')) as { version: string };
  writeFileSync(join(slot, 'package.json'), JSON.stringify({ ...pkg, version: o.version }, null, 2));
  o.change?.(slot);
  const file = releaseTarball(o.version);
  execFileSync('sh', ['-c', 'tar -cf - -C "$1" "$2" | gzip -1 > "$3"', 'sh', work, `venue-gateway-${o.version}`, join(o.out, file)]);
  rmSync(work, { recursive: true, force: true });
  const bytes = readFileSync(join(o.out, file));
  const manifest: ReleaseManifest = {
    v: 1, name: 'venue-gateway', version: o.version, commit: 'abcdef123456', arch: process.arch as ReleaseManifest['arch'], platform: 'linux', nodeAbi: process.versions.modules,
    artifact: { file, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }, builtAt: new Date().toISOString(),
  };
  const key = signingKeyFromSeed(loadSeedFile(o.keyFile, 'release key file', 'vgw release key'));
  writeFileSync(join(o.out, releaseManifest(o.version)), signManifest(key, manifest));
  return manifest;
}

/** A release whose `vgw run` crashes at start (its other commands, the guard among them, still run). */
export function crashAtStart(slot: string): void {
  const main = join(slot, 'dist/cli/main.js');
  writeFileSync(main, readFileSync(main, 'utf8').replace('\nimport ', "\nif (process.argv[2] === 'run') { console.error('crashing at start'); process.exit(1); }\nimport "));
}
