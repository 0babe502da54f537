// The backend side, as a reference consumer: validates batches, stores them through the
// collector's database, and acknowledges only once the commit is durable.
import type { MqttClient } from 'mqtt';
import type { Logger } from '../core/log/index.js';
import {
  Batch, collectorBatchFilter, decodeBatch, gatewayTopics, parseBatchTopic, parseTempIdsRequestTopic, tempIdsRequestFilter, WIRE_SCHEMA_VERSION,
  WireFormatError,
} from '../core/wire/index.js';
import { answerTempIdRequest } from './tempids.js';
import { TEMPID_KEY_BYTES } from '../core/bluetrace/index.js';
import { BrokerOptions, connectClient } from '../core/mqtt/index.js';
import type { CollectorCounters } from './database.js';
import { openCollectorStore } from './open-store.js';
import { type ArrivedBatch, type CollectorStore, describeDatabase, type IngestResult } from './store.js';
import { GatewayRegistry, verifyBatch } from './verify.js';

export interface CollectorOptions {
  broker: BrokerOptions;
  prefix: string;
  /** An SQLite file, or a postgres:// URL (`collector.database`). */
  database: string;
  shareGroup?: string;
  /** Verifies every batch; null stores unsigned batches unchecked (development only). */
  registry: GatewayRegistry | null;
  /** The BlueTrace key (32 bytes): with it, the collector issues venues' temp IDs. */
  bluetraceKey?: Buffer;
  /** Encounters older than this many days are removed (whole days); 0 keeps everything. */
  retentionDays?: number;
  /** How often retention runs. */
  retentionIntervalMs?: number;
}

/** Batches per transaction at most: a backlog drained after an outage commits in steps. */
const MAX_GROUP_BATCHES = 1000;

export class Collector {
  readonly counters: CollectorCounters = {
    batchesStored: 0,
    batchesDuplicate: 0,
    batchesRejected: 0,
    batchesUnverified: 0,
    batchesOutOfSequence: 0,
    encountersStored: 0,
    encountersDuplicate: 0,
    acksSent: 0,
    tempIdBatchesIssued: 0,
    tempIdRequestsRefused: 0,
    commitFailures: 0,
    retentionDaysPurged: 0,
  };
  private opened: CollectorStore | null = null;
  private client: MqttClient | null = null;
  /** Verified batches waiting for the next group commit. */
  private arrived: ArrivedBatch[] = [];
  /** The commit loop while it runs: one transaction at a time, the next group gathers meanwhile. */
  private committing: Promise<void> | null = null;
  private retentionTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: CollectorOptions, private readonly log: Logger) {
    // Checked once here: a wrong key would otherwise fail every request in the message handler.
    if (options.bluetraceKey && options.bluetraceKey.length !== TEMPID_KEY_BYTES) throw new Error(`bluetraceKey: expected ${TEMPID_KEY_BYTES} bytes (AES-256-GCM)`);
  }

  /** The database, once `start()` has opened it. */
  get store(): CollectorStore {
    if (!this.opened) throw new Error('the collector is not started: its database opens in start()');
    return this.opened;
  }

  async start(): Promise<void> {
    this.opened = await openCollectorStore(this.options.database);
    this.log.info({ database: describeDatabase(this.options.database), kind: this.opened.kind }, 'collector database open');
    if (this.options.retentionDays) {
      void this.purge();
      this.retentionTimer = setInterval(() => void this.purge(), this.options.retentionIntervalMs ?? 3_600_000);
      this.retentionTimer.unref();
    }
    const client = connectClient(this.options.broker);
    this.client = client;
    const filter = collectorBatchFilter(this.options.prefix, this.options.shareGroup);
    client.on('message', (topic, payload) => {
      const asking = parseTempIdsRequestTopic(this.options.prefix, topic);
      if (asking) this.onTempIdRequest(asking.venue, asking.gateway, payload);
      else this.onBatch(topic, payload);
    });
    client.on('error', (err) => this.log.warn({ err: err.message }, 'broker error'));
    return new Promise((resolve) => {
      client.on('connect', () => {
        this.log.info({ filter }, 'collector connected');
        const filters = [filter, ...(this.options.bluetraceKey ? [tempIdsRequestFilter(this.options.prefix)] : [])];
        client.subscribe(filters, { qos: 1 }, (err) => {
          if (err) this.log.error({ err: err.message }, 'subscribe failed');
          resolve();
        });
      });
    });
  }

  private onTempIdRequest(venue: string, gateway: string, payload: Buffer): void {
    const registry = this.options.registry;
    try {
      registry?.reloadIfChanged();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'registry not reloaded; keeping the records already loaded');
    }
    const answer = answerTempIdRequest({ key: this.options.bluetraceKey!, registry }, venue, gateway, payload, Math.floor(Date.now() / 1000));
    if (!answer) return;
    if ('error' in answer) {
      this.counters.tempIdRequestsRefused++;
      this.log.warn({ venue, gateway, reason: answer.error }, 'temp ID request refused');
    } else {
      this.counters.tempIdBatchesIssued++;
      this.log.info({ venue, gateway, count: answer.tempIds.length }, 'temp IDs issued');
    }
    this.client?.publish(gatewayTopics(this.options.prefix, venue, gateway).tempIds, JSON.stringify(answer), { qos: 1, properties: { contentType: 'application/json' } });
  }

  private onBatch(topic: string, payload: Buffer): void {
    const where = parseBatchTopic(this.options.prefix, topic);
    let batch: Batch;
    try {
      if (!where) throw new WireFormatError('topic', `not <prefix>/<venue>/<gateway>/batch: ${topic}`);
      batch = decodeBatch(payload);
      if (batch.kind !== 'batch') throw new WireFormatError('kind', 'only "batch" belongs on a batch topic');
      if (batch.gateway !== where.gateway || batch.venue !== where.venue) {
        throw new WireFormatError('gw', `batch names ${batch.venue}/${batch.gateway} but came on ${where.venue}/${where.gateway}'s topic`);
      }
    } catch (err) {
      this.counters.batchesRejected++;
      this.log.warn({ topic, err: (err as Error).message }, 'batch rejected');
      return;
    }
    const verified = this.verify(batch);
    if (!verified.ok) {
      // Not acknowledged either: a real gateway whose record is missing keeps its batches until it is added.
      this.counters.batchesRejected++;
      this.counters.batchesUnverified++;
      this.log.warn({ topic, batch: batch.id, gateway: batch.gateway, reason: verified.reason }, 'batch refused');
      return;
    }
    // Stored with whatever else arrives in this turn of the event loop, or while the commit
    // before is in flight: one transaction and one sync for them all.
    this.arrived.push({ batch, signer: verified.signer });
    this.committing ??= this.commitLoop();
  }

  private async commitLoop(): Promise<void> {
    try {
      await new Promise((resolve) => setImmediate(resolve));
      while (this.arrived.length > 0) await this.commitArrived();
    } finally {
      this.committing = null;
    }
  }

  /** Commits the batches that arrived, then acknowledges them: an ack is sent only once durable. */
  private async commitArrived(): Promise<void> {
    const group = this.arrived.splice(0, MAX_GROUP_BATCHES);
    if (group.length === 0) return;
    let results: Array<IngestResult | Error>;
    try {
      results = await this.store.commit(group);
    } catch (err) {
      // Not acknowledged: the gateways keep them in their outboxes and send them again.
      this.counters.commitFailures++;
      this.log.error({ batches: group.length, err: (err as Error).message }, 'batches not stored');
      return;
    }
    const acks = new Map<string, string[]>();
    group.forEach(({ batch }, i) => {
      const result = results[i];
      if (result instanceof Error) {
        this.log.error({ batch: batch.id, err: result.message }, 'batch not stored');
        return;
      }
      if (result.outcome === 'out_of_sequence') {
        this.counters.batchesRejected++;
        this.counters.batchesOutOfSequence++;
        this.log.warn(
          { batch: batch.id, gateway: batch.gateway, seq: batch.seq, reason: `seq ${batch.seq} is already held by batch ${result.heldBy}: replayed or forged sequence` },
          'batch refused',
        );
        return;
      }
      if (result.outcome === 'duplicate') {
        this.counters.batchesDuplicate++;
        this.log.info({ batch: batch.id, gateway: batch.gateway, seq: batch.seq }, 'batch already stored (re-send or replay): acknowledged again, not stored twice');
      } else {
        this.counters.batchesStored++;
        this.counters.encountersStored += result.stored;
        this.counters.encountersDuplicate += batch.encounters.length - result.stored;
        this.log.debug({ batch: batch.id, gateway: batch.gateway, seq: batch.seq, stored: result.stored }, 'batch stored');
      }
      const topic = gatewayTopics(this.options.prefix, batch.venue, batch.gateway).ack;
      const ids = acks.get(topic);
      if (ids) ids.push(batch.id);
      else acks.set(topic, [batch.id]);
    });
    for (const [topic, ids] of acks) {
      this.client?.publish(topic, JSON.stringify({ v: WIRE_SCHEMA_VERSION, acks: ids }), { qos: 1, properties: { contentType: 'application/json' } }, (err) => {
        if (err) this.log.warn({ err: err.message }, 'ack publish failed; the gateway will re-send');
      });
      this.counters.acksSent += ids.length;
    }
  }

  private verify(batch: Batch): { ok: true; signer: Buffer | null } | { ok: false; reason: string } {
    const registry = this.options.registry;
    if (!registry) return { ok: true, signer: null };
    try {
      registry.reloadIfChanged();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'registry not reloaded; keeping the records already loaded');
    }
    return verifyBatch(batch, registry);
  }

  private async purge(): Promise<void> {
    try {
      const r = await this.store.purgeExpired(Date.now(), this.options.retentionDays!);
      this.counters.retentionDaysPurged += r.days;
      if (r.days > 0 || r.batchesDeleted > 0) this.log.info({ days: r.days, batches: r.batchesDeleted }, 'retention: expired encounters removed');
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'retention pass failed; it runs again in an hour');
    }
  }

  async stop(): Promise<void> {
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    this.retentionTimer = null;
    // What arrived is stored and acknowledged before the connection closes.
    const client = this.client;
    while (this.committing || this.arrived.length > 0) await (this.committing ??= this.commitLoop());
    this.client = null;
    if (client) await new Promise<void>((resolve) => client.end(false, () => resolve()));
    await this.opened?.close();
    this.opened = null;
    this.log.info('collector stopped');
  }
}
