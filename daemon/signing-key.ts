// The unit's signing key, rotated when the backend orders it (docs/operating.md, "Gateway keys"):
// a new key made here and kept beside the database (mode 0600, replaced whole) before it is asked
// for, the request re-sent until the backend answers, and only on the backend's signed word that
// it registered the key does the unit switch to it, by a clean restart (everything that signs
// starts with the new key; the outbox's batches are signed as they are sent, so they go out under
// it). A power cut at any step leaves the key in use or the new one, both known to the backend.
import { existsSync, readFileSync } from 'node:fs';
import { ulid } from 'ulid';
import { besideDatabase, type Config } from '../core/config/index.js';
import type { Logger } from '../core/log/index.js';
import { systemTimers, type TimerHandle, type Timers } from '../core/time/index.js';
import { newSigningSeed, onSigningKeyMessage, signBytes, type SigningKeyState, signingKeyFromSeed, signingSeedAtStart } from '../core/trust/index.js';
import { type ControlSigningKey, signingKeyProofBytes } from '../core/wire/index.js';
import { writeFileAtomic } from './atomic-file.js';

/** How often a pending key is asked for again while no answer came. */
const REQUEST_RETRY_MS = 300_000;

export function signingKeyStatePath(config: Pick<Config, 'store'>): string {
  return besideDatabase(config, 'signing-key.json');
}

const publicOf = (seed: string): string => signingKeyFromSeed(Buffer.from(seed, 'hex')).publicKey.toString('hex');

function readState(path: string): { held: SigningKeyState | null; problem: string | null } {
  if (!existsSync(path)) return { held: null, problem: null };
  try {
    const held = JSON.parse(readFileSync(path, 'utf8')) as SigningKeyState;
    if (held?.v !== 1 || typeof held.version !== 'number') throw new Error('not a signing key state (v 1)');
    return { held, problem: null };
  } catch (err) {
    return { held: null, problem: (err as Error).message };
  }
}

/** The seed a start signs with, and the state the concern carries on with. */
export function prepareSigningKey(config: Config, gateway: string, provisionedSeed: string, log: Logger): { seed: string; state: SigningKeyState; path: string } {
  const path = signingKeyStatePath(config);
  const { held, problem } = readState(path);
  // Loud: the backend may have moved on to a rotated key, whose batches it alone accepts.
  if (problem) log.error({ path, err: problem }, "signing key state unreadable; signing with the secrets file's key (the backend still accepts it only if no rotation was completed)");
  return { ...signingSeedAtStart(held, gateway, provisionedSeed), path };
}

/** The public key the unit signs with (its rotated one, if any): what its answers verify with, for the CLI on the unit. */
export function signingPublicKeyInUse(config: Config, gateway: string, provisionedSeed: string): Buffer {
  const { seed } = signingSeedAtStart(readState(signingKeyStatePath(config)).held, gateway, provisionedSeed);
  return signingKeyFromSeed(Buffer.from(seed, 'hex')).publicKey;
}

export interface SigningKeyRotationOptions {
  start: { seed: string; state: SigningKeyState; path: string };
  venue: string;
  gateway: string;
  /** Publishes the request (signed with the key in use); false when not connected. */
  request: (id: string, version: number, key: string, pop: string) => boolean;
  /** A clean restart: the process starts again with the new key. */
  restart: () => void;
  /** The status goes out at once when something changed. */
  onChange: () => void;
  log: Logger;
  timers?: Timers;
}

export class SigningKeyRotation {
  private state: SigningKeyState;
  private readonly currentPublic: string;
  private readonly timers: Timers;
  private timer: TimerHandle | null = null;
  private lastAskedAt = -Infinity;
  private restarting = false;

  constructor(private readonly options: SigningKeyRotationOptions) {
    this.state = options.start.state;
    this.currentPublic = publicOf(options.start.seed);
    this.timers = options.timers ?? systemTimers;
  }

  status(): { version: number; key: string; pending: number | null; last: SigningKeyState['last'] } {
    return { version: this.state.version, key: this.currentPublic, pending: this.state.pending?.version ?? null, last: this.state.last };
  }

  start(): void {
    this.timer = this.timers.setInterval(() => this.askIfDue(), 10_000);
  }

  stop(): void {
    this.timers.clearInterval(this.timer);
    this.timer = null;
  }

  /** A signed message on `<base>/key`: an order, an acceptance, or a refusal. */
  received(message: ControlSigningKey): void {
    const step = onSigningKeyMessage(this.state, message, this.currentPublic, publicOf, () => newSigningSeed().toString('hex'), () => ulid(this.timers.now()), this.timers.now());
    if (step.kind === 'none') return;
    // Kept before anything leaves: a key asked for is never one the unit could lose.
    this.keep(step.state);
    if (step.kind === 'request') {
      this.options.log.warn({ version: step.state.pending!.version }, 'signing key rotation ordered: a new key made, asking the backend to register it');
      this.ask();
    } else if (step.kind === 'refused') {
      this.options.log.error({ version: message.version, reason: step.reason }, 'signing key rotation refused');
      this.options.onChange();
    } else if (!this.restarting) {
      this.restarting = true;
      this.options.log.warn({ version: step.state.version }, 'signing key rotated: the backend registered the new key; restarting to sign with it');
      this.options.restart();
    }
  }

  private keep(state: SigningKeyState): void {
    writeFileAtomic(this.options.start.path, JSON.stringify(state));
    this.state = state;
  }

  private askIfDue(): void {
    if (this.state.pending && this.timers.now() - this.lastAskedAt >= REQUEST_RETRY_MS) this.ask();
  }

  private ask(): void {
    const pending = this.state.pending;
    if (!pending) return;
    const key = publicOf(pending.seed);
    const proof = signingKeyProofBytes(this.options.venue, this.options.gateway, pending.version, this.currentPublic, key);
    const pop = signBytes(signingKeyFromSeed(Buffer.from(pending.seed, 'hex')), proof).toString('hex');
    if (this.options.request(pending.id, pending.version, key, pop)) this.lastAskedAt = this.timers.now();
  }
}
