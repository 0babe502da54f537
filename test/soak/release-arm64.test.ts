// `make soak` (not part of `make test`: cross-compiling SQLite alone takes a minute and a half):
// `make release RELEASE_ARCH=arm64` on this x64 machine (issue 27, item 1), the native addons
// cross-compiled with Debian's crossbuild-essential-arm64 and node-gyp --arch. Every addon in the
// tarball is an aarch64 ELF, the same addons as a release for this machine has, and `vgw release
// verify` takes it for an arm64 unit and refuses it for this one.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ELF_MACHINE, nativeAddons } from '../harness/elf.js';
import { runProcess, runVgw } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-release-arm64-');
const ROOT = resolve(__dirname, '../..');

describe('a release for arm64, cross-compiled here', () => {
  it('holds only aarch64 addons, the same ones a release for this machine holds, and verifies for an arm64 unit only', { timeout: 900_000 }, async () => {
    const key = join(dir, 'release.key');
    expect((await runVgw(['release', 'key', '--out', key])).status).toBe(0);
    const built = new Map<string, Map<string, number>>();
    for (const arch of ['arm64', process.arch]) {
      const out = join(dir, arch);
      const r = await runProcess('bash', [join(ROOT, 'packaging/release.sh')], { cwd: ROOT, env: { RELEASE_DIR: out, RELEASE_KEY: key, RELEASE_ARCH: arch }, timeoutMs: 600_000 });
      expect(r.status, r.stderr).toBe(0);
      const manifest = JSON.parse(r.stdout) as { arch: string; nodeAbi: string; artifact: { file: string } };
      expect(manifest).toMatchObject({ arch, nodeAbi: process.versions.modules });
      const unpacked = join(dir, `unpacked-${arch}`);
      mkdirSync(unpacked);
      execFileSync('tar', ['-xzf', join(out, manifest.artifact.file), '-C', unpacked]);
      built.set(arch, nativeAddons(unpacked));
      const verify = (unitArch: string) => runVgw(['release', 'verify', '--artifact', join(out, manifest.artifact.file), '--manifest', join(out, manifest.artifact.file.replace(/\.tar\.gz$/, '.manifest.cose')), '--release-key', key, '--arch', unitArch]);
      expect((await verify(arch)).status).toBe(0);
      const other = await verify(arch === 'arm64' ? 'x64' : 'arm64');
      expect([other.status, other.stderr]).toEqual([1, expect.stringMatching(/^vgw: release refused: arch: the release is for linux-/)]);
    }
    const arm = built.get('arm64')!;
    const here = built.get(process.arch)!;
    expect([...arm.values()].every((machine) => machine === ELF_MACHINE.arm64), JSON.stringify([...arm])).toBe(true);
    expect(arm.size).toBeGreaterThanOrEqual(5); // better-sqlite3, unix-dgram, the HCI socket (twice), noble, bleno, the usb and serialport prebuilds
    // the same addons, by the folder they sit in (prebuilds name their files by platform; cbor-x's accelerator is left out for arm64)
    const normalise = (files: Iterable<string>) => [...new Set([...files].map((f) => dirname(f).replace(/linux-(x64|arm64)/g, 'linux-ARCH')).filter((f) => !f.includes('@cbor-extract/')))].sort();
    expect(normalise(arm.keys())).toEqual(normalise(here.keys()));
  });
});
