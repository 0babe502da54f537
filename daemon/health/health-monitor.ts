// systemd integration (sd_notify): READY once the store is open and the radio powered on,
// STATUS with live counters, WATCHDOG only while the event loop and the radio are healthy,
// STOPPING on shutdown. The datagrams are sent from the daemon's own PID through unix-dgram:
// the systemd-notify command runs as a child process, so with NotifyAccess=main systemd drops
// its WATCHDOG=1 (wrong sender PID), and spawning it every few seconds would be heavy anyway.
import { createRequire } from 'node:module';
import type { Logger } from '../../core/log/index.js';
import type { HealthStatus } from '../../core/wire/status.js';

interface DgramSocket {
  on(event: 'error', cb: (err: Error) => void): void;
  send(buf: Buffer, offset: number, length: number, path: string, cb?: (err?: Error) => void): void;
  close(): void;
}

const require = createRequire(import.meta.url);

/** The notify socket of the service manager; null when not run by systemd with Type=notify. */
export class SdNotify {
  private constructor(private readonly socket: DgramSocket, private readonly path: string, private readonly log: Logger) {}

  static fromEnv(env: NodeJS.ProcessEnv, log: Logger): SdNotify | null {
    const path = env.NOTIFY_SOCKET;
    if (!path) return null;
    if (path.startsWith('@')) {
      // unix-dgram cannot address the abstract namespace; system services get a path socket.
      log.warn({ notifySocket: path }, 'abstract NOTIFY_SOCKET not supported; systemd will not hear READY or WATCHDOG');
      return null;
    }
    const { createSocket } = require('unix-dgram') as { createSocket(type: 'unix_dgram'): DgramSocket };
    const socket = createSocket('unix_dgram');
    socket.on('error', (err) => log.warn({ err: err.message }, 'sd_notify send failed'));
    return new SdNotify(socket, path, log);
  }

  send(fields: Record<string, string | number>): void {
    const text = Object.entries(fields).map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`).join('\n');
    const buf = Buffer.from(text);
    try {
      this.socket.send(buf, 0, buf.length, this.path);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'sd_notify send failed');
    }
  }

  close(): void {
    this.socket.close();
  }
}

/** The watchdog interval systemd asked for, or null (WATCHDOG_PID names another process). */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid = process.pid): number | null {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return null;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return null;
  return usec / 1000;
}

export interface HealthInputs {
  /** Lateness of the last watchdog tick: how long the event loop kept it waiting. */
  loopLagMs: number;
  /** Ping interval (half of WatchdogSec). */
  intervalMs: number;
  radioPoweredOn: boolean;
  /** How long the radio has been down (0 while powered on). */
  radioDownMs: number;
  radioGraceMs: number;
}

/**
 * Whether to ping the watchdog. A loop that falls behind by half an interval is not healthy; a
 * radio gets `radioGraceMs` of its own recovery (restart scan, reset, reopen) before the
 * missing pings let systemd restart the whole process.
 */
export function watchdogVerdict(h: HealthInputs): { ping: boolean; reason?: string } {
  if (h.loopLagMs > h.intervalMs / 2) return { ping: false, reason: `event loop ${Math.round(h.loopLagMs)} ms late` };
  if (!h.radioPoweredOn && h.radioDownMs > h.radioGraceMs) return { ping: false, reason: `radio down for ${Math.round(h.radioDownMs / 1000)} s` };
  return { ping: true };
}

export interface HealthOptions {
  notify: SdNotify | null;
  watchdogMs: number | null;
  radioGraceMs: number;
  statusIntervalMs: number;
  radioPoweredOn(): boolean;
  statusLine(): string;
  log: Logger;
}

/** Its part of the status document. */
export type HealthState = HealthStatus;

/**
 * The service's health towards systemd: READY once the radio is powered on, STATUS lines,
 * watchdog pings withheld while the unit is not healthy, STOPPING when it stops. Its state is
 * part of the status document (`counters.health`).
 */
export class HealthMonitor {
  readonly name = 'health';
  readonly state: HealthState;
  private timers: NodeJS.Timeout[] = [];

  constructor(private readonly o: HealthOptions) {
    this.state = { ready: false, watchdog: { enabled: o.watchdogMs !== null, pings: 0, withheld: 0, lastWithheldReason: null } };
  }

  start(): void {
    const { o, state } = this;
    let radioDownSince: number | null = o.radioPoweredOn() ? null : Date.now();
    const readyTimer = setInterval(() => {
      if (!o.radioPoweredOn()) return;
      clearInterval(readyTimer);
      state.ready = true;
      o.notify?.send({ READY: 1, STATUS: o.statusLine() });
      o.log.info('ready: store open, radio powered on');
    }, 200);
    this.timers.push(readyTimer);
    this.timers.push(setInterval(() => o.notify?.send({ STATUS: o.statusLine() }), o.statusIntervalMs));

    if (o.watchdogMs !== null) {
      const interval = o.watchdogMs / 2;
      let expected = Date.now() + interval;
      this.timers.push(
        setInterval(() => {
          const now = Date.now();
          const lag = Math.max(0, now - expected);
          expected = now + interval;
          const on = o.radioPoweredOn();
          if (on) radioDownSince = null;
          else radioDownSince ??= now;
          const verdict = watchdogVerdict({ loopLagMs: lag, intervalMs: interval, radioPoweredOn: on, radioDownMs: radioDownSince === null ? 0 : now - radioDownSince, radioGraceMs: o.radioGraceMs });
          if (verdict.ping) {
            state.watchdog.pings++;
            o.notify?.send({ WATCHDOG: 1 });
          } else {
            state.watchdog.withheld++;
            if (state.watchdog.lastWithheldReason !== verdict.reason) o.log.warn({ reason: verdict.reason }, 'watchdog ping withheld');
            state.watchdog.lastWithheldReason = verdict.reason ?? null;
          }
        }, interval),
      );
    }
  }

  /** Says STOPPING first, so systemd waits for the flush that follows. */
  stop(): void {
    this.o.notify?.send({ STOPPING: 1, STATUS: 'stopping: flushing encounters and the outbox' });
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }
}
export * from './control.js';
