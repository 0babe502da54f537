// Rewrites the figures table of docs/benchmarks.md from bench/report.json (`make bench` runs it
// after measuring), so the document never holds a figure copied by hand. The prose around the
// table is the document's own; only the lines between the two markers are replaced.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { figure } from './figures.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const REPORT = join(ROOT, 'bench', 'report.json');
const DOC = join(ROOT, 'docs', 'benchmarks.md');
export const BEGIN = '<!-- figures: written by `make bench` from bench/report.json; do not edit by hand -->';
export const END = '<!-- end of figures -->';

/** The table of a report: every figure it holds, in its order, with what it is and its target. */
export function figuresTable(report: Record<string, number>, measuredOn: string): string {
  const rows = Object.entries(report).map(([key, value]) => {
    const f = figure(key);
    const met = f.target === undefined ? '' : meets(value, f.target) ? ' (met)' : ' (**not met**)';
    return `| \`${key}\` | ${f.what} | ${value.toLocaleString('en-US')} | ${f.target ?? ''}${met} |`;
  });
  return [
    `Measured on ${measuredOn}.`,
    '',
    '| figure | what | measured | target |',
    '|---|---|---|---|',
    ...rows,
  ].join('\n');
}

function meets(value: number, target: string): boolean {
  const m = /^([≥≤<>=])\s*([\d.]+)/.exec(target);
  if (!m) return true;
  const bound = Number(m[2]);
  return m[1] === '≥' ? value >= bound : m[1] === '≤' ? value <= bound : m[1] === '<' ? value < bound : m[1] === '=' ? value === bound : value > bound;
}

export function rewriteDoc(doc: string, table: string): string {
  const begin = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`docs/benchmarks.md: the markers ${BEGIN} and ${END} are missing; put them back around the table`);
  return `${doc.slice(0, begin + BEGIN.length)}\n${table}\n${doc.slice(end)}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const report = JSON.parse(readFileSync(REPORT, 'utf8')) as Record<string, number>;
  const day = statSync(REPORT).mtime.toISOString().slice(0, 10);
  const machine = `${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.versions.node}`;
  writeFileSync(DOC, rewriteDoc(readFileSync(DOC, 'utf8'), figuresTable(report, `${day}, ${machine}`)));
  process.stdout.write(`wrote the figures of ${REPORT} into ${DOC}\n`);
}
