// The answer to a signed doctor command: the technician's own `vgw doctor --json`, run on the unit
// as a child, so the backend sees what a technician on site would. Doctor asks the running daemon
// through its control socket rather than opening the controller or a second broker session.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { DoctorCheck } from '../core/wire/index.js';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

const checksSchema = z.array(z.object({ check: z.string(), ok: z.boolean(), detail: z.string(), fix: z.string().optional() }));

/** Runs doctor against the config the daemon was started with; rejects when it printed no checks. */
export function runDoctor(configPath: string, timeoutMs = 60_000): Promise<DoctorCheck[]> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, 'doctor', '--config', configPath, '--json'], { timeout: timeoutMs, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      // Doctor exits 1 when a check fails: its checks are the answer all the same.
      let checks: DoctorCheck[];
      try {
        checks = checksSchema.parse(JSON.parse(stdout));
      } catch {
        return reject(new Error(`vgw doctor printed no checks (${err?.message ?? 'exit 0'}${stderr ? `: ${stderr.trim().slice(0, 300)}` : ''})`));
      }
      resolve(checks);
    });
  });
}
