// Whether a batch comes from the gateway it names: the collector checks each one against the
// registration records `vgw provision` printed, re-reading the registry when it changes so a
// newly provisioned unit is accepted without a restart.
import type { KeyObject } from 'node:crypto';
import { statSync } from 'node:fs';
import { acceptedKeys, type GatewayKeyRow, KEY_OVERLAP_MS, loadRegistry, publicKeyObject, RegistrationRecord, verifyBytes } from '../core/trust/index.js';
import { Batch, openUnitMessageByAny, signedBytes } from '../core/wire/index.js';

interface Entry {
  record: RegistrationRecord;
  /** The keys its messages may be signed with now (the registry's and its rotations', core/trust/gateway-key.ts): the current one first, its predecessor only during an overlap. */
  keys: Array<{ key: KeyObject; signer: Buffer }>;
  /** Raw public key in use: seq numbers are unique per gateway and key, so a re-provisioned unit starts afresh. */
  signer: Buffer;
  /** The rotation in use (0: the registry's key). */
  version: number;
}

export class GatewayRegistry {
  private records_ = new Map<string, RegistrationRecord>();
  private rotations = new Map<string, GatewayKeyRow[]>();
  private readonly keyObjects = new Map<string, KeyObject>();
  /** Each gateway's entry as last worked out, and until when it holds. */
  private readonly entries = new Map<string, { entry: Entry; until: number }>();
  private loadedMtimeMs = -1;

  constructor(private readonly path?: string, records: RegistrationRecord[] = [], private readonly now: () => number = Date.now) {
    this.set(records);
    this.reloadIfChanged();
  }

  private set(records: RegistrationRecord[]): void {
    this.records_ = new Map(records.map((r) => [r.gateway, r]));
    this.entries.clear();
  }

  /** A broken edit of the registry keeps the records already loaded; the error is thrown to be logged. */
  reloadIfChanged(): void {
    if (!this.path) return;
    const mtime = statSync(this.path).mtimeMs;
    if (mtime === this.loadedMtimeMs) return;
    this.loadedMtimeMs = mtime;
    this.set(loadRegistry(this.path));
  }

  /** The gateways' rotated keys as the database holds them (every collector reads them again now and then). */
  setRotations(rows: readonly GatewayKeyRow[]): void {
    const next = new Map<string, GatewayKeyRow[]>();
    for (const row of rows) next.set(row.gateway, [...(next.get(row.gateway) ?? []), row]);
    this.rotations = next;
    this.entries.clear();
  }

  /** One rotation registered here: in effect at once, before the next reading of the database. */
  addRotation(row: GatewayKeyRow): void {
    const rows = (this.rotations.get(row.gateway) ?? []).filter((r) => r.key !== row.key);
    this.rotations.set(row.gateway, [...rows, row]);
    this.entries.delete(row.gateway);
  }

  /** Whether `signer` of `gateway` is a rotated key seen in use for the first time (the database is then told). */
  firstUse(gateway: string, signer: Buffer, at: number): boolean {
    const row = this.rotations.get(gateway)?.find((r) => r.key === signer.toString('hex'));
    if (!row || row.firstUsedAt !== null) return false;
    row.firstUsedAt = at;
    this.entries.delete(gateway);
    return true;
  }

  private keyObject(hex: string): KeyObject {
    let key = this.keyObjects.get(hex);
    if (!key) {
      key = publicKeyObject(Buffer.from(hex, 'hex'));
      this.keyObjects.set(hex, key);
    }
    return key;
  }

  lookup(gateway: string): Entry | undefined {
    const now = this.now();
    const cached = this.entries.get(gateway);
    if (cached && now < cached.until) return cached.entry;
    const record = this.records_.get(gateway);
    if (!record) return undefined;
    const rows = this.rotations.get(gateway) ?? [];
    const chain = acceptedKeys(record.signingKey.toLowerCase(), rows, now);
    const entry = {
      record,
      keys: [...chain.keys].reverse().map((hex) => ({ key: this.keyObject(hex), signer: Buffer.from(hex, 'hex') })),
      signer: Buffer.from(chain.current, 'hex'),
      version: chain.version,
    };
    // Until an overlap ends, when the chain must be worked out again.
    const until = Math.min(...rows.map((r) => (r.firstUsedAt === null ? Infinity : r.firstUsedAt + KEY_OVERLAP_MS)).filter((t) => t > now));
    this.entries.set(gateway, { entry, until });
    return entry;
  }

  /** Every registered gateway's record. */
  records(): RegistrationRecord[] {
    return [...this.records_.values()];
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
  const sig = batch.sig;
  if (!sig) return { ok: false, code: 'unsigned', reason: `unsigned batch: gateway "${batch.gateway}" must sign every batch (is its secrets file configured?)` };
  const data = signedBytes(batch, batch.hash);
  const by = entry.keys.find((k) => verifyBytes(k.key, data, sig));
  if (by) return { ok: true, signer: by.signer };
  return { ok: false, code: 'bad_signature', reason: `signature does not verify with the registered key of "${batch.gateway}": forged or altered batch` };
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
): { ok: true; doc: unknown; json: Buffer; signer: Buffer | null } | { ok: false; code: UnitMessageRefusal; reason: string } {
  let keys: Buffer[] | null = null;
  if (registry) {
    const entry = registry.lookup(gateway);
    if (!entry) return { ok: false, code: 'unregistered', reason: `gateway "${gateway}" is not registered` };
    if (entry.record.venue !== venue) return { ok: false, code: 'wrong_venue', reason: `gateway "${gateway}" is registered at venue "${entry.record.venue}", not "${venue}"` };
    keys = entry.keys.map((k) => k.signer);
  }
  const opened = openUnitMessageByAny(payload, keys);
  if (!opened.ok) return { ok: false, code: opened.reason === 'badSignature' ? 'bad_signature' : opened.reason, reason: opened.detail };
  return { ok: true, doc: opened.doc, json: opened.json, signer: opened.signer && Buffer.from(opened.signer) };
}
