// Renewing a unit's TLS client certificate before it expires, with no technician (issue 26,
// item 5): the unit makes a new key, asks the backend over MQTT to certify it (a CSR signed with
// its identity key), checks what comes back, restarts with it on trial and keeps it only once it
// has reached its broker with it; otherwise it goes back to the one it had. Pure: the daemon owns
// the state file, the key generation, the CSR and the restarts.
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';

/** A certificate and its private key, as PEM. */
export interface Credentials {
  certPem: string;
  keyPem: string;
  /** Unix ms. */
  notAfter: number;
}

export interface RenewalOutcome {
  at: number;
  outcome: 'requested' | 'renewed' | 'refused' | 'rolledBack';
  reason?: string;
}

/** Kept beside the database, mode 0600 (it holds private keys), replaced whole. */
export interface RenewalState {
  v: 1;
  /** Whose credentials these are: a unit provisioned again as another gateway starts afresh. */
  gateway: string;
  /** Renewed credentials in use (they win over the config's files while they are newer). */
  renewed: Credentials | null;
  /** Credentials on trial: they must reach the broker before they are kept. */
  trial: (Credentials & { boots: number }) | null;
  /** An outstanding request: the key the certificate must be for, and the request's id. */
  pending: { id: string; keyPem: string; csrPem: string; requestedAt: number } | null;
  last: RenewalOutcome | null;
}

export const emptyRenewalState = (gateway: string): RenewalState => ({ v: 1, gateway, renewed: null, trial: null, pending: null, last: null });

/** Starts on trial without reaching the broker before the trial is given up. */
export const MAX_TLS_TRIAL_BOOTS = 3;

/** Which credentials a start uses: the trial's (counted), the renewed ones when newer than the file's, or the file's. */
export function bootCredentials(state: RenewalState, fileNotAfter: number | null, now: number): { use: 'trial' | 'renewed' | 'file'; credentials: Credentials | null; state: RenewalState } {
  const trial = state.trial;
  if (trial && trial.boots < MAX_TLS_TRIAL_BOOTS) {
    return { use: 'trial', credentials: trial, state: { ...state, trial: { ...trial, boots: trial.boots + 1 } } };
  }
  if (trial) state = { ...state, trial: null, last: { at: now, outcome: 'rolledBack', reason: `started ${trial.boots} times without reaching the broker with it` } };
  // A technician's newer file (a visit after all) wins over what was renewed before it.
  if (state.renewed && (fileNotAfter === null || state.renewed.notAfter > fileNotAfter)) return { use: 'renewed', credentials: state.renewed, state };
  return { use: 'file', credentials: null, state };
}

/** Whether the certificate in use is due for renewal (`renewBeforeDays` before it expires) and nothing is on its way. */
export function renewalDue(state: RenewalState, inUseNotAfter: number, now: number, renewBeforeDays: number, retryMs: number): boolean {
  if (renewBeforeDays <= 0 || state.trial) return false;
  if (inUseNotAfter - now > renewBeforeDays * 86_400_000) return false;
  return state.pending === null || now - state.pending.requestedAt >= retryMs;
}

/**
 * Whether `certPem` is what was asked for: a certificate for the pending key, naming the gateway,
 * issued by the unit's CA (`caPem`, when it has one), valid now. The reason names what is wrong.
 */
export function checkIssued(certPem: string, keyPem: string, gateway: string, caPem: string | null, now: number): { ok: true; credentials: Credentials } | { ok: false; reason: string } {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    return { ok: false, reason: `certificate: not a certificate (${(err as Error).message})` };
  }
  const mine = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  if (!cert.publicKey.export({ type: 'spki', format: 'der' }).equals(mine)) return { ok: false, reason: 'certificate: not for the key this unit asked with' };
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
  if (cn !== gateway) return { ok: false, reason: `certificate: its subject CN is ${JSON.stringify(cn ?? null)}, not this gateway's id "${gateway}" (the broker's ACL keys on it)` };
  if (caPem !== null) {
    const ca = new X509Certificate(caPem);
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return { ok: false, reason: `certificate: not issued by this unit's CA (${ca.subject.replace(/\n/g, ', ')})` };
  }
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (!(notBefore <= now + 300_000 && notAfter > now)) return { ok: false, reason: `certificate: valid from ${cert.validFrom} to ${cert.validTo}, not now` };
  return { ok: true, credentials: { certPem, keyPem, notAfter } };
}
