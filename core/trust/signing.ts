// The gateway's Ed25519 signing key: how batches are signed and verified.
import { createPrivateKey, createPublicKey, KeyObject, randomBytes, sign, verify } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';

/**
 * PKCS#8 header of a raw Ed25519 seed. Public keys go in and out as JWK; a private key cannot:
 * Node 20's JWK import of an OKP private key needs its public half (`x`), which the seed alone
 * does not give.
 */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export class TrustError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrustError';
  }
}

export interface SigningKey {
  privateKey: KeyObject;
  /** Raw 32-byte public key, as registration records carry it (hex). */
  publicKey: Buffer;
}

export function signingKeyFromSeed(seed: Uint8Array): SigningKey {
  if (seed.length !== 32) throw new TrustError('an Ed25519 seed is 32 bytes');
  const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  return { privateKey, publicKey: Buffer.from(jwk.x!, 'base64url') };
}

export function newSigningSeed(): Buffer {
  return randomBytes(32);
}

export function publicKeyObject(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new TrustError('an Ed25519 public key is 32 bytes');
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
}

export function signBytes(key: SigningKey, data: Uint8Array): Buffer {
  return sign(null, data, key.privateKey);
}

export function verifyBytes(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  try {
    return verify(null, data, publicKey, signature);
  } catch {
    return false;
  }
}

/**
 * Refuses a file others can read: a unit whose keys leak can forge its venue's batches, and
 * whoever holds a backend key can make units forget theirs. The check follows ssh: no permission
 * bits at all for group or others. `missing` says how to make the file when it is not there.
 */
export function assertPrivateFile(path: string, what: string, missing = 'run `vgw provision`'): void {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (err) {
    throw new TrustError(`${what} ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)}): check the path, or ${missing}`);
  }
  if ((mode & 0o077) !== 0) {
    throw new TrustError(
      `${what} ${path} is readable by others (mode ${(mode & 0o777).toString(8).padStart(3, '0')}): run \`chmod 600 ${path}\` and make it owned by the service user`,
    );
  }
}

/**
 * A backend key (the Ed25519 seed that signs acks, requests and temp-ID answers) from its file:
 * 64 hex digits, readable by its owner only (`vgw backend-key` makes one).
 */
export function loadBackendKeySeed(path: string): Buffer {
  return loadSeedFile(path, 'backend key file', 'vgw backend-key');
}

/** An Ed25519 seed from a file of 64 hex digits readable by its owner only; `what` and `maker` name it in errors. */
export function loadSeedFile(path: string, what: string, maker: string): Buffer {
  assertPrivateFile(path, what, `make one with \`${maker} --out ${path}\``);
  const text = readFileSync(path, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/i.test(text)) throw new TrustError(`${what} ${path}: expected 64 hex digits (an Ed25519 seed, as \`${maker}\` writes it)`);
  return Buffer.from(text, 'hex');
}

/** A new key (a backend key, a release key), written as 64 hex digits with mode 0600 (refusing to overwrite a file); returns its seed. */
export function writeNewBackendKey(path: string): Buffer {
  const seed = newSigningSeed();
  writeFileSync(path, seed.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  return seed;
}
