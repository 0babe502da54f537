// The layout docs/architecture.md promises: core/ is shared and imports nothing of the gateway, the backend,
// the simulators or the CLI; the backend (collector/) imports core/ only; the daemon's production
// path does not reach into the simulators except to build the simulated radio it is configured with.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '../..');

function sources(folder: string): string[] {
  return readdirSync(join(ROOT, folder), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(folder, f));
}

/** Top-level folders a file imports from, by relative specifier. */
function importedFolders(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const specs = [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+'(\.[^']+)'/g)].map((m) => m[1]);
  return specs.map((s) => relative(ROOT, resolve(ROOT, file, '..', s)).split('/')[0]);
}

const offending = (folder: string, allowed: string[]) =>
  sources(folder).flatMap((f) => importedFolders(f).filter((d) => !allowed.includes(d)).map((d) => `${f} → ${d}/`));

describe('layering', () => {
  it('core/ imports only core/', () => {
    expect(sources('core').length).toBeGreaterThan(10);
    expect(offending('core', ['core'])).toEqual([]);
  });

  it('the backend (collector/) imports only core/ and itself', () => {
    expect(offending('collector', ['core', 'collector'])).toEqual([]);
  });

  it('the daemon reaches the simulators only to build the configured simulated radio', () => {
    const intoSimulators = sources('daemon').filter((f) => importedFolders(f).includes('simulators'));
    expect(intoSimulators).toEqual(['daemon/daemon.ts']);
    expect(offending('daemon', ['core', 'daemon', 'simulators'])).toEqual([]);
  });

  it('finds an import that breaks the rule (the checker itself)', () => {
    expect(importedFolders('cli/encounter-db.ts')).toEqual(expect.arrayContaining(['core', 'collector', 'daemon']));
  });
});
