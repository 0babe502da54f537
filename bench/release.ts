// What a release costs a unit (issue 27): its size, and the unit's side of an update with the
// download excluded, on this machine: the SHA-256 check of the tarball the signed manifest names,
// the manifest's signature, unpacking beside the running release, flushing it to the disk and
// renaming it into place, writing the trial down and moving `current` (the same calls as
// daemon/updater.ts). The restart and the health gate are the daemon's start, measured elsewhere.
// Prints one JSON object.
//   node dist/bench/release.js [rounds]
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beginTrial, emptySlotState, openManifest } from '../core/release/index.js';
import { loadSeedFile, signingKeyFromSeed } from '../core/trust/index.js';
import { pointLink, writeSlotState } from '../daemon/index.js';
import { sha256File } from '../daemon/release-download.js';
import { unpackRelease } from '../daemon/updater.js';

const ROUNDS = Number(process.argv[2] ?? 5);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'vgw-bench-release-'));
const out = join(dir, 'out');
const t0 = Date.now();
const built = spawnSync('bash', [join(ROOT, 'packaging/release.sh')], { cwd: ROOT, env: { ...process.env, RELEASE_DIR: out }, encoding: 'utf8' });
if (built.status !== 0) throw new Error(`release.sh failed: ${built.stderr}`);
const buildS = (Date.now() - t0) / 1000;
const signed = JSON.parse(built.stdout) as { version: string; artifact: { file: string; bytes: number } };
const tarball = join(out, signed.artifact.file);
const releaseBytes = statSync(tarball).size === signed.artifact.bytes ? signed.artifact.bytes : -1;
const manifestBytes = readFileSync(tarball.replace(/\.tar\.gz$/, '.manifest.cose'));
const releaseKey = signingKeyFromSeed(loadSeedFile(join(out, 'dev-release.key'), 'release key file', 'vgw release key')).publicKey;

const times: number[] = [];
let unpackedBytes = 0;
for (let round = 0; round < ROUNDS; round++) {
  const root = join(dir, `root${round}`);
  mkdirSync(join(root, 'releases'), { recursive: true });
  const start = process.hrtime.bigint();
  const opened = openManifest(manifestBytes, [releaseKey]);
  if (!opened.ok) throw new Error(opened.reason);
  if ((await sha256File(tarball)) !== opened.manifest.artifact.sha256) throw new Error('hash mismatch');
  await unpackRelease(root, opened.manifest, tarball, manifestBytes);
  writeSlotState(root, beginTrial(emptySlotState(null), opened.manifest.version, Date.now()));
  pointLink(root, 'current', opened.manifest.version);
  times.push(Number(process.hrtime.bigint() - start) / 1e9);
  if (round === 0) unpackedBytes = Number(spawnSync('du', ['-sb', join(root, 'releases', opened.manifest.version)], { encoding: 'utf8' }).stdout.split('\t')[0]);
  rmSync(root, { recursive: true, force: true });
}
rmSync(dir, { recursive: true, force: true });
times.sort((a, b) => a - b);

process.stdout.write(JSON.stringify({
  release_bytes: releaseBytes,
  release_unpacked_bytes: unpackedBytes,
  release_build_s: Math.round(buildS * 10) / 10,
  update_install_s: Math.round(times[Math.floor(times.length / 2)] * 100) / 100,
}) + '\n');
