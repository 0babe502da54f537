// `make release` (issue 27, item 1): the tarball a unit runs and its signed manifest, built from
// this tree as packaging/release.sh does it. The release holds the compiled code, the production
// dependencies only, native addons built for this machine's architecture (ELF headers read), and
// the systemd unit; extracted elsewhere it runs. `vgw release verify` takes it with the release
// key, and refuses it altered, cut short, signed by another key, for another architecture or Node
// ABI, or older than the running version unless a downgrade is asked for.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runProcess, runVgw } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-release-');
const ROOT = join(__dirname, '../..');
const ELF_MACHINE: Record<string, number> = { x64: 62, arm64: 183, arm: 40 };

/** Every native addon under `root`, with the machine its ELF header names. */
function addons(root: string): Array<{ file: string; machine: number }> {
  const found: Array<{ file: string; machine: number }> = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.node')) {
        const head = Buffer.alloc(20);
        const fd = openSync(p, 'r');
        readSync(fd, head, 0, 20, 0);
        closeSync(fd);
        found.push({ file: p.slice(root.length + 1), machine: head.subarray(0, 4).equals(Buffer.from('\x7fELF', 'latin1')) ? head.readUInt16LE(18) : -1 });
      }
    }
  };
  walk(root);
  return found;
}

describe('make release', () => {
  it('builds a signed tarball of what a unit runs, which verify takes and refuses as a unit would', async () => {
    const out = join(dir, 'out');
    const key = join(dir, 'release.key');
    expect((await runVgw(['release', 'key', '--out', key])).status).toBe(0);
    const publicKey = (JSON.parse((await runVgw(['release', 'key', '--show', key])).stdout) as { publicKey: string }).publicKey;
    const built = await runProcess('bash', [join(ROOT, 'packaging/release.sh')], { cwd: ROOT, env: { ...process.env, RELEASE_DIR: out, RELEASE_KEY: key }, timeoutMs: 240_000 });
    expect(built.stderr).toBe('');
    expect(built.status).toBe(0);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; devDependencies: Record<string, string> };
    const name = `venue-gateway-${pkg.version}-linux-${process.arch}`;
    const tarball = join(out, `${name}.tar.gz`);
    const manifest = join(out, `${name}.manifest.cose`);
    const signed = JSON.parse(built.stdout) as { version: string; commit: string; arch: string; nodeAbi: string; artifact: { bytes: number } };
    expect(signed).toMatchObject({ version: pkg.version, arch: process.arch, nodeAbi: process.versions.modules, artifact: { bytes: statSync(tarball).size } });
    expect(signed.commit).toBe(execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim());

    // what is inside: the code, the production dependencies only, addons for this machine, the unit
    const root = join(dir, 'slot');
    mkdirSync(root);
    execFileSync('tar', ['-xzf', tarball, '-C', root]);
    const slot = join(root, `venue-gateway-${pkg.version}`);
    expect(existsSync(join(slot, 'dist/cli/main.js'))).toBe(true);
    expect(existsSync(join(slot, 'provisioning/venue-gateway.service'))).toBe(true);
    for (const dep of Object.keys(pkg.dependencies)) expect(existsSync(join(slot, 'node_modules', dep)), dep).toBe(true);
    for (const dev of ['vitest', 'typescript', 'eslint']) expect(existsSync(join(slot, 'node_modules', dev)), dev).toBe(false);
    const native = addons(join(slot, 'node_modules'));
    expect(native.map((a) => a.file)).toEqual(expect.arrayContaining([expect.stringMatching(/better-sqlite3\/build\/Release\/better_sqlite3\.node$/)]));
    expect(native.filter((a) => a.machine !== ELF_MACHINE[process.arch])).toEqual([]);
    // extracted elsewhere, it runs: its own code and dependencies, and it knows its commit
    const version = await runProcess(process.execPath, [join(slot, 'dist/cli/main.js'), '--version'], { cwd: root });
    expect(version.stdout).toContain(pkg.version);
    expect(version.stdout).toContain(signed.commit.slice(0, 7));
    const decoded = await runProcess(process.execPath, [join(slot, 'dist/cli/main.js'), 'config', 'check', '--help'], { cwd: root });
    expect(decoded.status).toBe(0);
    // and the native addons a unit loads on Linux load from the slot: SQLite answers, the HCI socket and unix-dgram open
    // (noble's and bleno's own .node files are their macOS and Windows bindings, never loaded on Linux)
    const loads = await runProcess(process.execPath, ['-e', `
      const req = require('node:module').createRequire(${JSON.stringify(join(slot, 'package.json'))});
      const db = new (req('better-sqlite3'))(':memory:');
      const resolved = ['better-sqlite3', 'unix-dgram', '@abandonware/bluetooth-hci-socket'].map((p) => req.resolve(p));
      console.log(JSON.stringify({ sqlite: db.prepare('select sqlite_version() as v').get().v, hci: typeof req('@abandonware/bluetooth-hci-socket'), dgram: typeof req('unix-dgram').createSocket, resolved }));
    `], { cwd: root });
    expect(loads.stderr).toBe('');
    const loaded = JSON.parse(loads.stdout) as { sqlite: string; hci: string; dgram: string; resolved: string[] };
    expect(loaded).toMatchObject({ sqlite: expect.stringMatching(/^3\./), hci: 'function', dgram: 'function' });
    for (const r of loaded.resolved) expect(r.startsWith(slot)).toBe(true);

    // verify: taken with the key; refused altered, cut short, by another key, for another unit, or older
    const verify = (args: string[], artifact = tarball) => runVgw(['release', 'verify', '--artifact', artifact, '--manifest', manifest, ...args]);
    const ok = await verify(['--release-key', publicKey]);
    expect([ok.status, ok.stderr]).toEqual([0, '']);
    expect(JSON.parse(ok.stdout)).toMatchObject({ version: pkg.version, arch: process.arch });
    const bytes = readFileSync(tarball);
    const altered = Buffer.from(bytes);
    altered[altered.length >> 1] ^= 1;
    writeFileSync(join(dir, 'altered.tar.gz'), altered);
    writeFileSync(join(dir, 'short.tar.gz'), bytes.subarray(0, bytes.length - 100));
    const other = await runVgw(['release', 'key', '--out', join(dir, 'other.key')]);
    const refusals: Array<[string[], string, RegExp]> = [
      [['--release-key', publicKey], join(dir, 'altered.tar.gz'), /^vgw: release refused: artifact\.sha256: the tarball is not the one the manifest names/],
      [['--release-key', publicKey], join(dir, 'short.tar.gz'), /^vgw: release refused: artifact\.bytes: /],
      [['--release-key', (JSON.parse(other.stdout) as { publicKey: string }).publicKey], tarball, /^vgw: release refused: manifest: signed by key [0-9a-f]{16}, not a release key this unit trusts/],
      [['--release-key', publicKey, '--arch', process.arch === 'arm64' ? 'x64' : 'arm64'], tarball, /^vgw: release refused: arch: the release is for linux-/],
      [['--release-key', publicKey, '--node-abi', '127'], tarball, process.versions.modules === '127' ? /^$/ : /^vgw: release refused: nodeAbi: the release's native addons are for Node ABI /],
      [['--release-key', publicKey, '--running', '99.0.0'], tarball, /^vgw: release refused: version: .* is older than the running 99\.0\.0/],
    ];
    for (const [args, artifact, message] of refusals) {
      const r = await verify(args, artifact);
      expect([r.status, r.stderr], args.join(' ')).toEqual([1, expect.stringMatching(message)]);
    }
    expect((await verify(['--release-key', publicKey, '--running', '99.0.0', '--downgrade'])).status).toBe(0);
    // the manifest's signature is the release key's alone: the same bytes signed as a control message do not pass
    const forged = readFileSync(manifest);
    forged[forged.length - 1] ^= 1;
    writeFileSync(join(dir, 'forged.manifest.cose'), forged);
    const bad = await runVgw(['release', 'verify', '--artifact', tarball, '--manifest', join(dir, 'forged.manifest.cose'), '--release-key', publicKey]);
    expect([bad.status, bad.stderr]).toEqual([1, expect.stringMatching(/manifest: the signature does not verify/)]);
    // arguments named
    const noKey = await runVgw(['release', 'verify', '--artifact', tarball, '--manifest', manifest, '--release-key', 'zz']);
    expect([noKey.status, noKey.stderr]).toEqual([2, expect.stringMatching(/--release-key: "zz" is neither a key file nor Ed25519 public keys/)]);
  }, 300_000);
});
