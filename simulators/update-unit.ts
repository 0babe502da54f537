// What a simulated unit does with an update request: the real unit's rules (core/release/slots.ts:
// a trial whose starts are counted by the guard, the health gate, commit, roll back, versions
// refused once rolled back; the manifest checked as daemon/updater.ts checks it), kept in memory.
// The tarball is downloaded over HTTPS and hashed as it arrives (a simulated unit has no disk to
// unpack onto), and a "restart" reconnects its uplink reporting the version it runs. A version in
// `crashing` never starts, as a release that crashes at start: each start fails, the service
// starts it again after restartMs, and the guard takes the unit back after three.
import { createHash } from 'node:crypto';
import { get as httpsGet } from 'node:https';
import {
  beginTrial, commitTrial, compareVersions, emptySlotState, failTrial, guardBoot, openManifest, refuseRelease, releaseRefusal, type SlotState, trialRefusal,
} from '../core/release/index.js';
import type { Logger } from '../core/log/index.js';
import type { UpdateRequest, UpdateStatus } from '../core/wire/index.js';
import { fetchSmall, releaseUrlProblem } from '../daemon/release-download.js';

export interface SimulatedUpdaterOptions {
  /** The version the unit runs at first (committed). */
  version: string;
  releaseKeys: Buffer[];
  ca?: Buffer;
  /** Versions that crash at start on this unit. */
  crashing: ReadonlySet<string>;
  healthGateMs: number;
  /** The service's RestartSec: how long after a failed start the next one comes. */
  restartMs: number;
  /** Stops the unit (null: a start that crashed) or starts it running `version`. */
  restart: (version: string | null) => Promise<void>;
  /** Connected to its broker (the simulated radio and store are always well). */
  healthy: () => boolean;
  publishStatus: () => void;
  log: Logger;
}

/** The tarball's size and SHA-256 as it arrives, refused past `limit` bytes. */
function hashDownload(url: string, limit: number, ca: Buffer | undefined): Promise<{ bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsGet(url, { ...(ca ? { ca } : {}), timeout: 30_000 }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`${url}: HTTP ${res.statusCode}`));
      }
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > limit) res.destroy(new Error(`${url}: more than the ${limit} bytes the signed manifest names`));
        else hash.update(chunk);
      });
      res.on('end', () => (res.complete ? resolve({ bytes, sha256: hash.digest('hex') }) : reject(new Error(`${url}: cut short`))));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer within 30 s`)));
    req.on('error', reject);
  });
}

export class SimulatedUpdater {
  private state: SlotState;
  /** The version running now (null while a start crashed and the next is due). */
  running: string | null;
  private busy: { version: string; stage: 'downloading' | 'installing' | 'restarting' } | null = null;
  private gate: NodeJS.Timeout | null = null;
  private wait: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly options: SimulatedUpdaterOptions) {
    this.state = emptySlotState(options.version);
    this.running = options.version;
  }

  status(): UpdateStatus {
    const state = this.busy ? this.busy.stage : this.gate ? 'trial' : 'idle';
    return {
      state, running: this.running ?? this.state.committed ?? '', committed: this.state.committed,
      ...(this.busy ? { pending: { version: this.busy.version, bytes: 0, total: 0 } } : {}), last: this.state.history.at(-1) ?? null,
    };
  }

  /** As daemon/updater.ts: null when it is under way, or why it is refused now. */
  requested(req: UpdateRequest): string | null {
    if (this.busy || this.gate) return `version: ${this.busy?.version ?? this.running} is under way or on trial; ask again once it is done`;
    const url = releaseUrlProblem(req.manifest);
    if (url) return url;
    if (this.running && compareVersions(req.version, this.running) < 0 && !req.downgrade) return `version: ${req.version} is older than the running ${this.running} (say downgrade to install it)`;
    const refused = trialRefusal(this.state, req.version);
    if (refused) return refused;
    this.busy = { version: req.version, stage: 'downloading' };
    void this.take(req).catch((err: unknown) => this.refuse(req.version, (err as Error).message));
    return null;
  }

  stop(): void {
    this.stopped = true;
    if (this.gate) clearInterval(this.gate);
    if (this.wait) clearTimeout(this.wait);
  }

  private async take(req: UpdateRequest): Promise<void> {
    const o = this.options;
    const bytes = await fetchSmall(req.manifest, 64 * 1024, { ...(o.ca ? { ca: o.ca } : {}), idleTimeoutMs: 30_000 });
    const opened = openManifest(bytes, o.releaseKeys);
    if (!opened.ok) return this.refuse(req.version, opened.reason);
    const m = opened.manifest;
    if (m.version !== req.version) return this.refuse(req.version, `version: the manifest is of ${m.version}, the command named ${req.version}`);
    const refusal = releaseRefusal(m, { arch: process.arch, nodeAbi: process.versions.modules, version: this.running ?? '0.0.0' }, req.downgrade) ?? trialRefusal(this.state, m.version);
    if (refusal) return this.refuse(req.version, refusal);
    const got = await hashDownload(new URL(m.artifact.file, req.manifest).toString(), m.artifact.bytes, o.ca);
    if (got.bytes !== m.artifact.bytes || got.sha256 !== m.artifact.sha256) return this.refuse(m.version, 'artifact.sha256: the tarball downloaded is not the one the manifest names');
    this.busy = { version: m.version, stage: 'restarting' };
    this.state = beginTrial(this.state, m.version, Date.now());
    await this.boot();
  }

  private refuse(version: string, reason: string): void {
    this.busy = null;
    this.state = refuseRelease(this.state, version, reason.slice(0, 500), Date.now());
    this.options.publishStatus();
  }

  /** Starts as the service would: the guard first; a crashing version tries again after restartMs until the guard rolls it back. */
  private async boot(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const plan = guardBoot(this.state, Date.now());
      this.state = plan.state;
      const version = plan.run;
      if (version !== null && this.options.crashing.has(version)) {
        this.running = null;
        await this.options.restart(null);
        await new Promise<void>((r) => (this.wait = setTimeout(r, this.options.restartMs)));
        continue;
      }
      this.running = version;
      this.busy = null;
      await this.options.restart(version);
      if (plan.trial) this.startGate();
      else this.options.publishStatus();
      return;
    }
  }

  private startGate(): void {
    const since = Date.now();
    this.gate = setInterval(() => {
      if (this.options.healthy()) {
        this.endGate();
        this.state = commitTrial(this.state, Date.now());
        this.options.publishStatus();
      } else if (Date.now() - since >= this.options.healthGateMs) {
        this.endGate();
        this.state = failTrial(this.state, `not healthy within ${this.options.healthGateMs / 1000} s`, Date.now());
        void this.boot();
      }
    }, 500);
  }

  private endGate(): void {
    if (this.gate) clearInterval(this.gate);
    this.gate = null;
  }
}
