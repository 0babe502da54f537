// What a status says a unit runs: the software (package.json's version, the commit `make build`
// wrote) and the configuration's version, a digest of what is in effect.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configVersion, parseConfig } from '../../core/config/index.js';
import { softwareVersion } from '../../core/software/index.js';

describe('versions in a status', () => {
  it('the software version is package.json\'s, the commit the one dist/build-info.json names (or unknown)', () => {
    const pkg = JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as { version: string };
    const sw = softwareVersion();
    expect(sw.version).toBe(pkg.version);
    let built: string;
    try {
      built = (JSON.parse(readFileSync(join(__dirname, '../../dist/build-info.json'), 'utf8')) as { commit: string }).commit;
    } catch {
      built = 'unknown';
    }
    expect(sw.commit).toBe(built);
    expect(sw.commit).toMatch(/^([0-9a-f]{12}(-dirty)?|unknown)$/);
  });

  it('the config version is a digest of the configuration in effect: defaults written out or not, the same; a changed value, another', () => {
    const base = { broker: { url: 'mqtt://127.0.0.1:1883' } };
    const v = configVersion(parseConfig(base));
    expect(v).toMatch(/^sha256:[0-9a-f]{12}$/);
    // the default written out, and keys in another order: the same configuration
    expect(configVersion(parseConfig({ uplink: { statusIntervalS: 30 }, ...base }))).toBe(v);
    expect(configVersion(parseConfig({ ...base, uplink: { statusIntervalS: 300 } }))).not.toBe(v);
  });
});
