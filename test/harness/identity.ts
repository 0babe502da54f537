// Gateways in tests are provisioned like real ones: keys from newIdentity, a 0600 secrets file,
// and the registration record the collector verifies their batches against.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newIdentity, RegistrationRecord, Secrets } from '../../core/trust/index.js';

export interface TestIdentity {
  secretsFile: string;
  secrets: Secrets;
  record: RegistrationRecord;
}

export function provisionTestGateway(dir: string, gateway: string, venue: string, beaconIdentityKey?: string): TestIdentity {
  const { secrets, record } = newIdentity({ gateway, venue, beacon: { exponent: 10, epochS: 0, txPowerDbm: -20 } });
  if (beaconIdentityKey) secrets.beaconIdentityKey = beaconIdentityKey;
  const secretsFile = join(dir, `${gateway}-secrets.json`);
  writeFileSync(secretsFile, JSON.stringify(secrets), { mode: 0o600 });
  chmodSync(secretsFile, 0o600);
  return { secretsFile, secrets, record };
}
