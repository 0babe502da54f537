// The venue's BlueTrace temp IDs: issued by the backend (which alone holds the key), fetched
// over MQTT 100 at a time, kept on disk so a restart while offline does not silence the venue,
// and handed out by validity. Runs low → asks for more; runs out → says so in the status and
// the roles stop (an expired ID is never advertised).
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../atomic-file.js';
import { ulid } from 'ulid';
import type { Logger } from '../../core/log/index.js';
import { systemTimers, type TimerHandle, type Timers } from '../../core/time/index.js';
import { implausibleTempIds, IssuedTempId, TEMPID_BATCH_SIZE, tempIdBytes } from '../../core/bluetrace/index.js';
import type { TempIdsResponse } from '../../core/wire/index.js';
import type { TempIdSupplyStatus } from '../../core/wire/status.js';

export interface TempIdSupplyOptions {
  path: string;
  /** Ask for more once fewer than this many are left to come (15 minutes each). */
  lowWater: number;
  /** Ask again after this long without an answer. */
  retryMs: number;
  /** Whether the wall clock can be trusted to pick the ID valid now. */
  clockTrusted: () => boolean;
  /** Publishes a request; false when the broker is not reachable now. */
  request: (id: string, count: number) => boolean;
  timers?: Timers;
}

export type { TempIdSupplyStatus };

/** How often the supply checks whether to ask for more. */
const CHECK_MS = 5000;

export class TempIdSupply {
  private ids: IssuedTempId[] = [];
  private refreshAt = 0;
  private pending: { id: string; at: number } | null = null;
  private timer: TimerHandle | null = null;
  private readonly timers: Timers;
  readonly counters = { requests: 0, responses: 0, refused: 0, lastError: null as string | null, lastFetchAt: null as number | null };

  constructor(private readonly o: TempIdSupplyOptions, private readonly log: Logger) {
    this.timers = o.timers ?? systemTimers;
    this.load();
  }

  private load(): void {
    let text: string;
    try {
      text = readFileSync(this.o.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.unreadable((err as Error).message);
      return; // none yet: fetched
    }
    try {
      const saved = JSON.parse(text) as { refreshAt?: number; tempIds?: IssuedTempId[] };
      const all = saved.tempIds ?? [];
      this.ids = all.filter((t) => tempIdBytes(t.tempId) !== null && Number.isInteger(t.start) && Number.isInteger(t.expiry));
      this.refreshAt = saved.refreshAt ?? 0;
      if (this.ids.length < all.length) this.unreadable(`${all.length - this.ids.length} of ${all.length} entries malformed`);
    } catch (err) {
      this.ids = [];
      this.unreadable((err as Error).message);
    }
  }

  /** A damaged file is said (status and log) and fetched again, never silently taken for none. */
  private unreadable(why: string): void {
    this.counters.lastError = `temp ID file ${this.o.path} unreadable (${why}): asking the backend again`;
    this.log.error({ path: this.o.path, err: why }, 'temp ID file unreadable; asking the backend again');
  }

  private save(): void {
    writeFileAtomic(this.o.path, JSON.stringify({ v: 1, refreshAt: this.refreshAt, tempIds: this.ids }));
  }

  start(): void {
    this.timer = this.timers.setInterval(() => this.maybeRequest(), CHECK_MS);
    this.maybeRequest();
  }

  stop(): void {
    this.timers.clearInterval(this.timer);
    this.timer = null;
  }

  private now(): number {
    return this.timers.now();
  }

  /** The ID valid at `now` (unix ms): the latest-starting one whose window holds it; null when none or the clock is not trusted. */
  current(now = this.now()): string | null {
    if (!this.o.clockTrusted()) return null;
    const s = Math.floor(now / 1000);
    let best: IssuedTempId | null = null;
    for (const t of this.ids) if (t.start <= s && s < t.expiry && (!best || t.start > best.start)) best = t;
    return best?.tempId ?? null;
  }

  /** IDs whose window has not ended yet. */
  left(now = this.now()): number {
    const s = Math.floor(now / 1000);
    return this.ids.filter((t) => t.expiry > s).length;
  }

  /** Asks for a batch when low, due for a refresh, or out; one request at a time, retried. */
  maybeRequest(): void {
    const now = this.now();
    const due = this.left(now) < this.o.lowWater || now / 1000 >= this.refreshAt;
    if (!due || (this.pending && now - this.pending.at < this.o.retryMs)) return;
    const id = ulid();
    if (!this.o.request(id, TEMPID_BATCH_SIZE)) return;
    this.pending = { id, at: now };
    this.counters.requests++;
  }

  /** The backend's answer; an answer to a request not ours (or a stale one) is ignored. */
  accept(response: TempIdsResponse): void {
    if (!this.pending || response.id !== this.pending.id) return;
    this.pending = null;
    if ('error' in response) {
      this.counters.refused++;
      this.counters.lastError = response.error;
      this.log.error({ error: response.error }, 'backend refused to issue BlueTrace temp IDs');
      return;
    }
    const s = Math.floor(this.now() / 1000);
    const implausible = implausibleTempIds(response.tempIds, response.refreshAt, s);
    if (implausible) {
      this.counters.refused++;
      this.counters.lastError = `answer refused: ${implausible}`;
      this.log.error({ error: implausible }, 'BlueTrace temp IDs refused: they make no sense (kept the ones held)');
      return;
    }
    const known = new Set(this.ids.map((t) => t.tempId));
    this.ids = [...this.ids.filter((t) => t.expiry > s), ...response.tempIds.filter((t) => t.expiry > s && !known.has(t.tempId))].sort((a, b) => a.start - b.start);
    this.refreshAt = response.refreshAt;
    this.counters.responses++;
    this.counters.lastError = null;
    this.counters.lastFetchAt = this.now();
    this.save();
    this.log.info({ left: this.left(), refreshAt: new Date(this.refreshAt * 1000).toISOString() }, 'BlueTrace temp IDs fetched');
  }

  status(): TempIdSupplyStatus {
    const now = this.now();
    const left = this.left(now);
    const current = this.current(now);
    const s = Math.floor(now / 1000);
    const last = this.ids.reduce((m, t) => Math.max(m, t.expiry), 0);
    return {
      state: current === null ? (this.o.clockTrusted() ? 'out' : 'clockUnsynced') : left < this.o.lowWater ? 'low' : 'ok',
      left,
      lastsUntil: last > s ? last * 1000 : null,
      refreshAt: this.refreshAt > 0 ? this.refreshAt * 1000 : null,
      requests: this.counters.requests,
      responses: this.counters.responses,
      refused: this.counters.refused,
      lastError: this.counters.lastError,
      lastFetchAt: this.counters.lastFetchAt,
    };
  }
}
