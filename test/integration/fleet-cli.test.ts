// `vgw fleet-sim` as an operator runs it: a private Mosquitto and collector, a JSON report whose
// figures are checked against the collector's database; bad arguments name the option (exit 2).
import { describe, expect, it } from 'vitest';
import { runVgw } from '../harness/processes.js';

describe('vgw fleet-sim', () => {
  it('runs a small fleet against its own broker and collector and reports nothing lost', async () => {
    const r = await runVgw(['fleet-sim', '--gateways', '20', '--minutes', '0.25', '--speed', '60', '--commit-s', '1', '--batch-age-s', '1', '--json'], { timeoutMs: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.gateways).toBe(20);
    expect(report.encountersMade).toBeGreaterThan(50);
    expect(report.atBackend).toEqual({ rows: report.encountersMade, lost: 0, duplicates: 0, foreign: 0 });
    expect(report.drained).toBe(true);
    expect(report.latencyMs.p50).toBeGreaterThan(0);
  }, 150_000);

  it('names the option that is wrong', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--gateways', '0'], /--gateways: "0" must be a whole number of at least 1/],
      [['--minutes', 'ten'], /--minutes: "ten" must be a number/],
      [['--minutes', '1', '--restart-broker-at', '90'], /--restart-broker-at: 90 s is not within the run/],
      [['--collectors', '2'], /--collectors: several collectors share a PostgreSQL database/],
      [['--broker', 'mqtt://127.0.0.1:1', '--restart-broker-at', '5'], /--restart-broker-at: only the private Mosquitto can be restarted/],
    ];
    for (const [args, message] of cases) {
      const r = await runVgw(['fleet-sim', ...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});
