// Whether a batch comes from the gateway it names: the collector checks each one against the
// registration records `vgw provision` printed, re-reading the registry when it changes so a
// newly provisioned unit is accepted without a restart.
import type { KeyObject } from 'node:crypto';
import { statSync } from 'node:fs';
import { loadRegistry, publicKeyObject, RegistrationRecord, verifyBytes } from '../core/trust/index.js';
import { Batch, openUnitMessage, signedBytes } from '../core/wire/index.js';

interface Entry {
  record: RegistrationRecord;
  key: KeyObject;
  /** Raw public key: seq numbers are unique per gateway and key, so a re-provisioned unit starts afresh. */
  signer: Buffer;
}

export class GatewayRegistry {
  private entries = new Map<string, Entry>();
  private loadedMtimeMs = -1;

  constructor(private readonly path?: string, records: RegistrationRecord[] = []) {
    this.set(records);
    this.reloadIfChanged();
  }

  private set(records: RegistrationRecord[]): void {
    const next = new Map<string, Entry>();
    for (const record of records) {
      const signer = Buffer.from(record.signingKey, 'hex');
      next.set(record.gateway, { record, key: publicKeyObject(signer), signer });
    }
    this.entries = next;
  }

  /** A broken edit of the registry keeps the records already loaded; the error is thrown to be logged. */
  reloadIfChanged(): void {
    if (!this.path) return;
    const mtime = statSync(this.path).mtimeMs;
    if (mtime === this.loadedMtimeMs) return;
    this.loadedMtimeMs = mtime;
    this.set(loadRegistry(this.path));
  }

  lookup(gateway: string): Entry | undefined {
    return this.entries.get(gateway);
  }

  /** Every registered gateway's record. */
  records(): RegistrationRecord[] {
    return [...this.entries.values()].map((e) => e.record);
  }
}

/** Why a batch was refused, as the collector's metrics count it (refusals_total{reason}). */
export type RefusalCode = 'malformed' | 'unregistered' | 'wrong_venue' | 'unsigned' | 'bad_signature' | 'out_of_sequence';

export type Verification = { ok: true; signer: Buffer } | { ok: false; code: RefusalCode; reason: string };

/** Checks who sent a batch; the reason names what is wrong and what would fix it. */
export function verifyBatch(batch: Batch, registry: GatewayRegistry): Verification {
  const entry = registry.lookup(batch.gateway);
  if (!entry) return { ok: false, code: 'unregistered', reason: `gateway "${batch.gateway}" is not registered: add its registration record (\`vgw provision\` prints it) to the collector's registry` };
  if (entry.record.venue !== batch.venue) {
    return { ok: false, code: 'wrong_venue', reason: `gateway "${batch.gateway}" is registered at venue "${entry.record.venue}", not "${batch.venue}"` };
  }
  if (!batch.sig) return { ok: false, code: 'unsigned', reason: `unsigned batch: gateway "${batch.gateway}" must sign every batch (is its secrets file configured?)` };
  if (!verifyBytes(entry.key, signedBytes(batch, batch.hash), batch.sig)) {
    return { ok: false, code: 'bad_signature', reason: `signature does not verify with the registered key of "${batch.gateway}": forged or altered batch` };
  }
  return { ok: true, signer: entry.signer };
}

/** Why a status or temp-ID request was refused (unit_message_refusals_total{reason}). */
export const UNIT_MESSAGE_REFUSALS = ['unregistered', 'wrong_venue', 'unsigned', 'malformed', 'bad_signature'] as const;
export type UnitMessageRefusal = (typeof UNIT_MESSAGE_REFUSALS)[number];

/**
 * The JSON of a status or temp-ID request on the topic of `venue`/`gateway`, if that gateway's
 * registered key signed it. Without a registry (a development collector) it is read unchecked.
 */
export function openGatewayMessage(
  registry: GatewayRegistry | null, venue: string, gateway: string, payload: Buffer,
): { ok: true; doc: unknown; json: Buffer } | { ok: false; code: UnitMessageRefusal; reason: string } {
  let key: Buffer | null = null;
  if (registry) {
    const entry = registry.lookup(gateway);
    if (!entry) return { ok: false, code: 'unregistered', reason: `gateway "${gateway}" is not registered` };
    if (entry.record.venue !== venue) return { ok: false, code: 'wrong_venue', reason: `gateway "${gateway}" is registered at venue "${entry.record.venue}", not "${venue}"` };
    key = entry.signer;
  }
  const opened = openUnitMessage(payload, key);
  if (!opened.ok) return { ok: false, code: opened.reason === 'badSignature' ? 'bad_signature' : opened.reason, reason: opened.detail };
  return { ok: true, doc: opened.doc, json: opened.json };
}
