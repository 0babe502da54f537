import pino, { Logger } from 'pino';
import pretty from 'pino-pretty';

// Temp IDs, AEMs and BLE addresses are never logged; redaction is the safety net in case
// one slips into a log object anyway.
export const REDACT_PATHS = [
  'tempId', '*.tempId', 'rpi', '*.rpi', 'metadata', '*.metadata', 'aem', '*.aem',
  'address', '*.address', 'payload', '*.payload', 'broker.password', 'password',
  // secrets: the signing seed, the beacon keys, the broker password
  'signingKey', '*.signingKey', 'beaconIdentityKey', '*.beaconIdentityKey', 'beaconPrivateKey', '*.beaconPrivateKey',
  'identityKey', '*.identityKey', 'brokerPassword', '*.brokerPassword', 'secrets',
];

/** JSON lines on stdout for journald and log shippers; `pretty` for a technician's terminal. */
export function createLogger(level: string, options: { pretty?: boolean } = {}): Logger {
  const destination = options.pretty ? pretty({ colorize: process.stdout.isTTY === true, sync: true }) : undefined;
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { pid: process.pid } }, destination);
}

export type { Logger };
export { WarningThrottle } from './throttle.js';
