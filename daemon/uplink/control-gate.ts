// Everything the backend tells this unit passes here first: signed by a backend key the unit
// trusts, meant for this unit, of the kind its topic carries, and (a request) fresh, with its
// answer going under the replies prefix. What fails is counted by reason and logged, throttled;
// nothing on the broker's word alone reaches the store or the temp-ID supply.
import { existsSync, readFileSync } from 'node:fs';
import type { WarningThrottle } from '../../core/log/index.js';
import { writeFileAtomic } from '../atomic-file.js';
import {
  CONTROL_REFUSALS, openControl, RequestWindow, type ControlKind, type ControlRefusal, type ControlRequest, type Opened, type TrustedKey,
} from '../../core/wire/index.js';
import type { ControlCounters } from '../../core/wire/status.js';

export interface ControlGateOptions {
  venue: string;
  gateway: string;
  /** The backend keys trusted now; replaced by setTrusted() when the backend rotates them. */
  trusted: readonly TrustedKey[];
  /** A request is accepted within this of the unit's clock, either way. */
  maxSkewMs: number;
  maxBytes: number;
  /** A request's `replyTo` must start with this (`<prefix>/replies/`). */
  repliesPrefix: string;
  now: () => number;
  clockSynced: () => boolean;
  /** Where the accepted requests' nonces are kept, so a restart does not let one be replayed; none: in memory only. */
  nonceFile?: string;
}

export class ControlGate {
  readonly counters: ControlCounters;
  private readonly window: RequestWindow;
  private trusted: readonly TrustedKey[];

  /** `warnings` is the uplink's, so its summaries are flushed when the uplink stops. */
  constructor(private readonly options: ControlGateOptions, private readonly warnings: WarningThrottle) {
    this.counters = {
      accepted: 0,
      refused: Object.fromEntries(CONTROL_REFUSALS.map((r) => [r, 0])) as Record<ControlRefusal, number>,
      lastRefusal: null,
      trustedKeys: options.trusted.length,
    };
    this.window = new RequestWindow(options.maxSkewMs, undefined, this.restoredNonces());
    this.trusted = options.trusted;
  }

  private restoredNonces(): Array<[string, number]> {
    const path = this.options.nonceFile;
    if (!path || !existsSync(path)) return [];
    try {
      const doc = JSON.parse(readFileSync(path, 'utf8')) as { seen?: unknown };
      if (!Array.isArray(doc.seen)) throw new Error('no "seen" list');
      return doc.seen.filter((e): e is [string, number] => Array.isArray(e) && typeof e[0] === 'string' && typeof e[1] === 'number');
    } catch (err) {
      // Said, not hidden: until the window has passed, a request replayed from before may be answered again (to the backend's own topic).
      this.warnings.warn('nonce_file_unreadable', { path, err: (err as Error).message }, 'the file of accepted request nonces is unreadable; starting with none');
      return [];
    }
  }

  private keepNonces(): void {
    const path = this.options.nonceFile;
    if (!path) return;
    try {
      writeFileAtomic(path, JSON.stringify({ v: 1, seen: this.window.entries() }));
    } catch (err) {
      this.warnings.warn('nonce_file_unwritable', { path, err: (err as Error).message }, 'the accepted request nonces could not be kept; a restart would forget them');
    }
  }

  /** From now on, these backend keys (a rotation the backend announced). */
  setTrusted(keys: readonly TrustedKey[]): void {
    this.trusted = keys;
    this.counters.trustedKeys = keys.length;
  }

  /** The message if it may be acted on; null (counted, logged) otherwise. */
  open<K extends Exclude<ControlKind, 'request'>>(bytes: Buffer, kind: K): Extract<Opened<K>, { ok: true }>['message'] | null {
    return this.openSigned(bytes, kind)?.message ?? null;
  }

  /** As open(), with the public key (raw) of the backend key that signed it. */
  openSigned<K extends Exclude<ControlKind, 'request'>>(bytes: Buffer, kind: K): { message: Extract<Opened<K>, { ok: true }>['message']; signer: Buffer } | null {
    const opened = openControl(bytes, kind, this.options, this.trusted, this.options.maxBytes);
    if (!opened.ok) return this.refuse(kind, opened.reason, opened.detail);
    this.counters.accepted++;
    const signer = this.trusted.find((k) => k.kid.toString('hex') === opened.kid)!.publicKey;
    return { message: opened.message, signer };
  }

  /**
   * A request if it may be answered. `answerable` is set when it was signed by a trusted key but
   * refused (stale, replayed): its `replyTo` is then the backend's own, and the refusal may go there.
   */
  openRequest(bytes: Buffer): { request: ControlRequest } | { refused: string; answerable: { replyTo: string; nonce?: string } | null } {
    const opened = openControl(bytes, 'request', this.options, this.trusted, this.options.maxBytes);
    if (!opened.ok) {
      this.refuse('request', opened.reason, opened.detail);
      // Signed by the backend but wrong (a bad field): the backend's tool hears why, under the replies prefix.
      const { replyTo, nonce } = (opened.signed ?? {}) as { replyTo?: unknown; nonce?: unknown };
      const answerable = typeof replyTo === 'string' && replyTo.startsWith(this.options.repliesPrefix) && !/[+#]/.test(replyTo)
        ? { replyTo, nonce: typeof nonce === 'string' && nonce.length <= 64 ? nonce : undefined }
        : null;
      return { refused: opened.detail, answerable };
    }
    const request = opened.message;
    if (!request.replyTo.startsWith(this.options.repliesPrefix)) {
      // Not answered at all: a signed request that names a topic outside the replies prefix is a
      // backend fault, and answering it there is what an attacker who got such a request would want.
      const detail = `replyTo: ${request.replyTo} is not under ${this.options.repliesPrefix}, where this unit answers`;
      this.refuse('request', 'badReplyTo', detail);
      return { refused: detail, answerable: null };
    }
    const fresh = this.window.check(request, this.options.now(), this.options.clockSynced());
    if (!fresh.ok) {
      this.refuse('request', fresh.reason, fresh.detail);
      return { refused: fresh.detail, answerable: { replyTo: request.replyTo, nonce: request.nonce } };
    }
    this.counters.accepted++;
    this.keepNonces();
    return { request };
  }

  private refuse(kind: ControlKind, reason: ControlRefusal, detail: string): null {
    this.counters.refused[reason]++;
    this.counters.lastRefusal = { at: this.options.now(), kind, reason, detail };
    this.warnings.warn(`control_${kind}_${reason}`, { kind, reason, detail }, `${kind} refused: not acted on`);
    return null;
  }
}
