import pino, { Logger } from 'pino';

// Temp IDs, AEMs and BLE addresses are never logged; redaction is the safety net in case
// one slips into a log object anyway.
export const REDACT_PATHS = [
  'tempId', '*.tempId', 'rpi', '*.rpi', 'metadata', '*.metadata', 'aem', '*.aem',
  'address', '*.address', 'payload', '*.payload', 'broker.password', 'password',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    { level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { pid: process.pid } },
    destination,
  );
}

export type { Logger };
