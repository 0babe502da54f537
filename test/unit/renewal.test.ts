// Certificate renewal's rules (core/trust/renewal.ts): which credentials a start uses, when a
// renewal is due, and what makes an issued certificate acceptable — for the key the unit asked
// with, naming the gateway, from its CA, valid now. Certificates made by openssl, as certs.sh does.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bootCredentials, checkIssued, emptyRenewalState, MAX_TLS_TRIAL_BOOTS, renewalDue, type Credentials, type RenewalState } from '../../core/trust/index.js';
import { runProcess } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-renewal-');
const DAY = 86_400_000;
const now = Date.UTC(2026, 11, 7);

async function openssl(...args: string[]): Promise<void> {
  const r = await runProcess('openssl', args);
  if (r.status !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr}`);
}

/** A CA, and a certificate for `keyPem` with CN `cn` signed by `ca`. */
async function makeCa(name: string): Promise<void> {
  await openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(dir, `${name}.key`));
  await openssl('req', '-x509', '-new', '-key', join(dir, `${name}.key`), '-days', '3650', '-subj', `/CN=${name}`, '-out', join(dir, `${name}.crt`));
}
async function issue(ca: string, keyPem: string, cn: string, days = 825): Promise<string> {
  const key = join(dir, `k-${cn}-${days}.pem`);
  writeFileSync(key, keyPem, { mode: 0o600 });
  await openssl('req', '-new', '-key', key, '-subj', `/CN=${cn}`, '-out', `${key}.csr`);
  await openssl('x509', '-req', '-in', `${key}.csr`, '-CA', join(dir, `${ca}.crt`), '-CAkey', join(dir, `${ca}.key`), '-CAcreateserial', '-days', String(days), '-out', `${key}.crt`);
  return readFileSync(`${key}.crt`, 'utf8');
}
const newKey = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

describe('certificate renewal, pure', () => {
  const key = newKey();
  let good = '';
  let caPem = '';
  beforeAll(async () => {
    await makeCa('fleet-ca');
    await makeCa('other-ca');
    caPem = readFileSync(join(dir, 'fleet-ca.crt'), 'utf8');
    good = await issue('fleet-ca', key, 'gw-1');
  });

  it('accepts a certificate for the key asked with, naming the gateway, from its CA, valid now; names what is wrong otherwise', async () => {
    const real = Date.now();
    const ok = checkIssued(good, key, 'gw-1', caPem, real);
    expect(ok.ok).toBe(true);
    if (ok.ok) expect(ok.credentials.notAfter - real).toBeGreaterThan(824 * DAY);
    expect(checkIssued(good, newKey(), 'gw-1', caPem, real)).toEqual({ ok: false, reason: 'certificate: not for the key this unit asked with' });
    expect(checkIssued(await issue('fleet-ca', key, 'gw-2'), key, 'gw-1', caPem, real)).toMatchObject({ ok: false, reason: expect.stringMatching(/its subject CN is "gw-2", not this gateway's id "gw-1"/) });
    expect(checkIssued(await issue('other-ca', key, 'gw-1', 30), key, 'gw-1', caPem, real)).toMatchObject({ ok: false, reason: expect.stringMatching(/not issued by this unit's CA \(CN=fleet-ca\)/) });
    expect(checkIssued(good, key, 'gw-1', caPem, real + 900 * DAY)).toMatchObject({ ok: false, reason: expect.stringMatching(/^certificate: valid from .* to .*, not now$/) });
    expect(checkIssued('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', key, 'gw-1', caPem, real)).toMatchObject({ ok: false, reason: expect.stringMatching(/^certificate: not a certificate/) });
  });

  it('is due from renewBeforeDays before the expiry, asks again after retryMs, never while a trial runs, and never at 0', () => {
    const s = emptyRenewalState('gw-1');
    expect(renewalDue(s, now + 31 * DAY, now, 30, 3_600_000)).toBe(false);
    expect(renewalDue(s, now + 29 * DAY, now, 30, 3_600_000)).toBe(true);
    expect(renewalDue(s, now + 29 * DAY, now, 0, 3_600_000)).toBe(false);
    const pending = { ...s, pending: { id: 'x', keyPem: key, csrPem: '', requestedAt: now } };
    expect(renewalDue(pending, now + 29 * DAY, now + 60_000, 30, 3_600_000)).toBe(false);
    expect(renewalDue(pending, now + 29 * DAY, now + 3_600_000, 30, 3_600_000)).toBe(true);
    const creds: Credentials = { certPem: good, keyPem: key, notAfter: now + 825 * DAY };
    expect(renewalDue({ ...s, trial: { ...creds, boots: 1 } }, now + 29 * DAY, now, 30, 0)).toBe(false);
  });

  it('starts on a trial a bounded number of times, then back to what it had; a newer file (a visit) wins over what was renewed', () => {
    const creds: Credentials = { certPem: 'renewed', keyPem: key, notAfter: now + 825 * DAY };
    let state: RenewalState = { ...emptyRenewalState('gw-1'), trial: { ...creds, boots: 0 } };
    for (let i = 1; i <= MAX_TLS_TRIAL_BOOTS; i++) {
      const plan = bootCredentials(state, now + 10 * DAY, now);
      expect(plan).toMatchObject({ use: 'trial', state: { trial: { boots: i } } });
      state = plan.state;
    }
    const back = bootCredentials(state, now + 10 * DAY, now);
    expect(back).toMatchObject({ use: 'file', credentials: null, state: { trial: null, last: { outcome: 'rolledBack', reason: 'started 3 times without reaching the broker with it' } } });
    const renewed = { ...emptyRenewalState('gw-1'), renewed: creds };
    expect(bootCredentials(renewed, now + 10 * DAY, now)).toMatchObject({ use: 'renewed', credentials: creds });
    expect(bootCredentials(renewed, now + 900 * DAY, now)).toMatchObject({ use: 'file', credentials: null });
  });
});
