// docs/protocol.cddl as the tests read it: JSON payloads against a rule, and control messages,
// whose COSE_Sign1 envelope the CDDL gives only as a comment (its parser cannot read tags or
// integer keys), checked here byte by byte before their JSON payload is.
import { join } from 'node:path';
import { CONTROL_AAD, keyId, readCose, UNIT_AAD, verifyCose } from '../../core/wire/index.js';
import { decodeTyped, typedFromJson } from './cbor-typed.js';
import { CddlSchema } from './cddl.js';
import { TEST_BACKEND } from './identity.js';

export const protocolSchema = new CddlSchema(join(__dirname, '../../docs/protocol.cddl'));

export const jsonProblems = (rule: string, payload: Buffer | string): string[] =>
  protocolSchema.validate(rule, typedFromJson(JSON.parse(payload.toString())));

/**
 * Problems of a COSE_Sign1 message as docs/protocol.cddl's comment gives the envelope (tag 18;
 * protected {1: -8, 4: 8-byte kid of `publicKey`}; empty unprotected map; a 64-byte signature that
 * verifies with `publicKey` and `aad`), then of its JSON payload against `rule`.
 */
function coseProblems(rule: string, payload: Buffer, publicKey: Buffer, aad: Buffer): string[] {
  const typed = decodeTyped(payload);
  if (typed.t !== 'tag' || typed.tag !== 18n || typed.v.t !== 'array' || typed.v.v.length !== 4) return ['not COSE_Sign1_Tagged: 18([4 items])'];
  const [prot, unprot, body, sig] = typed.v.v;
  if (prot.t !== 'bstr' || body.t !== 'bstr' || sig.t !== 'bstr' || unprot.t !== 'map') return ['COSE_Sign1: protected, payload and signature are byte strings, unprotected a map'];
  if (unprot.v.length !== 0) return ['COSE_Sign1: the unprotected header is empty'];
  const header = decodeTyped(prot.v);
  const expected = { t: 'map', v: [[{ t: 'uint', v: 1n }, { t: 'nint', v: -8n }], [{ t: 'uint', v: 4n }, { t: 'bstr', v: keyId(publicKey) }]] };
  const text = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? String(x) : x));
  if (text(header) !== text(expected)) return ['COSE_Sign1: the protected header is {1: -8, 4: kid}'];
  if (sig.v.length !== 64) return ['COSE_Sign1: a 64-byte Ed25519 signature'];
  const read = readCose(payload);
  if (!read.ok || !verifyCose(read.message, publicKey, aad)) return [`COSE_Sign1: the signature does not verify with the key and "${aad.toString()}"`];
  return jsonProblems(rule, body.v);
}

/** A control message signed by the tests' backend key ("vgw-control-v3"). */
export const controlProblems = (rule: string, payload: Buffer): string[] => coseProblems(rule, payload, TEST_BACKEND.key.publicKey, CONTROL_AAD);

/** A status or answer signed by the gateway whose public key is `gatewayKey` ("vgw-unit-v3"). */
export const unitProblems = (rule: string, payload: Buffer, gatewayKey: Buffer): string[] => coseProblems(rule, payload, gatewayKey, UNIT_AAD);
