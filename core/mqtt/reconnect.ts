// Reconnects with full jitter: after a broker restart a fleet's thousands of clients spread their
// attempts over a window that doubles each time they fail, instead of all arriving at once and
// again at every fixed period. mqtt.js retries on a fixed interval, so the client's own retry is
// off (reconnectPeriod 0) and this schedules `client.connect()` itself.
import type { MqttClient } from 'mqtt';
import { systemTimers, type TimerHandle, type Timers } from '../time/index.js';

/**
 * Wait before reconnect attempt `attempt` (0 for the first after a loss): uniform in
 * [0, min(maxMs, baseMs · 2^attempt)), "full jitter". `random` is in [0, 1).
 */
export function reconnectDelayMs(attempt: number, baseMs: number, maxMs: number, random: number): number {
  const window = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random * window);
}

export interface ReconnectSchedule {
  baseMs: number;
  maxMs: number;
  random?: () => number;
  /** Time and timers (fake ones in tests). */
  timers?: Timers;
}

/** Drives `client`'s reconnects until it is ended; counts attempts since the last connect. */
export function keepReconnecting(client: MqttClient, schedule: ReconnectSchedule): { attempts: () => number } {
  const random = schedule.random ?? Math.random;
  const timers = schedule.timers ?? systemTimers;
  let attempt = 0;
  let timer: TimerHandle | null = null;
  client.on('connect', () => {
    attempt = 0;
  });
  client.on('close', () => {
    // end() was called (disconnecting), or an attempt is already due
    if (timer || client.disconnecting || client.disconnected) return;
    timer = timers.setTimeout(() => {
      timer = null;
      attempt++;
      if (!client.connected && !client.disconnecting && !client.disconnected) client.connect();
    }, reconnectDelayMs(attempt, schedule.baseMs, schedule.maxMs, random()));
  });
  client.on('end', () => {
    timers.clearTimeout(timer);
    timer = null;
  });
  return { attempts: () => attempt };
}
