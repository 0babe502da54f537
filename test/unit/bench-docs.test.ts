// make bench writes the figures of docs/benchmarks.md from bench/report.json: only the lines
// between the markers change, and each figure with a target says whether it met it.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BEGIN, END, figuresTable, rewriteDoc } from '../../bench/docs-table.js';

describe('the benchmarks page', () => {
  it('rewrites only the table between the markers, each target marked met or not met', () => {
    const table = figuresTable({ wire_bytes_per_encounter: 33.2, fleet_gateways: 900, some_new_figure: 12_345, fleet_config_lost: 0, fleet_config_not_applied: 3 }, '2026-12-07, 2 cores');
    expect(table).toMatch(/^\| `fleet_config_lost` \|.*\| 0 \| = 0 \(met\) \|$/m);
    expect(table).toMatch(/^\| `fleet_config_not_applied` \|.*\| 3 \| = 0 \(\*\*not met\*\*\) \|$/m);
    expect(table).toContain('| `wire_bytes_per_encounter` |');
    expect(table).toMatch(/\| 33\.2 \| ≤ 40 \(met\) \|$/m);
    expect(table).toMatch(/\| 900 \| ≥ 1000 \(\*\*not met\*\*\) \|$/m);
    expect(table).toMatch(/^\| `some_new_figure` \|  \| 12,345 \|  \|$/m);
    const doc = `# Benchmarks\n\nprose before\n\n${BEGIN}\nold table\n${END}\n\nprose after\n`;
    const once = rewriteDoc(doc, table);
    expect(once).toBe(`# Benchmarks\n\nprose before\n\n${BEGIN}\n${table}\n${END}\n\nprose after\n`);
    expect(rewriteDoc(once, table)).toBe(once);
    expect(() => rewriteDoc('# no markers\n', table)).toThrow(/markers .* are missing/);
  });

  it('docs/benchmarks.md carries the markers make bench writes between', () => {
    const doc = readFileSync(resolve(__dirname, '../../docs/benchmarks.md'), 'utf8');
    expect(doc.indexOf(BEGIN)).toBeGreaterThan(0);
    expect(doc.indexOf(END)).toBeGreaterThan(doc.indexOf(BEGIN));
  });
});
