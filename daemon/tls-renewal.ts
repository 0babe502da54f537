// The unit renews its TLS client certificate before it expires (docs/operating.md, "Certificates"):
// a new P-256 key made here, a CSR for it (openssl, as provisioning/tls/certs.sh makes them) sent
// signed with the unit's identity key, the backend's signed answer checked (for this key, this
// gateway, this CA, valid now), then a restart with it on trial: kept once the broker took it,
// otherwise the unit returns to what it had. The state is one file beside the database, mode 0600
// (it holds private keys), replaced whole: a power cut leaves the old state or the new.
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ulid } from 'ulid';
import { besideDatabase, type Config } from '../core/config/index.js';
import type { Logger } from '../core/log/index.js';
import type { BrokerOptions } from '../core/mqtt/index.js';
import { systemTimers, type TimerHandle, type Timers } from '../core/time/index.js';
import {
  bootCredentials, certificateNotAfter, checkIssued, emptyRenewalState, type RenewalOutcome, type RenewalState, renewalDue,
} from '../core/trust/index.js';
import type { ControlCertificate } from '../core/wire/index.js';
import { writeFileAtomic } from './atomic-file.js';

export function renewalStatePath(config: Pick<Config, 'store'>): string {
  return besideDatabase(config, 'tls-renewal.json');
}

function readState(path: string, gateway: string): { state: RenewalState; problem: string | null } {
  if (!existsSync(path)) return { state: emptyRenewalState(gateway), problem: null };
  try {
    const state = JSON.parse(readFileSync(path, 'utf8')) as RenewalState;
    if (state?.v !== 1) throw new Error('not a certificate renewal state (v 1)');
    if (state.gateway !== gateway) throw new Error(`it holds ${JSON.stringify(state.gateway)}'s certificates, not "${gateway}"'s`);
    return { state, problem: null };
  } catch (err) {
    return { state: emptyRenewalState(gateway), problem: (err as Error).message };
  }
}

/** What a start runs with: the broker options (renewed credentials in them when those are used) and the state carried on. */
export interface TlsStart {
  broker: BrokerOptions;
  state: RenewalState;
  use: 'trial' | 'renewed' | 'file' | 'none';
  /** The certificate in use: when it expires (unix ms). */
  notAfter: number | null;
  path: string;
}

/** When the file's certificate expires, or null when it cannot be read (tlsOptions says why at start). */
function fileNotAfter(certFile: string): number | null {
  try {
    return certificateNotAfter(readFileSync(certFile));
  } catch {
    return null;
  }
}

/** At every start: which certificate the unit connects with, a trial's start counted on disk first. */
export function prepareTlsStart(config: Config, broker: BrokerOptions, log: Logger, now = Date.now()): TlsStart {
  const path = renewalStatePath(config);
  const gateway = config.gateway?.id ?? '';
  if (!broker.cert) return { broker, state: emptyRenewalState(gateway), use: 'none', notAfter: null, path };
  const { state: read, problem } = readState(path, gateway);
  if (problem) log.error({ path, err: problem }, 'certificate renewal state unreadable; using broker.cert');
  const fromFile = fileNotAfter(broker.cert);
  const plan = bootCredentials(read, fromFile, now);
  if (plan.state !== read) writeFileAtomic(path, JSON.stringify(plan.state));
  if (plan.state.last?.outcome === 'rolledBack' && read.trial) log.error({ reason: plan.state.last.reason }, 'renewed certificate given up: back to the one before');
  if (!plan.credentials) return { broker, state: plan.state, use: 'file', notAfter: fromFile, path };
  return { broker: { ...broker, renewed: { certPem: plan.credentials.certPem, keyPem: plan.credentials.keyPem } }, state: plan.state, use: plan.use, notAfter: plan.credentials.notAfter, path };
}

/** The certificate a start would connect with, read only (for `vgw doctor`): a renewed one, or null for broker.cert's file. */
export function renewedInUse(config: Config, now = Date.now()): { certPem: string; keyPem: string; use: 'trial' | 'renewed' } | null {
  if (!config.broker.cert) return null;
  const { state } = readState(renewalStatePath(config), config.gateway?.id ?? '');
  const plan = bootCredentials(state, fileNotAfter(config.broker.cert), now);
  return plan.credentials && plan.use !== 'file' ? { certPem: plan.credentials.certPem, keyPem: plan.credentials.keyPem, use: plan.use } : null;
}

/** A CSR for `keyPem` whose subject is CN=`gateway`, made by openssl from a private copy of the key that is removed at once. */
async function certificateRequest(keyPem: string, gateway: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'vgw-csr-'));
  try {
    const keyFile = join(dir, 'key.pem');
    writeFileSync(keyFile, keyPem, { mode: 0o600 });
    return await openssl(['req', '-new', '-key', keyFile, '-subj', `/CN=${gateway}`, '-sha256']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function openssl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => reject(new Error(`openssl: ${e.message} (the openssl package makes certificate requests)`)));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`openssl ${args[0]}: exit ${code}: ${err.trim()}`))));
  });
}

export interface TlsRenewalOptions {
  start: TlsStart;
  gateway: string;
  /** The unit's CA (broker.ca), which a renewed certificate must be issued by. */
  caPem: string | null;
  renewBeforeDays: number;
  /** How long a certificate on trial has to reach the broker. */
  healthGateMs: number;
  /** Sends the signed request; false when not connected (asked again at the next check). */
  request: (id: string, csr: string) => boolean;
  connected: () => boolean;
  /** A clean stop for a restart (exit 75); absent: the unit cannot switch by itself, so it does not ask. */
  restart?: () => void;
  /** How often the certificate's age is checked, and an unanswered request repeated. */
  checkEveryMs?: number;
  timers?: Timers;
  log: Logger;
}

export class TlsRenewal {
  private state: RenewalState;
  private timer: TimerHandle | null = null;
  private firstCheck: TimerHandle | null = null;
  private gate: TimerHandle | null = null;
  private asking = false;
  private restarting = false;
  private readonly timers: Timers;
  /** The certificate in use: which, and when it expires. */
  private use: TlsStart['use'];
  private notAfter: number | null;

  constructor(private readonly options: TlsRenewalOptions) {
    this.state = options.start.state;
    this.use = options.start.use;
    this.notAfter = options.start.notAfter;
    this.timers = options.timers ?? systemTimers;
  }

  /** For the status: which certificate is in use and what became of the last renewal. */
  status(): { using: TlsStart['use']; last: RenewalOutcome | null } {
    return { using: this.use, last: this.state.last };
  }

  start(): void {
    const { log } = this.options;
    if (this.use === 'none') return;
    if (this.use === 'trial') {
      const since = this.timers.now();
      log.warn('renewed certificate on trial: it must reach the broker');
      this.gate = this.timers.setInterval(() => {
        if (this.options.connected()) return this.passGate();
        if (this.timers.now() - since >= this.options.healthGateMs) this.failGate(`the broker did not take it within ${this.options.healthGateMs / 1000} s`);
      }, 500);
      return;
    }
    if (!this.options.restart) return;
    const every = this.options.checkEveryMs ?? 3_600_000;
    this.timer = this.timers.setInterval(() => void this.check(), every);
    // the first check once the broker had a moment to connect
    this.firstCheck = this.timers.setTimeout(() => void this.check(), 2000);
  }

  stop(): void {
    this.timers.clearInterval(this.timer);
    this.timers.clearInterval(this.gate);
    this.timers.clearTimeout(this.firstCheck);
    this.timer = null;
    this.firstCheck = null;
    this.gate = null;
  }

  /** Asks for a certificate when the one in use is due (a new key and request the first time; the same request again later). */
  async check(): Promise<void> {
    const { log } = this.options;
    const now = this.timers.now();
    const notAfter = this.notAfter;
    if (this.asking || notAfter === null || !renewalDue(this.state, notAfter, now, this.options.renewBeforeDays, 0)) return;
    if (!this.options.connected()) return;
    this.asking = true;
    try {
      let pending = this.state.pending;
      if (!pending) {
        const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
        const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
        pending = { id: ulid(now), keyPem, csrPem: await certificateRequest(keyPem, this.options.gateway), requestedAt: now };
        this.save({ ...this.state, pending, last: { at: now, outcome: 'requested' } });
      }
      if (this.options.request(pending.id, pending.csrPem)) log.warn({ notAfter: new Date(notAfter).toISOString(), request: pending.id }, 'certificate expires soon: a new one asked for');
    } catch (err) {
      log.error({ err: (err as Error).message }, 'certificate renewal not asked for; trying again at the next check');
    } finally {
      this.asking = false;
    }
  }

  /** The backend's signed answer, from the uplink. */
  answered(message: ControlCertificate): void {
    const pending = this.state.pending;
    const now = this.timers.now();
    if (!pending || message.id !== pending.id || this.state.trial) return; // not the outstanding request: nothing to do
    if ('error' in message) {
      this.save({ ...this.state, pending: null, last: { at: now, outcome: 'refused', reason: message.error } });
      this.options.log.error({ reason: message.error }, 'certificate renewal refused by the backend; asking again at the next check');
      return;
    }
    const issued = checkIssued(message.certificate, pending.keyPem, this.options.gateway, this.options.caPem, now);
    if (!issued.ok) {
      this.save({ ...this.state, pending: null, last: { at: now, outcome: 'refused', reason: issued.reason } });
      this.options.log.error({ reason: issued.reason }, 'renewed certificate refused; asking again at the next check');
      return;
    }
    this.save({ ...this.state, pending: null, trial: { ...issued.credentials, boots: 0 } });
    this.options.log.warn({ notAfter: new Date(issued.credentials.notAfter).toISOString() }, 'renewed certificate received: restarting with it');
    this.restartOnce();
  }

  private passGate(): void {
    this.stop();
    const trial = this.state.trial;
    if (!trial) return;
    const { boots: _boots, ...credentials } = trial;
    this.save({ ...this.state, renewed: credentials, trial: null, last: { at: this.timers.now(), outcome: 'renewed' } });
    this.options.log.info({ notAfter: new Date(trial.notAfter).toISOString() }, 'renewed certificate in use: the broker took it');
    this.use = 'renewed';
    this.notAfter = trial.notAfter;
    this.start(); // checks on from here (due again in years)
  }

  private failGate(reason: string): void {
    this.stop();
    this.save({ ...this.state, trial: null, last: { at: this.timers.now(), outcome: 'rolledBack', reason } });
    this.options.log.error({ reason }, 'renewed certificate given up: restarting with the one before');
    this.restartOnce();
  }

  private restartOnce(): void {
    if (this.restarting) return;
    this.restarting = true;
    this.options.restart?.();
  }

  private save(state: RenewalState): void {
    this.state = state;
    writeFileAtomic(this.options.start.path, JSON.stringify(state), 0o600);
  }
}
