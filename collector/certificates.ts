// The backend's half of certificate renewal: a gateway asks on `<base>/cert/req` for a new TLS
// client certificate (a CSR for a key it made, signed with its registered identity key, checked
// before this runs); the collector holding the fleet CA checks the request (its own signature,
// and a subject that is the gateway's id and nothing else: the broker's ACL keys on the CN) and
// signs it with openssl, as provisioning/tls/certs.sh does, answering on `<base>/cert`.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertPrivateFile } from '../core/trust/index.js';
import { type CertificateResponse, certificateRequestSchema, type MessageError, parseMessage, requestIdOf, WIRE_SCHEMA_VERSION } from '../core/wire/index.js';
import type { GatewayRegistry } from './verify.js';

const MAX_REQUEST_BYTES = 16_384;
/** As certs.sh's client certificates: for TLS client authentication only. */
const CLIENT_EXTENSIONS = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n';

export interface CertificateAuthority {
  certFile: string;
  keyFile: string;
  days: number;
}

/** Checks the CA's files once, at start: the key must be private. */
export function checkCertificateAuthority(ca: CertificateAuthority): void {
  assertPrivateFile(ca.keyFile, 'collector.certificateAuthority.key');
}

function openssl(args: string[], input: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => reject(new Error(`openssl: ${e.message} (the openssl package signs certificate requests)`)));
    child.on('close', (code) => resolve({ code, out, err }));
    child.stdin.end(input);
  });
}

/** The answer to one request from `venue`/`gateway` (its signature already checked), or null when it has no id to answer to. */
export async function answerCertificateRequest(
  ca: CertificateAuthority, registry: GatewayRegistry | null, venue: string, gateway: string, payload: Buffer,
): Promise<CertificateResponse | null> {
  let request;
  try {
    request = parseMessage(payload, certificateRequestSchema, MAX_REQUEST_BYTES);
  } catch (err) {
    const id = requestIdOf(payload);
    return id ? { v: WIRE_SCHEMA_VERSION, id, error: (err as MessageError).message } : null;
  }
  const refuse = (error: string): CertificateResponse => ({ v: WIRE_SCHEMA_VERSION, id: request.id, error });
  const entry = registry?.lookup(gateway);
  if (!registry || !entry) return refuse(`gateway "${gateway}" is not registered: only registered units get certificates`);
  if (entry.record.venue !== venue) return refuse(`gateway "${gateway}" is registered at venue "${entry.record.venue}", not "${venue}"`);
  // The request on stdin (openssl's default input): Node's stdio is a socket, which /dev/stdin cannot open.
  const checked = await openssl(['req', '-noout', '-verify', '-subject', '-nameopt', 'RFC2253'], request.csr);
  if (checked.code !== 0) return refuse(`csr: not a certificate request whose signature verifies (${checked.err.trim().split('\n')[0] ?? 'openssl req'})`);
  const subject = /^subject=(.*)$/m.exec(checked.out)?.[1]?.trim();
  if (subject !== `CN=${gateway}`) return refuse(`csr: its subject is ${JSON.stringify(subject ?? null)}; it must be "CN=${gateway}" and nothing else (the broker's ACL keys on the CN)`);
  const dir = mkdtempSync(join(tmpdir(), 'vgw-ca-'));
  try {
    const ext = join(dir, 'client.ext');
    writeFileSync(ext, CLIENT_EXTENSIONS);
    const signed = await openssl([
      'x509', '-req', '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', `0x${randomBytes(16).toString('hex')}`,
      '-days', String(ca.days), '-sha256', '-extfile', ext,
    ], request.csr);
    if (signed.code !== 0) return refuse(`the backend could not sign it (${signed.err.trim().split('\n')[0]})`);
    return { v: WIRE_SCHEMA_VERSION, id: request.id, certificate: signed.out };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
