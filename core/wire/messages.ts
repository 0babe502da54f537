// Acks and requests: small control messages, JSON (or the same structure in CBOR).
import { decode as cborDecode } from 'cbor-x';
import { z } from 'zod';
import { ULID_PATTERN } from '../identifiers/index.js';
import { TEMPID_BATCH_SIZE, tempIdBytes } from '../bluetrace/index.js';
import { WIRE_SCHEMA_VERSION } from './codec.js';

export class MessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MessageError';
  }
}

const ulidString = z.string().regex(ULID_PATTERN, 'must be a ULID (26 characters, Crockford base32)');

/** The protocol version every message carries; the error says which one a sender must use. */
const version = z.literal(WIRE_SCHEMA_VERSION, { error: `must be ${WIRE_SCHEMA_VERSION} (protocol version ${WIRE_SCHEMA_VERSION}, docs/protocol.md)` });

export const ackSchema = z.object({ v: version, acks: z.array(ulidString).min(1).max(1000) });
export type AckMessage = z.infer<typeof ackSchema>;

const time = z.union([z.number(), z.string()], { error: 'expected unix milliseconds or an ISO-8601 time' }).transform((v, ctx) => {
  const t = typeof v === 'number' ? v : Date.parse(v);
  if (Number.isNaN(t)) {
    ctx.addIssue({ code: 'custom', message: 'must be an ISO-8601 time, e.g. "2026-11-22T08:00:00Z", or unix milliseconds' });
    return z.NEVER;
  }
  if (!Number.isSafeInteger(t)) {
    ctx.addIssue({ code: 'custom', message: 'must be whole unix milliseconds' });
    return z.NEVER;
  }
  if (t < 0) {
    ctx.addIssue({ code: 'custom', message: 'must not be before 1970-01-01 (unix milliseconds cannot be negative)' });
    return z.NEVER;
  }
  return t;
});

/** A release's version: semantic, with an optional pre-release. */
export const RELEASE_VERSION = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/;

/** The levels a logLevel command may set (the config's log.level also allows "silent"). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const requestSchema = z.discriminatedUnion('op', [
  z.object({ v: version, op: z.literal('pull'), from: time, to: time }).refine((r) => r.to > r.from, {
    message: 'must be after from',
    path: ['to'],
  }),
  z.object({ v: version, op: z.literal('status') }),
  z.object({
    v: version,
    op: z.literal('logLevel'),
    level: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }),
    forS: z.number({ error: 'expected seconds' }).int('must be whole seconds').min(1, 'must be at least 1').max(86_400, 'at most 86400 (a day): the level falls back by itself'),
  }),
  z.object({ v: version, op: z.literal('restart') }),
  z.object({ v: version, op: z.literal('doctor') }),
  z.object({
    v: version,
    op: z.literal('update'),
    manifest: z.string().max(2000, 'at most 2000 characters').regex(/^https:\/\/[^\s]+\.manifest\.cose$/, 'must be the https:// URL of a release manifest (…/venue-gateway-<version>-linux-<arch>.manifest.cose)'),
    version: z.string().regex(RELEASE_VERSION, 'must be a semantic version such as 0.2.0'),
    downgrade: z.boolean({ error: 'expected true or false' }).optional(),
  }),
]);
export type RequestMessage = z.infer<typeof requestSchema>;
/** A signed update request (docs/operating.md, "Releases"): the manifest names the tarball beside it. */
export type UpdateRequest = Extract<RequestMessage, { op: 'update' }>;

/** One check of a `doctor` answer: what `vgw doctor --json` prints on the unit. */
export interface DoctorCheck {
  check: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

/** A gateway asks the backend for its venue's BlueTrace temp IDs (on `<base>/tempids/req`). */
export const tempIdsRequestSchema = z.object({
  v: version,
  op: z.literal('tempIds', { error: 'must be "tempIds"' }),
  id: ulidString,
  count: z.number().int('must be a whole number').min(1, 'must be at least 1').max(TEMPID_BATCH_SIZE, `at most ${TEMPID_BATCH_SIZE}`),
});
export type TempIdsRequest = z.infer<typeof tempIdsRequestSchema>;

/** The most a PEM certificate or certificate request may take on the wire. */
export const MAX_PEM_BYTES = 8192;
const pem = (label: string) =>
  z.string().max(MAX_PEM_BYTES, `at most ${MAX_PEM_BYTES} characters`).regex(new RegExp(`^-----BEGIN ${label}-----\\n[A-Za-z0-9+/=\\n]+-----END ${label}-----\\n?$`), `must be one PEM ${label}`);

/**
 * A gateway asks for a new TLS client certificate (on `<base>/cert/req`): a PKCS#10 request for a
 * key it made itself, its subject's CN its gateway id; signed with its identity key, as its
 * statuses are, so the backend knows which unit asks.
 */
export const certificateRequestSchema = z.object({
  v: version,
  op: z.literal('certificate', { error: 'must be "certificate"' }),
  id: ulidString,
  csr: pem('CERTIFICATE REQUEST'),
});
export type CertificateRequest = z.infer<typeof certificateRequestSchema>;

/** The backend's answer (on `<base>/cert`): the certificate, or why there is none. */
export const certificateResponseSchema = z.union([
  z.object({ v: version, id: ulidString, certificate: pem('CERTIFICATE') }),
  z.object({ v: version, id: ulidString, error: z.string().min(1).max(500) }),
]);
export type CertificateResponse = z.infer<typeof certificateResponseSchema>;

/**
 * A gateway's new signing key (on `<base>/key/req`), asked for by the backend's order on `<base>/key`:
 * the request is signed with its current key (as its statuses are) and `pop` is the new key's
 * signature over signingKeyProofBytes(), so the backend knows the unit holds it and chose it as the
 * successor of that very key.
 */
export const signingKeyRequestSchema = z.object({
  v: version,
  op: z.literal('signingKey', { error: 'must be "signingKey"' }),
  id: ulidString,
  version: z.number({ error: 'expected a whole number' }).int('must be a whole number').positive('must be 1 or more'),
  key: z.string().regex(/^[0-9a-f]{64}$/, 'must be an Ed25519 public key: 64 lowercase hex digits'),
  pop: z.string().regex(/^[0-9a-f]{128}$/, 'must be an Ed25519 signature: 128 lowercase hex digits'),
});
export type SigningKeyRequest = z.infer<typeof signingKeyRequestSchema>;

/** What the new key signs to prove it is held, bound to the unit, the rotation and the key it succeeds. */
export function signingKeyProofBytes(venue: string, gateway: string, version: number, previous: string, key: string): Buffer {
  return Buffer.from(`vgw-signing-key-v3/${venue}/${gateway}/${version}/${previous}/${key}`);
}

const unixSeconds = z.number({ error: 'expected unix seconds' }).int('must be whole unix seconds').min(0).max(2 ** 31 - 1);
const issuedTempId = z
  .object({
    tempId: z.string().refine((t) => tempIdBytes(t) !== null, 'must be a BlueTrace temp ID: 84 characters of base64 (61 bytes)'),
    start: unixSeconds,
    expiry: unixSeconds,
  })
  .refine((t) => t.expiry > t.start, { message: 'must be after start', path: ['expiry'] });

/** The backend's answer (on `<base>/tempids`): the temp IDs, or why there are none. */
export const tempIdsResponseSchema = z.union([
  z.object({ v: version, id: ulidString, tempIds: z.array(issuedTempId).min(1).max(TEMPID_BATCH_SIZE), refreshAt: unixSeconds }),
  z.object({ v: version, id: ulidString, error: z.string().min(1) }),
]);
export type TempIdsResponse = z.infer<typeof tempIdsResponseSchema>;

/**
 * The id of a unit's request (temp IDs, a certificate) too malformed to parse, when it names one:
 * the refusal can still be matched to it.
 */
export function requestIdOf(payload: Buffer): string | null {
  const id = fieldOf(payload, 'id');
  return typeof id === 'string' && ULID_PATTERN.test(id) ? id : null;
}

/** The rotation a malformed signing-key request names, when it names one: the refusal is answered under it. */
export function requestVersionOf(payload: Buffer): number | null {
  const version = fieldOf(payload, 'version');
  return typeof version === 'number' && Number.isSafeInteger(version) && version > 0 ? version : null;
}

/** One field of a payload that is JSON at least, read without trusting the rest. */
function fieldOf(payload: Buffer, field: string): unknown {
  try {
    const v = JSON.parse(payload.toString('utf8')) as Record<string, unknown> | null;
    return typeof v === 'object' && v !== null ? v[field] : undefined;
  } catch {
    return undefined;
  }
}

/** Parses JSON (first byte "{") or CBOR, then checks it against the schema. */
export function parseMessage<T>(payload: Buffer, schema: z.ZodType<T>, maxBytes: number): T {
  if (payload.length > maxBytes) throw new MessageError(`payload: ${payload.length} bytes, more than the ${maxBytes} allowed`);
  let value: unknown;
  const first = payload.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
  try {
    value = first === 0x7b ? JSON.parse(payload.toString('utf8')) : cborDecode(payload);
  } catch {
    throw new MessageError('payload: neither JSON nor CBOR');
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new MessageError(`${issue.path.join('.') || 'payload'}: ${issue.message}`);
  }
  return result.data;
}
