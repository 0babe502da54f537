// Gateways in tests are provisioned like real ones: keys from newIdentity, a 0600 secrets file
// that trusts the tests' backend key, and the registration record the collector verifies their
// batches against. The backend key is fixed, so a collector or tool in any test can sign for them.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newIdentity, RegistrationRecord, Secrets, signingKeyFromSeed, type SigningKey } from '../../core/trust/index.js';
import { CONTROL_AAD, ControlSigner, openUnitMessage, readCose, verifyCose } from '../../core/wire/index.js';

/** The backend key of the tests (a fixed seed: never a production key). */
export const TEST_BACKEND_SEED = Buffer.alloc(32, 0x42);
export const TEST_BACKEND = new ControlSigner(TEST_BACKEND_SEED);

/** The tests' backend key as a key file in `dir` (mode 0600), for configs' collector.controlKeyFile and `--control-key`. */
export function testBackendKeyFile(dir: string): string {
  const path = join(dir, 'test-backend.key');
  if (!existsSync(path)) writeFileSync(path, TEST_BACKEND_SEED.toString('hex') + '\n', { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}

export interface TestIdentity {
  secretsFile: string;
  secrets: Secrets;
  record: RegistrationRecord;
}

export function provisionTestGateway(dir: string, gateway: string, venue: string, beaconIdentityKey?: string): TestIdentity {
  const { secrets, record } = newIdentity({ gateway, venue, beacon: { exponent: 10, epochS: 0, txPowerDbm: -20 }, backendKeys: [TEST_BACKEND.key.publicKey] });
  if (beaconIdentityKey) secrets.beaconIdentityKey = beaconIdentityKey;
  const secretsFile = join(dir, `${gateway}-secrets.json`);
  writeFileSync(secretsFile, JSON.stringify(secrets), { mode: 0o600 });
  chmodSync(secretsFile, 0o600);
  return { secretsFile, secrets, record };
}

/** A request from the tests' backend to `to`, answered on `replyTo`; `over` replaces any field (a stale issuedAt, a reused nonce). */
export function signedRequest(to: { venue: string; gateway: string }, replyTo: string, body: Record<string, unknown>, over: Record<string, unknown> = {}): Buffer {
  return TEST_BACKEND.sign({
    kind: 'request', venue: to.venue, gateway: to.gateway, issuedAt: Date.now(), nonce: randomBytes(16).toString('base64url'), replyTo, ...body, ...over,
  });
}

/** A gateway's registered public key: what its statuses and answers must verify with. */
export function gatewayKeyOf(identity: { record: RegistrationRecord }): Buffer {
  return Buffer.from(identity.record.signingKey, 'hex');
}

/**
 * The JSON a gateway signed (a status, an answer to a request); with `identity`, it must verify
 * with that gateway's key. Throws on anything else: a test that expects a signed message fails.
 */
export function unitDoc<T = Record<string, unknown>>(payload: Buffer, identity?: { record: RegistrationRecord }): T {
  const opened = openUnitMessage(payload, identity ? gatewayKeyOf(identity) : null);
  if (!opened.ok) throw new Error(`not a message the gateway signed: ${opened.reason}: ${opened.detail}`);
  return opened.doc as T;
}

/** A test gateway's key, for tests that play a gateway on the broker (its statuses, its temp-ID requests). */
export function testGatewayKey(seedByte: number): SigningKey {
  return signingKeyFromSeed(Buffer.alloc(32, seedByte));
}

/** An ack from the tests' backend. */
export function signedAck(to: { venue: string; gateway: string }, acks: string[]): Buffer {
  return TEST_BACKEND.sign({ kind: 'ack', venue: to.venue, gateway: to.gateway, acks });
}

/** The batch ids of an ack the tests' backend signed (what a gateway would read); throws on anything else. */
export function ackedIds(payload: Buffer): string[] {
  const read = readCose(payload);
  if (!read.ok || !verifyCose(read.message, TEST_BACKEND.key.publicKey, CONTROL_AAD)) throw new Error('not an ack signed by the tests\' backend key');
  return (JSON.parse(read.message.payload.toString()) as { acks: string[] }).acks;
}
