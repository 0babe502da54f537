// What the backend tells a unit (acks, requests, temp-ID answers), signed: a COSE_Sign1 envelope
// (cose.ts) around the message as JSON, made with a backend key the unit trusts, naming the unit
// it is meant for. How each kind is kept fresh (docs/protocol.md, "Control messages"):
// - an ack names batch ids the unit made itself: a replayed ack says again what is true, so it
//   needs no clock (a unit without a real-time clock must still be able to forget what is stored);
// - a temp-ID answer echoes the id of the unit's own outstanding request: fresh by construction;
// - a request carries `issuedAt` and a random `nonce`: accepted within `maxSkewMs` of the unit's
//   clock, each nonce once (a window of nonces, not a counter, because several collectors and
//   tools send requests and share no counter);
// - a configuration is retained, so a unit offline for a month still gets it: no clock window, but
//   a version the backend raises with each change; a unit takes only a version above every one it
//   was offered (core/config/remote.ts), so an old one replayed changes nothing.
import { z } from 'zod';
import { NAME_PATTERN } from '../identifiers/index.js';
import { signingKeyFromSeed, type SigningKey } from '../trust/index.js';
import { keyId, readCose, signCose, verifyCose } from './cose.js';
import { WIRE_SCHEMA_VERSION } from './codec.js';
import { ackSchema, certificateResponseSchema, requestSchema, tempIdsResponseSchema } from './messages.js';

/** Not sent: supplied by both sides, so a COSE signature the key made for anything else never verifies here. */
export const CONTROL_AAD = Buffer.from('vgw-control-v3');

export type ControlKind = 'ack' | 'request' | 'tempIds' | 'config' | 'certificate' | 'trust' | 'signingKey';

/** Why a unit refused a control message: the keys of `counters.control.refused`. */
export const CONTROL_REFUSALS = ['malformed', 'unsigned', 'unknownKey', 'badSignature', 'invalid', 'wrongKind', 'wrongGateway', 'stale', 'replayed', 'badReplyTo'] as const;
export type ControlRefusal = (typeof CONTROL_REFUSALS)[number];

/** A backend public key a unit trusts, with the id COSE names it by. */
export interface TrustedKey {
  publicKey: Buffer;
  kid: Buffer;
}

export function trustedKey(publicKey: Buffer): TrustedKey {
  return { publicKey, kid: keyId(publicKey) };
}

const binding = { v: z.literal(WIRE_SCHEMA_VERSION, { error: `must be ${WIRE_SCHEMA_VERSION} (protocol version ${WIRE_SCHEMA_VERSION}, docs/protocol.md)` }), venue: z.string().regex(NAME_PATTERN), gateway: z.string().regex(NAME_PATTERN) };

export const controlAckSchema = ackSchema.extend({ ...binding, kind: z.literal('ack') });
export type ControlAck = z.infer<typeof controlAckSchema>;

const requestBinding = z.object({
  ...binding,
  kind: z.literal('request'),
  issuedAt: z.number({ error: 'expected unix milliseconds' }).int('must be whole unix milliseconds').nonnegative(),
  nonce: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, 'must be 16–64 characters of base64url (at least 96 random bits)'),
  replyTo: z.string().min(1).regex(/^[^#+]+$/, 'must be a topic without wildcards'),
});
export const controlRequestSchema = z.intersection(requestBinding, requestSchema);
export type ControlRequest = z.infer<typeof controlRequestSchema>;

export const controlTempIdsSchema = z.intersection(z.object({ ...binding, kind: z.literal('tempIds') }), tempIdsResponseSchema);
export type ControlTempIds = z.infer<typeof controlTempIdsSchema>;

/** The backend's settings for one unit (its layers already merged), on `<base>/config`, retained. */
export const controlConfigSchema = z.object({
  ...binding,
  kind: z.literal('config'),
  version: z.number({ error: 'expected a whole number' }).int('must be a whole number').positive('must be 1 or more'),
  issuedAt: z.number({ error: 'expected unix milliseconds' }).int('must be whole unix milliseconds').nonnegative(),
  settings: z.record(z.string(), z.unknown(), { error: 'expected an object of config keys (vgw config docs)' }),
  /** What the settings were merged from, for people: fleet defaults, a group, the unit's own. */
  layers: z.array(z.object({ layer: z.enum(['fleet', 'group', 'gateway']), name: z.string().max(100).optional(), version: z.number().int().nonnegative() }).strict()).max(8).optional(),
});
export type ControlConfig = z.infer<typeof controlConfigSchema>;

/** A TLS client certificate for the unit, answering its own request (`id`): fresh by construction, as a temp-ID answer. */
export const controlCertificateSchema = z.intersection(z.object({ ...binding, kind: z.literal('certificate') }), certificateResponseSchema);
export type ControlCertificate = z.infer<typeof controlCertificateSchema>;

/**
 * The backend keys the unit is to trust from now on (1 to 8, raw Ed25519 public keys in hex), on
 * `<base>/trust`, retained; versioned as a configuration is, and kept only when the set includes
 * the key that signed it (core/trust/backend-keys.ts).
 */
export const controlTrustSchema = z.object({
  ...binding,
  kind: z.literal('trust'),
  version: z.number({ error: 'expected a whole number' }).int('must be a whole number').positive('must be 1 or more'),
  issuedAt: z.number({ error: 'expected unix milliseconds' }).int('must be whole unix milliseconds').nonnegative(),
  keys: z.array(z.string().regex(/^[0-9a-f]{64}$/, 'must be an Ed25519 public key: 64 lowercase hex digits')).min(1, 'at least one key').max(8, 'at most 8 keys'),
});
export type ControlTrust = z.infer<typeof controlTrustSchema>;

/**
 * The unit's signing key, on `<base>/key`, retained; versioned by rotation (the unit's first key is
 * rotation 0). Without `key` it is an order: make the key of rotation `version` and ask for it
 * (`<base>/key/req`). With `key` the backend has registered that key as the successor of `previous`
 * (both raw Ed25519 public keys in hex): sign with it from now on. With `error` it refused the
 * unit's request for that rotation. An old one replayed changes nothing: a unit acts only on a
 * version above its own, and switches only to the key it made for it.
 */
export const controlSigningKeySchema = z.object({
  ...binding,
  kind: z.literal('signingKey'),
  version: z.number({ error: 'expected a whole number' }).int('must be a whole number').positive('must be 1 or more'),
  issuedAt: z.number({ error: 'expected unix milliseconds' }).int('must be whole unix milliseconds').nonnegative(),
  previous: z.string().regex(/^[0-9a-f]{64}$/, 'must be an Ed25519 public key: 64 lowercase hex digits').optional(),
  key: z.string().regex(/^[0-9a-f]{64}$/, 'must be an Ed25519 public key: 64 lowercase hex digits').optional(),
  error: z.string().min(1).max(500).optional(),
}).refine((m) => (m.key === undefined) === (m.previous === undefined), { message: 'key and previous come together (an accepted key) or not at all (an order)', path: ['key'] })
  .refine((m) => m.key === undefined || m.error === undefined, { message: 'an accepted key carries no error', path: ['error'] });
export type ControlSigningKey = z.infer<typeof controlSigningKeySchema>;

const SCHEMAS = {
  ack: controlAckSchema, request: controlRequestSchema, tempIds: controlTempIdsSchema, config: controlConfigSchema, certificate: controlCertificateSchema, trust: controlTrustSchema, signingKey: controlSigningKeySchema,
} as const;
type MessageOf<K extends ControlKind> = z.infer<(typeof SCHEMAS)[K]>;

/** The backend's signing side: its key, and the message for a unit as COSE_Sign1 bytes. */
export class ControlSigner {
  readonly key: SigningKey;
  readonly kid: Buffer;

  constructor(seed: Buffer) {
    this.key = signingKeyFromSeed(seed);
    this.kid = keyId(this.key.publicKey);
  }

  sign(message: { kind: ControlKind; venue: string; gateway: string } & Record<string, unknown>): Buffer {
    return signCose(this.key, Buffer.from(JSON.stringify({ v: WIRE_SCHEMA_VERSION, ...message })), CONTROL_AAD);
  }
}

export type Opened<K extends ControlKind> =
  | { ok: true; message: MessageOf<K>; kid: string }
  /** `signed`: the payload, when a trusted key signed it but it was refused for what it says (the backend's own mistake). */
  | { ok: false; reason: ControlRefusal; detail: string; signed?: unknown };

/**
 * Checks a control message meant for `venue`/`gateway` of kind `kind`: a COSE_Sign1 by one of
 * `trusted`, a payload that parses, of that kind, for that unit. Never throws. Freshness of a
 * request is the caller's second step (`RequestWindow`).
 */
export function openControl<K extends ControlKind>(
  bytes: Uint8Array, kind: K, to: { venue: string; gateway: string }, trusted: readonly TrustedKey[], maxBytes: number,
): Opened<K> {
  if (bytes.length > maxBytes) return { ok: false, reason: 'malformed', detail: `payload: ${bytes.length} bytes, more than the ${maxBytes} allowed` };
  const first = bytes[0];
  if (first === 0x7b || first === 0x20 || (first >= 0xa0 && first <= 0xbf)) {
    return { ok: false, reason: 'unsigned', detail: `payload: a bare ${first >= 0xa0 ? 'CBOR map' : 'JSON object'}; protocol ${WIRE_SCHEMA_VERSION} takes only messages signed by a backend key (COSE_Sign1, docs/protocol.md)` };
  }
  const read = readCose(bytes);
  if (!read.ok) return { ok: false, reason: 'malformed', detail: read.reason };
  const { kid } = read.message;
  if (!kid) return { ok: false, reason: 'unknownKey', detail: 'kid: no key id in the protected header' };
  const key = trusted.find((k) => k.kid.equals(kid));
  if (!key) return { ok: false, reason: 'unknownKey', detail: `kid: ${kid.toString('hex')} is not a backend key this unit trusts` };
  if (!verifyCose(read.message, key.publicKey, CONTROL_AAD)) return { ok: false, reason: 'badSignature', detail: `sig: does not verify with backend key ${kid.toString('hex')} (EdDSA)` };
  let json: unknown;
  try {
    json = JSON.parse(read.message.payload.toString('utf8'));
  } catch {
    return { ok: false, reason: 'invalid', detail: 'payload: the signed payload is not JSON' };
  }
  const k = (json as { kind?: unknown } | null)?.kind;
  if (k !== kind) return { ok: false, reason: 'wrongKind', detail: `kind: ${JSON.stringify(k)} where "${kind}" belongs` };
  const parsed = SCHEMAS[kind].safeParse(json);
  const message = parsed.data as MessageOf<K> | undefined;
  // The addressee first: a message for another unit is refused as that, whatever else is wrong with it.
  const addressee = json as { venue?: unknown; gateway?: unknown };
  if (addressee.venue !== to.venue || addressee.gateway !== to.gateway) {
    return { ok: false, reason: 'wrongGateway', detail: `gateway: meant for ${String(addressee.venue)}/${String(addressee.gateway)}, not ${to.venue}/${to.gateway}` };
  }
  if (!parsed.success || !message) {
    const issue = parsed.error?.issues[0];
    return { ok: false, reason: 'invalid', detail: `${issue?.path.join('.') || 'payload'}: ${issue?.message ?? 'invalid'}`, signed: json };
  }
  return { ok: true, message, kid: kid.toString('hex') };
}

/**
 * The requests a unit has accepted lately: one nonce is accepted once, within `maxSkewMs` of
 * the unit's clock either way. Its memory is bounded (the oldest nonce goes first); a nonce
 * forgotten that way is older than any request still accepted only if the window holds fewer
 * than `capacity` requests, which at the pace of a backend's requests it does.
 */
export class RequestWindow {
  private readonly seen = new Map<string, number>();

  /** `restored`: [nonce, expiry] pairs a previous run accepted (entries()), so a restart does not reopen the window. */
  constructor(private readonly maxSkewMs: number, private readonly capacity = 10_000, restored: Iterable<readonly [string, number]> = []) {
    for (const [nonce, expires] of [...restored].sort((a, b) => a[1] - b[1]).slice(-capacity)) this.seen.set(nonce, expires);
  }

  /** The nonces accepted and when each may be forgotten (unix ms), to be kept across a restart. */
  entries(): Array<[string, number]> {
    return [...this.seen];
  }

  check(request: { issuedAt: number; nonce: string }, now: number, clockSynced: boolean): { ok: true } | { ok: false; reason: 'stale' | 'replayed'; detail: string } {
    const skew = request.issuedAt - now;
    if (Math.abs(skew) > this.maxSkewMs) {
      const clock = clockSynced ? '' : " (this unit's clock is not synchronised: it may be the unit that is wrong)";
      return {
        ok: false, reason: 'stale',
        detail: `issuedAt: ${new Date(request.issuedAt).toISOString()} is ${Math.round(Math.abs(skew) / 1000)} s ${skew < 0 ? 'behind' : 'ahead of'} this unit's clock${clock}; more than the ${this.maxSkewMs / 1000} s accepted`,
      };
    }
    for (const [nonce, expires] of this.seen) {
      if (expires > now && this.seen.size < this.capacity) break;
      this.seen.delete(nonce);
    }
    if (this.seen.has(request.nonce)) return { ok: false, reason: 'replayed', detail: `nonce: ${request.nonce} was accepted already` };
    this.seen.set(request.nonce, Math.max(now, request.issuedAt) + this.maxSkewMs);
    return { ok: true };
  }
}
