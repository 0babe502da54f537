// `vgw release`: the release key, and signing and checking a release's manifest (docs/operating.md,
// "Releases"). `make release` builds the tarball and signs it with `vgw release sign`.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Command } from 'commander';
import { openManifest, type ReleaseManifest, releaseManifestSchema, releaseRefusal, signManifest } from '../core/release/index.js';
import { loadSeedFile, signingKeyFromSeed, writeNewBackendKey } from '../core/trust/index.js';
import { keyId } from '../core/wire/index.js';
import { EXIT, fail, UsageError } from './errors.js';

const loadReleaseKey = (path: string) => signingKeyFromSeed(loadSeedFile(path, 'release key file', 'vgw release key'));

/** --release-key: public keys as hex, comma-separated, or a key file whose public half is taken. */
function trustedReleaseKeys(value: string): Buffer[] {
  if (existsSync(value)) return [loadReleaseKey(value).publicKey];
  const keys = value.split(',').map((k) => k.trim().toLowerCase()).filter((k) => k !== '');
  const bad = keys.find((k) => !/^[0-9a-f]{64}$/.test(k));
  if (bad !== undefined || keys.length === 0) throw new UsageError(`--release-key: "${bad ?? value}" is neither a key file nor Ed25519 public keys (64 hex digits each, comma-separated)`);
  return keys.map((k) => Buffer.from(k, 'hex'));
}

function digest(file: string): { bytes: number; sha256: string } {
  return { bytes: statSync(file).size, sha256: createHash('sha256').update(readFileSync(file)).digest('hex') };
}

export function releaseCommand(): Command {
  const cmd = new Command('release')
    .description("the release key, and signing and checking a release's manifest (what `make release` builds)")
    .addHelpText('after', '\nExample:\n  vgw release verify --artifact venue-gateway-0.2.0-linux-arm64.tar.gz --manifest venue-gateway-0.2.0-linux-arm64.manifest.cose --release-key 3f2a…');
  cmd.command('key')
    .description('make a release key (mode 0600; not the backend key: steering units must not let anyone ship them code), or show the public key of one')
    .option('--out <file>', 'write a new key here (refuses to overwrite)')
    .option('--show <file>', 'print the public key of an existing key file')
    .addHelpText('after', '\nKeep the key file off the backend; its public key is what units are to trust for releases.\nExample:\n  vgw release key --out /secure/release.key')
    .action((opts: { out?: string; show?: string }) => {
      try {
        if (!!opts.out === !!opts.show) throw new UsageError('give one of --out <file> (a new key) or --show <file> (an existing one)');
        if (opts.out && existsSync(opts.out)) throw new UsageError(`--out: ${opts.out} exists: a release key is never overwritten (units trust it); choose another file`);
        const key = opts.out ? signingKeyFromSeed(writeNewBackendKey(opts.out)) : loadReleaseKey(opts.show!);
        process.stdout.write(JSON.stringify({ ...(opts.out ? { wrote: opts.out } : {}), publicKey: key.publicKey.toString('hex'), kid: keyId(key.publicKey).toString('hex') }) + '\n');
      } catch (err) {
        fail(err);
      }
    });
  cmd.command('sign')
    .description("write a release's signed manifest: what it is and what its bytes are")
    .requiredOption('--artifact <file>', 'the release tarball (venue-gateway-<version>-linux-<arch>.tar.gz)')
    .requiredOption('--key <file>', 'the release key file (`vgw release key`)')
    .requiredOption('--release-version <v>', 'its version (package.json)')
    .requiredOption('--commit <sha>', 'the commit it was built from')
    .requiredOption('--out <file>', 'where the manifest goes (COSE_Sign1, ends .manifest.cose)')
    .option('--arch <arch>', 'the architecture its native addons were built for', process.arch)
    .option('--node-abi <n>', 'the Node.js module ABI they were built against', process.versions.modules)
    .addHelpText('after', '\nExample:\n  vgw release sign --artifact r/venue-gateway-0.2.0-linux-x64.tar.gz --key release.key --release-version 0.2.0 --commit 1a2b3c4 --out r/venue-gateway-0.2.0-linux-x64.manifest.cose')
    .action((opts: { artifact: string; key: string; releaseVersion: string; commit: string; out: string; arch: string; nodeAbi: string }) => {
      try {
        if (!existsSync(opts.artifact)) throw new UsageError(`--artifact: ${opts.artifact} does not exist (make release builds it)`);
        const candidate = {
          v: 1, name: 'venue-gateway', version: opts.releaseVersion, commit: opts.commit.toLowerCase(), arch: opts.arch, platform: 'linux', nodeAbi: opts.nodeAbi,
          artifact: { file: basename(opts.artifact), ...digest(opts.artifact) }, builtAt: new Date().toISOString(),
        };
        const parsed = releaseManifestSchema.safeParse(candidate);
        if (!parsed.success) {
          const i = parsed.error.issues[0];
          const option = { version: '--release-version', commit: '--commit', arch: '--arch', nodeAbi: '--node-abi', artifact: '--artifact' }[String(i.path[0])] ?? String(i.path[0]);
          throw new UsageError(`${option}: ${i.message}`);
        }
        writeFileSync(opts.out, signManifest(loadReleaseKey(opts.key), parsed.data));
        process.stdout.write(JSON.stringify({ manifest: opts.out, ...parsed.data }) + '\n');
      } catch (err) {
        fail(err);
      }
    });
  cmd.command('verify')
    .description('check a release as a unit does before anything changes: the signature, the bytes, and that it is for this unit')
    .requiredOption('--artifact <file>', 'the release tarball')
    .requiredOption('--manifest <file>', 'its signed manifest')
    .requiredOption('--release-key <hex,…|file>', 'the release public keys to trust, or a release key file')
    .option('--arch <arch>', "the unit's architecture", process.arch)
    .option('--node-abi <n>', "the unit's Node.js module ABI", process.versions.modules)
    .option('--running <version>', 'the version the unit runs: an older release is refused unless --downgrade', '0.0.0')
    .option('--downgrade', 'accept an older version')
    .addHelpText('after', '\nExit codes: 0 it may be installed (prints the manifest), 1 refused (the reason names the field), 2 bad arguments.\nExample:\n  vgw release verify --artifact r/venue-gateway-0.2.0-linux-x64.tar.gz --manifest r/venue-gateway-0.2.0-linux-x64.manifest.cose --release-key release.key')
    .action((opts: { artifact: string; manifest: string; releaseKey: string; arch: string; nodeAbi: string; running: string; downgrade?: boolean }) => {
      try {
        for (const [option, file] of [['--artifact', opts.artifact], ['--manifest', opts.manifest]]) if (!existsSync(file)) throw new UsageError(`${option}: ${file} does not exist`);
        const opened = openManifest(readFileSync(opts.manifest), trustedReleaseKeys(opts.releaseKey));
        const refuse = (reason: string) => {
          process.stderr.write(`vgw: release refused: ${reason}\n`);
          process.exitCode = EXIT.failure;
        };
        if (!opened.ok) return refuse(opened.reason);
        const m: ReleaseManifest = opened.manifest;
        const got = digest(opts.artifact);
        if (got.bytes !== m.artifact.bytes) return refuse(`artifact.bytes: ${got.bytes} bytes, the manifest says ${m.artifact.bytes} (cut short or altered)`);
        if (got.sha256 !== m.artifact.sha256) return refuse('artifact.sha256: the tarball is not the one the manifest names (altered)');
        const refusal = releaseRefusal(m, { arch: opts.arch, nodeAbi: opts.nodeAbi, version: opts.running }, opts.downgrade);
        if (refusal) return refuse(refusal);
        process.stdout.write(JSON.stringify(m) + '\n');
      } catch (err) {
        fail(err);
      }
    });
  return cmd;
}
