// Spawns the real CLI (built into dist/) as a technician or systemd would.
import { ChildProcess, spawn, spawnSync, SpawnSyncReturns } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll } from 'vitest';

export const VGW = resolve(__dirname, '../../dist/cli/main.js');

if (!existsSync(VGW)) throw new Error(`${VGW} is missing: run \`make build\` (make test does it) before the tests`);

export interface Spawned {
  proc: ChildProcess;
  output(): string;
  exited(): Promise<number | null>;
}

const children = new Set<ChildProcess>();
// A failed test must not leave a daemon running behind it.
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

export function spawnVgw(args: string[], env: NodeJS.ProcessEnv = process.env): Spawned {
  const proc = spawn(process.execPath, [VGW, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  children.add(proc);
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, output: () => out, exited: () => exit };
}

export function runVgw(args: string[], input?: string | Buffer): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [VGW, ...args], { input, encoding: 'utf8', timeout: 60_000 });
}

export interface VgwResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI without blocking this process: use it while this process serves something the
 * command or a daemon needs (a virtual controller, a collector). `runVgw` would stall that server
 * for as long as the command runs, and a daemon waiting on it would look late.
 */
export function runVgwAsync(args: string[], timeoutMs = 60_000): Promise<VgwResult> {
  return new Promise((resolveRun, reject) => {
    const proc = spawn(process.execPath, [VGW, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    children.add(proc);
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.once('error', reject);
    proc.once('close', (status) => resolveRun({ status, stdout, stderr }));
  });
}

export async function stopGracefully(s: Spawned): Promise<number | null> {
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) return s.proc.exitCode;
  s.proc.kill('SIGTERM');
  return s.exited();
}

export function writeJson(path: string, value: unknown): string {
  writeFileSync(path, JSON.stringify(value, null, 2));
  return path;
}

export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
