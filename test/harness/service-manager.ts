// The project's systemd unit run as systemd would run it, where systemd is not PID 1: its
// ExecStartPre (the release guard) then its ExecStart, under a staged install root, with a
// NOTIFY_SOCKET; started again after a failure or exit 75 (Restart=on-failure,
// RestartForceExitStatus=75), not after a clean exit. Paths in the unit are mapped into the
// staged root; RestartSec is shortened.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnProcess, type Spawned, runProcess } from './processes.js';

export interface ServiceEvent {
  at: number;
  kind: 'pre' | 'start' | 'exit';
  /** pre: the guard's exit code; exit: the daemon's. */
  code?: number | null;
  /** What `current` pointed at when the daemon started. */
  release?: string;
  output?: string;
}

export interface ManagedService {
  events: ServiceEvent[];
  /** What every run of the daemon wrote, in order. */
  output(): string;
  /** The running daemon, if one runs. */
  current(): Spawned | null;
  /** Stops it (SIGTERM) and starts nothing more; resolves with the last exit code. */
  stop(): Promise<number | null>;
  /** Kills it as a power cut would (SIGKILL) and starts nothing more. */
  kill(): Promise<void>;
  /** Starts again after a stop or a kill (a boot). */
  boot(): void;
}

/** Lines `Key=value` of the unit file, in order. */
export function unitSettings(unitFile: string, key: string): string[] {
  return readFileSync(unitFile, 'utf8').split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
}

export function manageService(o: { unitFile: string; stagedRoot: string; config: string; env?: NodeJS.ProcessEnv; restartMs?: number; currentRelease: () => string | null }): ManagedService {
  const map = (line: string) =>
    line.replace(/^\/usr\/bin\/node /, `${process.execPath} `).replaceAll('/etc/venue-gateway/config.json', o.config).replaceAll('/opt/venue-gateway', join(o.stagedRoot, 'opt/venue-gateway'));
  const argv = (line: string) => map(line).split(' ');
  const [pre] = unitSettings(o.unitFile, 'ExecStartPre').map(argv);
  const [main] = unitSettings(o.unitFile, 'ExecStart').map(argv);
  const restartOn = new Set(unitSettings(o.unitFile, 'RestartForceExitStatus').map(Number));
  const events: ServiceEvent[] = [];
  let earlier = '';
  let running: Spawned | null = null;
  let active = false;
  let timer: NodeJS.Timeout | null = null;

  const schedule = () => {
    if (active) timer = setTimeout(() => void startOnce(), o.restartMs ?? 300);
  };
  const startOnce = async () => {
    timer = null;
    if (!active) return;
    const guard = await runProcess(pre[0], pre.slice(1), { env: o.env });
    events.push({ at: Date.now(), kind: 'pre', code: guard.status, output: guard.stdout + guard.stderr });
    if (!active) return;
    if (guard.status !== 0) return schedule();
    const child = spawnProcess(main[0], main.slice(1), { env: o.env ?? process.env });
    running = child;
    events.push({ at: Date.now(), kind: 'start', release: o.currentRelease() ?? undefined });
    const code = await child.exited();
    earlier += child.output();
    running = null;
    events.push({ at: Date.now(), kind: 'exit', code });
    // Restart=on-failure: a non-zero exit, a signal, or a code listed in RestartForceExitStatus.
    if (code !== 0 || restartOn.has(code as number)) schedule();
  };
  const boot = () => {
    active = true;
    void startOnce();
  };
  boot();
  return {
    events,
    output: () => earlier + (running?.output() ?? ''),
    current: () => running,
    boot,
    stop: async () => {
      active = false;
      if (timer) clearTimeout(timer);
      const r = running;
      if (!r) return events.filter((e) => e.kind === 'exit').at(-1)?.code ?? null;
      r.proc.kill('SIGTERM');
      return r.exited();
    },
    kill: async () => {
      active = false;
      if (timer) clearTimeout(timer);
      const r = running;
      if (!r) return;
      r.proc.kill('SIGKILL');
      await r.exited();
    },
  };
}
