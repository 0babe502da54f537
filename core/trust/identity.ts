// The secrets file a unit keeps, a new unit's identity, and the registration the backend keeps of it.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { identityKeyFromRegistration } from '../protocols/index.js';
import { hexKey } from '../identifiers/index.js';
import { newUid, UID_TEXT_PATTERN } from '../bluetrace/index.js';
import { assertPrivateFile, newSigningSeed, signingKeyFromSeed, TrustError } from './signing.js';

// ---- the secrets file -------------------------------------------------------------------


export const secretsSchema = z
  .object({
    v: z.literal(1, { error: 'must be 1 (secrets file format version)' }),
    signingKey: hexKey(32, 'the Ed25519 seed that signs batches; `vgw provision` makes it'),
    beaconIdentityKey: hexKey(16, 'the Eddystone-EID identity key').optional(),
    beaconPrivateKey: hexKey(32, 'the X25519 key used to register the beacon with a resolver').optional(),
    brokerPassword: z.string().optional(),
    /** The backend's public keys: acks, requests and temp-ID answers signed by one of them are acted on, nothing else. */
    backendKeys: z
      .array(z.object({ publicKey: hexKey(32, "a backend's Ed25519 public key (`vgw backend-key` prints it)") }).strict())
      .min(1, 'at least one: without a backend key this unit would refuse every ack; run `vgw provision --backend-key <hex>`')
      .optional(),
  })
  .strict();

export type Secrets = z.infer<typeof secretsSchema>;


export function loadSecrets(path: string): Secrets {
  assertPrivateFile(path, 'secrets file');
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new TrustError(`secrets file ${path}: not readable JSON (${(err as Error).message}): restore it or run \`vgw provision\` again`);
  }
  const parsed = secretsSchema.safeParse(json);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new TrustError(`secrets file ${path}: ${i.path.join('.') || '(top level)'}: ${i.message}`);
  }
  return parsed.data;
}

// ---- a new unit's identity --------------------------------------------------------------

export interface IdentityRequest {
  gateway: string;
  venue: string;
  beacon: { exponent: number; epochS: number; txPowerDbm: number; resolverPublicKey?: Buffer };
  brokerPassword?: string;
  /** The backend's public keys the unit will trust (at least one for `vgw run`). */
  backendKeys?: Buffer[];
  now?: Date;
}

/**
 * Fresh keys for a unit: an Ed25519 signing key, and a beacon identity key, registered per the
 * Eddystone spec (X25519 + HKDF) when the resolver's public key is given, random otherwise.
 */
export function newIdentity(req: IdentityRequest): { secrets: Secrets; record: RegistrationRecord } {
  const seed = newSigningSeed();
  const signing = signingKeyFromSeed(seed);
  const secrets: Secrets = { v: 1, signingKey: seed.toString('hex') };
  const beacon: NonNullable<RegistrationRecord['beacon']> = { exponent: req.beacon.exponent, epoch: req.beacon.epochS, txPowerDbm: req.beacon.txPowerDbm };
  if (req.beacon.resolverPublicKey) {
    const beaconPrivate = randomBytes(32);
    const reg = identityKeyFromRegistration(beaconPrivate, req.beacon.resolverPublicKey);
    secrets.beaconIdentityKey = reg.identityKey.toString('hex');
    secrets.beaconPrivateKey = beaconPrivate.toString('hex');
    beacon.publicKey = reg.beaconPublicKey.toString('hex');
    beacon.resolverPublicKey = req.beacon.resolverPublicKey.toString('hex');
  } else {
    secrets.beaconIdentityKey = randomBytes(16).toString('hex');
    beacon.identityKey = secrets.beaconIdentityKey;
  }
  if (req.brokerPassword !== undefined) secrets.brokerPassword = req.brokerPassword;
  if (req.backendKeys?.length) secrets.backendKeys = req.backendKeys.map((k) => ({ publicKey: k.toString('hex') }));
  const record: RegistrationRecord = {
    v: 1,
    gateway: req.gateway,
    venue: req.venue,
    signingKey: signing.publicKey.toString('hex'),
    beacon,
    bluetraceUid: newUid(),
    createdAt: (req.now ?? new Date()).toISOString(),
  };
  return { secrets, record };
}

// ---- registration records ---------------------------------------------------------------

export const registrationSchema = z
  .object({
    v: z.literal(1, { error: 'must be 1 (registration record version)' }),
    gateway: z.string().min(1, 'must name the gateway'),
    venue: z.string().min(1, 'must name the venue'),
    signingKey: hexKey(32, "the gateway's Ed25519 public key"),
    beacon: z
      .object({
        exponent: z.number().int().min(0).max(15),
        epoch: z.number().int().nonnegative(),
        txPowerDbm: z.number().int().optional(),
        /** Present when the key was registered by ECDH: the resolver derives the identity key. */
        publicKey: hexKey(32, "the beacon's X25519 public key").optional(),
        resolverPublicKey: hexKey(32, "the resolver's X25519 public key").optional(),
        /** Present only without a resolver key: then the record itself is secret. */
        identityKey: hexKey(16, 'the Eddystone-EID identity key').optional(),
      })
      .strict()
      .optional(),
    /** The venue's BlueTrace user id (21 bytes as base64): the backend issues its temp IDs for it. */
    bluetraceUid: z.string().regex(UID_TEXT_PATTERN, 'must be 28 base64 characters (21 bytes), as `vgw provision` makes it').optional(),
    createdAt: z.string().optional(),
    /** The groups whose configuration layers the unit takes, in order (a city, a venue type): later ones win. */
    groups: z.array(z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'a group is 1-64 letters, digits, _ . : -')).max(6, 'at most 6 groups (a configuration carries at most 8 layers)').optional(),
  })
  .strict();

export type RegistrationRecord = z.infer<typeof registrationSchema>;

/** A registry file is a JSON array of the records `vgw provision` prints. */
export function parseRegistry(json: unknown, source: string): RegistrationRecord[] {
  const list = Array.isArray(json) ? json : [json];
  return list.map((item, n) => {
    const parsed = registrationSchema.safeParse(item);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      throw new TrustError(`registry ${source}: record ${n}: ${i.path.join('.') || '(top level)'}: ${i.message}`);
    }
    return parsed.data;
  });
}

export function loadRegistry(path: string): RegistrationRecord[] {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new TrustError(`registry ${path}: cannot read it as JSON (${(err as Error).message}): it must be an array of the records \`vgw provision\` prints`);
  }
  return parseRegistry(json, path);
}
