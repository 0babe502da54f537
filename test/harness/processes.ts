// Spawns the real CLI (built into dist/) as a technician or systemd would.
import { ChildProcess, spawn } from 'node:child_process';
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
  return spawnProcess(process.execPath, [VGW, ...args], { env });
}

/** Any long-running process (a Python consumer), killed with the rest if a test fails. */
export function spawnProcess(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Spawned {
  const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env, cwd: options.cwd });
  children.add(proc);
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, output: () => out, exited: () => exit };
}

export interface VgwResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string | Buffer;
  timeoutMs?: number;
  cwd?: string;
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs a command to its end without blocking this process. Never spawnSync in tests: a file of
 * synchronous runs starves the test worker's event loop for as long as they all take, and vitest's
 * worker gives up on its own RPC after 60 s ("Timeout calling onTaskUpdate") on a loaded machine;
 * this process may also be serving what the command needs (a virtual controller, a collector).
 */
export function runProcess(command: string, args: string[], options: RunOptions = {}): Promise<VgwResult> {
  return new Promise((resolveRun, reject) => {
    const proc = spawn(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'], timeout: options.timeoutMs ?? 60_000 });
    children.add(proc);
    proc.stdin!.on('error', () => {}); // a command that exits before reading its input
    proc.stdin!.end(options.input ?? '');
    let stdout = '';
    let stderr = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    proc.once('error', reject);
    proc.once('close', (status) => resolveRun({ status, stdout, stderr }));
  });
}

/** `vgw run -c config` as systemd keeps it: started again when it exits 75 (RestartForceExitStatus). */
export function superviseVgw(config: string): { current: () => Spawned; starts: () => number; stop: () => Promise<number | null>; output: () => string } {
  let current = spawnVgw(['run', '-c', config]);
  let starts = 1;
  let stopping = false;
  let earlier = '';
  const watch = (s: Spawned) => {
    void s.exited().then((code) => {
      if (stopping || code !== 75) return;
      earlier += s.output();
      current = spawnVgw(['run', '-c', config]);
      starts++;
      watch(current);
    });
  };
  watch(current);
  return {
    current: () => current,
    starts: () => starts,
    output: () => earlier + current.output(),
    stop: () => {
      stopping = true;
      return stopGracefully(current);
    },
  };
}

export const runVgw = (args: string[], options: RunOptions = {}): Promise<VgwResult> => runProcess(process.execPath, [VGW, ...args], options);

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
