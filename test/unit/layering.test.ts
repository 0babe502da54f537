// The layout docs/architecture.md promises: core/ is shared and imports nothing of the gateway, the backend,
// the simulators or the CLI; the backend (collector/) imports core/ only; the daemon's production
// path does not reach into the simulators except to build the simulated radio it is configured
// with, and that holds for everything it loads, not only the files it names (imports followed
// transitively, type-only ones included, as a newcomer reading the code would follow them).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '../..');

function sources(folder: string): string[] {
  return readdirSync(join(ROOT, folder), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(folder, f));
}

/** The files a source imports by relative specifier (static, re-exports, side-effect and dynamic), as repo paths. */
function importedFiles(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const specs = [
    ...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'";]*?from\s+'(\.[^']+)'/g),
    ...text.matchAll(/(?:^|\n)\s*import\s+'(\.[^']+)'/g),
    ...text.matchAll(/\bimport\(\s*'(\.[^']+)'\s*\)/g),
  ].map((m) => m[1]);
  return specs.map((s) => {
    const target = resolve(ROOT, dirname(file), s);
    const candidates = [target.replace(/\.js$/, '.ts'), join(target, 'index.ts'), `${target}.ts`];
    return relative(ROOT, candidates.find((c) => existsSync(c)) ?? target);
  });
}

const importedFolders = (file: string) => importedFiles(file).map((f) => f.split('/')[0]);

/** Every file reachable from `roots` by imports. */
function closure(roots: string[]): Set<string> {
  const seen = new Set<string>();
  const todo = [...roots];
  while (todo.length > 0) {
    const f = todo.pop()!;
    if (seen.has(f) || !f.endsWith('.ts')) continue;
    seen.add(f);
    todo.push(...importedFiles(f));
  }
  return seen;
}

const offending = (folder: string, allowed: string[]) =>
  sources(folder).flatMap((f) => importedFolders(f).filter((d) => !allowed.includes(d)).map((d) => `${f} → ${d}/`));

/** What the daemon may load of simulators/: the simulated radio and the crowd it plays. */
const DAEMON_SIMULATORS = ['simulators/crowd.ts', 'simulators/simulated-radio.ts'];

describe('layering', () => {
  it('core/ imports only core/', () => {
    expect(sources('core').length).toBeGreaterThan(10);
    expect(offending('core', ['core'])).toEqual([]);
  });

  it('the backend (collector/) imports only core/ and itself', () => {
    expect(offending('collector', ['core', 'collector'])).toEqual([]);
  });

  it('everything the daemon loads stays out of the backend, the CLI and the test simulators', () => {
    const loaded = [...closure(sources('daemon'))];
    expect(loaded.length).toBeGreaterThan(40);
    expect(loaded.filter((f) => !['core', 'daemon', 'simulators'].includes(f.split('/')[0]))).toEqual([]);
    expect(loaded.filter((f) => f.startsWith('simulators/')).sort()).toEqual(DAEMON_SIMULATORS);
  });

  it('the checker follows imports transitively: the simulators barrel, reached from a daemon file, is caught', () => {
    // the daemon as it was: `import { SimulatedRadio } from '../simulators/index.js'`
    const viaBarrel = closure(['simulators/index.ts']);
    expect([...viaBarrel]).toEqual(expect.arrayContaining(['simulators/local-postgres.ts', 'simulators/fleet.ts']));
    expect(importedFolders('cli/encounter-db.ts')).toEqual(expect.arrayContaining(['core', 'collector', 'daemon']));
  });
});
