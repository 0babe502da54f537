// Certificates' expiry as a unit reports it (core/trust/expiry.ts): a warning from 30 days before.
import { describe, expect, it } from 'vitest';
import { EXPIRY_WARNING_DAYS, expiryOf, expiryWarning } from '../../core/trust/index.js';

const DAY = 86_400_000;
const now = Date.UTC(2026, 11, 7);

describe('certificate expiry', () => {
  it('counts whole days left, negative once expired', () => {
    expect(expiryOf('broker.cert', now + 10.5 * DAY, now)).toEqual({ file: 'broker.cert', notAfter: '2026-12-17T12:00:00.000Z', daysLeft: 10 });
    expect(expiryOf('broker.ca', now - 1, now).daysLeft).toBe(-1);
  });

  it(`warns from ${EXPIRY_WARNING_DAYS} days before, the soonest first, and not before`, () => {
    expect(expiryWarning([expiryOf('broker.cert', now + 31 * DAY, now)])).toBeNull();
    expect(expiryWarning([expiryOf('broker.cert', now + 29 * DAY, now), expiryOf('broker.ca', now - DAY, now)])).toBe(
      'broker.ca expired 2026-12-06T00:00:00.000Z; broker.cert expires in 29 days (2027-01-05T00:00:00.000Z): renew before then (a new certificate from the fleet CA: provisioning/tls/certs.sh)',
    );
  });
});
