// The backend keys this unit trusts, rotated by the backend (docs/protocol.md, "Backend keys"):
// the set provisioned in the secrets file until the backend announces another, signed with a key
// the unit trusts, that keeps the signing key; then that set, at once (the control gate is told)
// and from every start on, kept beside the database and replaced whole. A technician who writes
// new backendKeys into the secrets file (`vgw provision`) starts it afresh from those.
import { existsSync, readFileSync } from 'node:fs';
import { besideDatabase, type Config } from '../core/config/index.js';
import type { Logger } from '../core/log/index.js';
import { announceKeys, type BackendKeysState, trustedAtStart } from '../core/trust/index.js';
import { type ControlTrust, trustedKey, type TrustedKey } from '../core/wire/index.js';
import { writeFileAtomic } from './atomic-file.js';

export function backendKeysPath(config: Pick<Config, 'store'>): string {
  return besideDatabase(config, 'backend-keys.json');
}

/** The keys a start trusts, and the state the concern carries on with. */
export function prepareBackendKeys(config: Config, gateway: string, provisioned: readonly string[], log: Logger): { keys: TrustedKey[]; state: BackendKeysState; path: string } {
  const path = backendKeysPath(config);
  let held: BackendKeysState | null = null;
  if (existsSync(path)) {
    try {
      held = JSON.parse(readFileSync(path, 'utf8')) as BackendKeysState;
      if (held?.v !== 1 || !Array.isArray(held.keys)) throw new Error('not a backend keys state (v 1)');
    } catch (err) {
      log.error({ path, err: (err as Error).message }, "backend keys state unreadable; trusting the secrets file's backendKeys");
      held = null;
    }
  }
  const { keys, state } = trustedAtStart(held, gateway, provisioned);
  return { keys: keys.map((k) => trustedKey(Buffer.from(k, 'hex'))), state, path };
}

export class BackendKeys {
  private state: BackendKeysState;

  constructor(
    start: { state: BackendKeysState; path: string },
    private readonly apply: (keys: TrustedKey[]) => void,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    private readonly path = start.path,
  ) {
    this.state = start.state;
  }

  status(): { version: number; keys: string[]; last: BackendKeysState['last'] } {
    return { version: this.state.version, keys: this.state.keys.map((k) => trustedKey(Buffer.from(k, 'hex')).kid.toString('hex')), last: this.state.last };
  }

  /** A signed announcement from the uplink: `signer` is the raw public key that signed it. */
  announced(message: ControlTrust, signer: Buffer): boolean {
    const verdict = announceKeys(this.state, message.version, message.keys, signer.toString('hex'), this.now());
    if (verdict.kind === 'old') return false;
    this.state = verdict.state;
    writeFileAtomic(this.path, JSON.stringify(this.state));
    if (verdict.kind === 'refused') {
      this.log.error({ version: message.version, reason: verdict.reason }, 'backend keys announcement refused');
      return true;
    }
    this.apply(this.state.keys.map((k) => trustedKey(Buffer.from(k, 'hex'))));
    this.log.warn({ version: message.version, keys: this.status().keys }, 'backend keys rotated: trusting the announced set');
    return true;
  }
}
