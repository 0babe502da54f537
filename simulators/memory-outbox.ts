// A simulated gateway's store, in memory: what the real uplink needs of the SQLite store (an
// outbox of batches cut from closed encounters, acks that take batches out, pulls by time), with
// the store's cadence — closed encounters wait for the next commit, which cuts them into batches
// of at most `batchMaxEncounters`, or fewer once the oldest has waited `batchMaxAgeMs`. The fleet
// simulator runs a thousand of these beside one real Uplink each.
import { ulid } from 'ulid';
import { pullBounds, type Encounter, type StoredEncounter } from '../core/encounters/index.js';
import type { DatabaseState, StoreBacklog } from '../core/wire/status.js';
import type { OutboxBatch } from '../daemon/store/index.js';
import type { UplinkStore } from '../daemon/uplink/index.js';

export interface MemoryOutboxOptions {
  batchMaxEncounters: number;
  batchMaxAgeMs: number;
  /** The store's commit interval (store.checkpointS): closed encounters are batched at commits. */
  commitIntervalMs: number;
}

interface HeldBatch extends OutboxBatch {
  firstId: number;
  lastId: number;
}

export class MemoryOutbox implements UplinkStore {
  readonly life = ulid();
  private readonly startedAt = Date.now();
  private readonly encounters: StoredEncounter[] = [];
  /** Encounters up to this id are committed; up to batchedThrough, batched. */
  private committedThrough = 0;
  private batchedThrough = 0;
  private readonly batches = new Map<string, HeldBatch>();
  private readonly outboxList: HeldBatch[] = [];
  private seq = 0;
  private lastCommitAt: number;
  private lastAckAt: number | null = null;
  private readonly batchListeners: Array<(b: OutboxBatch[]) => void> = [];
  private readonly ackListeners: Array<(ids: string[]) => void> = [];
  readonly counters = { encountersStored: 0, batchesCut: 0, batchesAcked: 0, acksUnknown: 0, writeTransactions: 0 };

  constructor(private readonly options: MemoryOutboxOptions, now = Date.now(), commitPhaseMs = 0) {
    // Each gateway commits on its own phase, as units started at different moments do.
    this.lastCommitAt = now - commitPhaseMs;
  }

  /** Encounters that closed now; they reach the outbox at the next commit. */
  addEncounters(closed: readonly Encounter[]): StoredEncounter[] {
    const stored: StoredEncounter[] = [];
    for (const e of closed) stored.push({ ...e, id: this.encounters.length + stored.length + 1, life: this.life });
    this.encounters.push(...stored);
    return stored;
  }

  /** Commits when the interval has passed: cuts full batches, and a short one when the oldest is old enough. */
  tick(now: number, closedAt: (e: StoredEncounter) => number, final = false): void {
    if (!final && now - this.lastCommitAt < this.options.commitIntervalMs) return;
    this.lastCommitAt = now;
    this.counters.writeTransactions++;
    this.counters.encountersStored += this.encounters.length - this.committedThrough;
    this.committedThrough = this.encounters.length;
    const cut: HeldBatch[] = [];
    for (;;) {
      const waiting = this.committedThrough - this.batchedThrough;
      if (waiting === 0) break;
      const oldest = this.encounters[this.batchedThrough];
      if (!final && waiting < this.options.batchMaxEncounters && now - closedAt(oldest) < this.options.batchMaxAgeMs) break;
      const n = Math.min(waiting, this.options.batchMaxEncounters);
      const batch: HeldBatch = {
        id: ulid(), life: this.life, seq: ++this.seq, createdAt: now, encounterCount: n, firstId: this.batchedThrough + 1, lastId: this.batchedThrough + n,
      };
      this.batchedThrough += n;
      this.batches.set(batch.id, batch);
      this.outboxList.push(batch);
      cut.push(batch);
    }
    if (cut.length > 0) {
      this.counters.batchesCut += cut.length;
      for (const l of this.batchListeners) l(cut);
    }
  }

  /** A final commit, as the daemon makes when it stops: everything closed is batched. */
  flush(now: number): void {
    this.tick(now, () => now, true);
  }

  onBatches(listener: (batches: OutboxBatch[]) => void): void {
    this.batchListeners.push(listener);
  }

  onAcked(listener: (ids: string[]) => void): void {
    this.ackListeners.push(listener);
  }

  outbox(): OutboxBatch[] {
    return this.outboxList;
  }

  batchEncounters(batchId: string): StoredEncounter[] {
    const b = this.batches.get(batchId);
    return b ? this.encounters.slice(b.firstId - 1, b.lastId) : [];
  }

  /** The batch leaves the outbox at once (the real store commits the ack at its next commit). */
  addAck(batchId: string): boolean {
    const at = this.outboxList.findIndex((b) => b.id === batchId);
    if (at < 0) {
      this.counters.acksUnknown++;
      return false;
    }
    this.outboxList.splice(at, 1);
    this.counters.batchesAcked++;
    this.lastAckAt = Date.now();
    for (const l of this.ackListeners) l([batchId]);
    return true;
  }

  pullPlan(from: number, to: number): { ranges: Array<{ firstId: number; lastId: number }>; upperBound: number } {
    const ids = this.encounters.filter(inPull(from, to)).map((e) => e.id);
    if (ids.length === 0) return { ranges: [], upperBound: 0 };
    return { ranges: [{ firstId: ids[0], lastId: ids[ids.length - 1] }], upperBound: ids[ids.length - 1] - ids[0] + 1 };
  }

  readRange(firstId: number, lastId: number, from: number, to: number): StoredEncounter[] {
    return this.encounters.slice(firstId - 1, lastId).filter(inPull(from, to));
  }

  get database(): DatabaseState {
    return { database: 'memory', life: this.life, lifeStartedAt: this.startedAt, lives: 1, serviceS: Math.floor((Date.now() - this.startedAt) / 1000), lastEvent: null, error: null };
  }

  stats(): StoreBacklog {
    const unbatched = this.encounters.length - this.batchedThrough;
    const pending = unbatched + this.outboxList.reduce((n, b) => n + b.encounterCount, 0);
    return { unbatched, outboxBatches: this.outboxList.length, lastAckAt: this.lastAckAt, pending };
  }
}

/** The pull's rule, on the wire's whole seconds as the real store applies it. */
function inPull(from: number, to: number): (e: StoredEncounter) => boolean {
  const { lastSeenAbove, firstSeenBelow } = pullBounds(from, to);
  return (e) => e.lastSeen > lastSeenAbove && e.firstSeen < firstSeenBelow;
}
