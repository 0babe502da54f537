// A configuration's version as a status reports it: a digest of the configuration in effect,
// defaults filled in, so two units that behave alike report the same version whatever their
// files look like (key order, comments in a technician's copy, defaults written out or not).
import { createHash } from 'node:crypto';
import type { Config } from './schema.js';

export function configVersion(config: Config): string {
  return `sha256:${createHash('sha256').update(JSON.stringify(config)).digest('hex').slice(0, 12)}`;
}
