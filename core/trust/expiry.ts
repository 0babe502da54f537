// When a unit's certificates run out, and the warning it gives 30 days before: a fleet installed
// in one season would otherwise go dark in one day, 825 days later (docs/operating.md).
import { X509Certificate } from 'node:crypto';

export const EXPIRY_WARNING_DAYS = 30;

export interface CertificateExpiry {
  /** The config key that names the file: broker.cert (the unit's own) or broker.ca. */
  file: string;
  /** ISO-8601. */
  notAfter: string;
  /** Whole days from now; negative once expired. */
  daysLeft: number;
}

/** The expiry of a PEM certificate; throws on a file that is not one. */
export function certificateNotAfter(pem: Buffer): number {
  return Date.parse(new X509Certificate(pem).validTo);
}

export function expiryOf(file: string, notAfter: number, now: number): CertificateExpiry {
  return { file, notAfter: new Date(notAfter).toISOString(), daysLeft: Math.floor((notAfter - now) / 86_400_000) };
}

/** A line for the status and the log when a certificate has expired or will within EXPIRY_WARNING_DAYS; null otherwise. */
export function expiryWarning(certificates: readonly CertificateExpiry[]): string | null {
  const due = certificates.filter((c) => c.daysLeft < EXPIRY_WARNING_DAYS).sort((a, b) => a.daysLeft - b.daysLeft);
  if (due.length === 0) return null;
  return due
    .map((c) => (c.daysLeft < 0 ? `${c.file} expired ${c.notAfter}` : `${c.file} expires in ${c.daysLeft} days (${c.notAfter})`))
    .join('; ') + ': renew before then (a new certificate from the fleet CA: provisioning/tls/certs.sh)';
}
