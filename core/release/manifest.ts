// A release of the unit's software (issue 27): one tarball and a manifest that says what it is
// (version, commit, architecture, Node ABI) and what its bytes are (size, SHA-256), signed with a
// release key, which is not the control plane's key: whoever may steer units may not thereby ship
// them code. The manifest is a COSE_Sign1 message as the control messages are, with its own
// external AAD, so no other signature of the same key could pass for it. Pure: building, fetching
// and installing are elsewhere.
import { z } from 'zod';
import type { SigningKey } from '../trust/index.js';
import { keyId, readCose, signCose, verifyCose } from '../wire/cose.js';
import { RELEASE_VERSION } from '../wire/messages.js';

/** Not sent: supplied by both sides (docs/operating.md, "Releases"). */
export const RELEASE_AAD = Buffer.from('vgw-release-v1');


export const releaseManifestSchema = z.object({
  v: z.literal(1, { error: 'must be 1 (release manifest format)' }),
  name: z.literal('venue-gateway', { error: 'must be "venue-gateway"' }),
  version: z.string().regex(RELEASE_VERSION, 'must be a semantic version such as 0.2.0 or 0.2.0-rc.1'),
  commit: z.string().regex(/^[0-9a-f]{7,40}$/, 'must be a git commit (7 to 40 hex digits)'),
  /** process.arch of the units it is for: its native addons are built for it. */
  arch: z.enum(['x64', 'arm64', 'arm'], { error: 'must be x64, arm64 or arm' }),
  platform: z.literal('linux', { error: 'must be linux' }),
  /** process.versions.modules of the Node.js its native addons were built against. */
  nodeAbi: z.string().regex(/^\d+$/, 'must be a Node.js module ABI such as 115 (Node 20)'),
  artifact: z.object({
    file: z.string().regex(/^[A-Za-z0-9._-]+\.tar\.gz$/, 'must be a file name ending .tar.gz'),
    bytes: z.number().int().positive(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hex digits'),
  }).strict(),
  builtAt: z.string(),
}).strict();

export type ReleaseManifest = z.infer<typeof releaseManifestSchema>;

export function signManifest(key: SigningKey, manifest: ReleaseManifest): Buffer {
  return signCose(key, Buffer.from(JSON.stringify(releaseManifestSchema.parse(manifest))), RELEASE_AAD);
}

/** The manifest if one of `trusted` (raw Ed25519 public keys) signed it; why not otherwise. Never throws. */
export function openManifest(bytes: Uint8Array, trusted: readonly Uint8Array[]): { ok: true; manifest: ReleaseManifest } | { ok: false; reason: string } {
  const read = readCose(bytes);
  if (!read.ok) return { ok: false, reason: `manifest: not a signed manifest (${read.reason})` };
  const kid = read.message.kid;
  const key = kid ? trusted.find((k) => keyId(k).equals(kid)) : undefined;
  if (!key) return { ok: false, reason: `manifest: signed by ${kid ? `key ${kid.toString('hex')}` : 'no named key'}, not a release key this unit trusts` };
  if (!verifyCose(read.message, key, RELEASE_AAD)) return { ok: false, reason: 'manifest: the signature does not verify (altered, or signed for something else)' };
  let json: unknown;
  try {
    json = JSON.parse(read.message.payload.toString('utf8'));
  } catch {
    return { ok: false, reason: 'manifest: the signed payload is not JSON' };
  }
  const parsed = releaseManifestSchema.safeParse(json);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    return { ok: false, reason: `manifest: ${i.path.join('.') || '(top level)'}: ${i.message}` };
  }
  return { ok: true, manifest: parsed.data };
}

/** -1, 0 or 1 as semantic versions order (a pre-release before its release). */
export function compareVersions(a: string, b: string): number {
  const split = (v: string) => {
    const [core, pre] = v.split(/-(.*)/s, 2);
    return { nums: core.split('.').map(Number), pre: pre ?? null };
  };
  const x = split(a);
  const y = split(b);
  for (let i = 0; i < 3; i++) if (x.nums[i] !== y.nums[i]) return x.nums[i] < y.nums[i] ? -1 : 1;
  if (x.pre === y.pre) return 0;
  if (x.pre === null) return 1;
  if (y.pre === null) return -1;
  return x.pre < y.pre ? -1 : 1;
}

/**
 * Why this unit must not install the release (null: it may): another architecture or Node ABI
 * cannot load its native addons; an older version only when a downgrade was asked for.
 */
export function releaseRefusal(manifest: ReleaseManifest, unit: { arch: string; nodeAbi: string; version: string }, downgrade = false): string | null {
  if (manifest.platform !== 'linux' || manifest.arch !== unit.arch) return `arch: the release is for ${manifest.platform}-${manifest.arch}, this unit is linux-${unit.arch}`;
  if (manifest.nodeAbi !== unit.nodeAbi) return `nodeAbi: the release's native addons are for Node ABI ${manifest.nodeAbi}, this unit runs ${unit.nodeAbi}`;
  const order = compareVersions(manifest.version, unit.version);
  if (order < 0 && !downgrade) return `version: ${manifest.version} is older than the running ${unit.version} (say downgrade to install it)`;
  return null;
}
