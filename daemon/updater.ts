// Software updates on the unit (docs/operating.md, "Releases"). A signed `update` request names a
// release's manifest URL and version; the unit fetches the manifest, checks its signature (a
// release key of update.releaseKeys, not the backend's), that it is for this architecture and Node
// ABI and not older unless a downgrade is asked for, downloads the tarball (resuming a cut), checks
// its size and SHA-256, unpacks it into releases/<version>, writes the trial down and moves
// `current`, then restarts. Nothing the running release uses changes before every check passed.
// A release on trial must pass the health gate within update.healthGateS or the unit goes back to
// the committed release by itself (the guard does it too when the new one cannot even start).
import { execFile } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  beginTrial, commitTrial, compareVersions, failTrial, openManifest, refuseRelease, releaseRefusal, type ReleaseManifest, type SlotState, trialRefusal,
} from '../core/release/index.js';
import type { Logger } from '../core/log/index.js';
import { systemTimers, type TimerHandle, type Timers } from '../core/time/index.js';
import type { UpdateRequest, UpdateStatus } from '../core/wire/index.js';
import { downloadResumable, fetchSmall, releaseUrlProblem, sha256File } from './release-download.js';
import { downloadsDir, pointLink, pruneReleases, readSlotState, releaseDir, releasesDir, writeSlotState } from './release-slots.js';

const run = promisify(execFile);
const MAX_MANIFEST_BYTES = 64 * 1024;

export interface UpdaterOptions {
  root: string;
  releaseKeys: Buffer[];
  ca?: Buffer;
  /** What this process is: its version, and the unit's architecture and Node ABI. */
  running: { version: string; arch: string; nodeAbi: string };
  /** The version this process runs from under `root` (runningRelease), or null: it runs from elsewhere and takes no release. */
  slot: string | null;
  healthGateMs: number;
  /** READY, broker connected, radio on, a store commit since the start. */
  healthy: () => boolean;
  /** A clean stop for a restart (exit 75). */
  restart: () => void;
  /** Something a status reports changed: publish one now. */
  onChange: () => void;
  timers?: Timers;
  log: Logger;
  /** Connections a download may take, resuming each time (tests lower it). */
  downloadTries?: number;
}

type Stage = 'downloading' | 'installing' | 'restarting';

export class Updater {
  private state: SlotState;
  /** This process runs the release on trial: it must pass the gate (and the store keeps what the committed release can run on). */
  readonly onTrial: boolean;
  private gate: TimerHandle | null = null;
  private busy: { version: string; stage: Stage; bytes: number; total: number } | null = null;
  private readonly timers: Timers;

  constructor(private readonly options: UpdaterOptions) {
    this.timers = options.timers ?? systemTimers;
    this.state = readSlotState(options.root).state;
    this.onTrial = options.slot !== null && this.state.trial?.version === options.slot;
  }

  start(): void {
    if (!this.onTrial) return;
    const since = this.timers.now();
    const gateMs = this.options.healthGateMs;
    this.options.log.warn({ version: this.options.slot, gateS: gateMs / 1000 }, 'release on trial: it must pass the health gate');
    this.gate = this.timers.setInterval(() => {
      if (this.options.healthy()) return this.passGate();
      if (this.timers.now() - since >= gateMs) this.failGate(`not healthy within ${gateMs / 1000} s (broker connected, radio on, a store commit)`);
    }, 500);
  }

  stop(): void {
    if (this.gate) this.timers.clearInterval(this.gate);
    this.gate = null;
  }

  status(): UpdateStatus {
    const o = this.options;
    const state: UpdateStatus['state'] = o.releaseKeys.length === 0 ? 'disabled' : o.slot === null ? 'unmanaged' : this.busy ? this.busy.stage : this.gate ? 'trial' : 'idle';
    return {
      state, running: o.running.version, committed: this.state.committed,
      ...(this.busy ? { pending: { version: this.busy.version, bytes: this.busy.bytes, total: this.busy.total } } : {}),
      last: this.state.history.at(-1) ?? null,
    };
  }

  /** A signed update request: null when it is under way (the answer says so), or why it is refused now. */
  requested(req: UpdateRequest): string | null {
    const o = this.options;
    if (o.releaseKeys.length === 0) return 'update.releaseKeys: empty: this unit takes no release over the air; add the release public key to its config (`vgw release key --show`)';
    if (o.slot === null) return `update.root: this unit does not run from a release under ${o.root} (it runs from a checkout or another folder); install a release there first (provisioning/install.sh --release)`;
    if (this.busy) return `version: ${this.busy.version} is being ${this.busy.stage === 'downloading' ? 'downloaded' : 'installed'}; ask again once it is done`;
    if (this.gate) return `version: ${o.slot} is on trial; ask again once it is committed`;
    const urlProblem = releaseUrlProblem(req.manifest);
    if (urlProblem) return urlProblem;
    if (compareVersions(req.version, o.running.version) < 0 && !req.downgrade) return `version: ${req.version} is older than the running ${o.running.version} (say downgrade to install it)`;
    const refused = trialRefusal(this.state, req.version);
    if (refused) return refused;
    this.busy = { version: req.version, stage: 'downloading', bytes: 0, total: 0 };
    void this.take(req).catch((err: unknown) => this.refuse(req.version, (err as Error).message));
    return null;
  }

  private async take(req: UpdateRequest): Promise<void> {
    const o = this.options;
    const fetchOpts = { ...(o.ca ? { ca: o.ca } : {}), idleTimeoutMs: 30_000 };
    const manifestBytes = await fetchSmall(req.manifest, MAX_MANIFEST_BYTES, fetchOpts);
    const opened = openManifest(manifestBytes, o.releaseKeys);
    if (!opened.ok) return this.refuse(req.version, opened.reason);
    const m: ReleaseManifest = opened.manifest;
    if (m.version !== req.version) return this.refuse(req.version, `version: the manifest is of ${m.version}, the command named ${req.version}`);
    const refusal = releaseRefusal(m, o.running, req.downgrade) ?? trialRefusal(this.state, m.version);
    if (refusal) return this.refuse(req.version, refusal);

    mkdirSync(downloadsDir(o.root), { recursive: true });
    const part = join(downloadsDir(o.root), `${m.artifact.file}.part`);
    const url = new URL(m.artifact.file, req.manifest).toString();
    this.busy = { version: m.version, stage: 'downloading', bytes: 0, total: m.artifact.bytes };
    o.onChange();
    o.log.info({ version: m.version, url, bytes: m.artifact.bytes }, 'release: downloading');
    let hashed = await this.download(url, part, m);
    if (hashed !== m.artifact.sha256) {
      // A power cut can leave garbage in the tail of what was kept: once more from the first byte.
      rmSync(part, { force: true });
      hashed = await this.download(url, part, m);
      if (hashed !== m.artifact.sha256) {
        rmSync(part, { force: true });
        return this.refuse(m.version, 'artifact.sha256: the tarball downloaded is not the one the manifest names (altered on the server or on the way)');
      }
    }
    this.busy = { ...this.busy, stage: 'installing' };
    o.onChange();
    await unpackRelease(o.root, m, part, manifestBytes);
    // The trial is written down before `current` moves: a cut between the two is mended by the guard.
    this.save(beginTrial(this.state, m.version, this.timers.now()));
    pointLink(o.root, 'current', m.version);
    rmSync(part, { force: true });
    this.busy = { ...this.busy, stage: 'restarting' };
    o.log.warn({ version: m.version, from: o.running.version }, 'release installed: restarting into it (on trial)');
    o.restart();
  }

  private async download(url: string, part: string, m: ReleaseManifest): Promise<string> {
    await downloadResumable(url, part, m.artifact.bytes, {
      ...(this.options.ca ? { ca: this.options.ca } : {}), idleTimeoutMs: 30_000, tries: this.options.downloadTries ?? 8, timers: this.timers,
      onBytes: (have) => {
        if (this.busy) this.busy.bytes = have;
      },
      onRetry: (err) => this.options.log.warn({ err: err.message }, 'release: download interrupted; resuming'),
    });
    return sha256File(part);
  }

  private refuse(version: string, reason: string): void {
    this.busy = null;
    this.save(refuseRelease(this.state, version, reason.slice(0, 500), this.timers.now()));
    this.options.log.warn({ version, reason }, 'release refused; nothing changed');
    this.options.onChange();
  }

  private passGate(): void {
    this.stop();
    this.save(commitTrial(this.state, this.timers.now()));
    pointLink(this.options.root, 'committed', this.options.slot!);
    const removed = pruneReleases(this.options.root, this.state);
    this.options.log.info({ version: this.options.slot, removed }, 'release committed: it passed the health gate');
    this.options.onChange();
  }

  private failGate(reason: string): void {
    this.stop();
    this.save(failTrial(this.state, reason, this.timers.now()));
    if (this.state.committed) pointLink(this.options.root, 'current', this.state.committed);
    this.options.log.error({ version: this.options.slot, reason, back: this.state.committed }, 'release rolled back: restarting into the committed one');
    this.options.restart();
  }

  private save(state: SlotState): void {
    this.state = state;
    writeSlotState(this.options.root, state);
  }
}

/** A checked release unpacked beside the others, flushed to the disk, then renamed into place: there whole or not at all. */
export async function unpackRelease(root: string, m: ReleaseManifest, tarball: string, manifestBytes: Buffer): Promise<void> {
  const staging = join(releasesDir(root), `.staging-${m.version}`);
  const target = releaseDir(root, m.version);
  rmSync(staging, { recursive: true, force: true });
  if (existsSync(target)) rmSync(target, { recursive: true, force: true }); // a copy from before: it cannot be trusted to be whole
  mkdirSync(staging, { recursive: true });
  try {
    await run('tar', ['-xzf', tarball, '-C', staging, '--no-same-owner']);
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw new Error(`artifact: the tarball does not unpack (${(err as Error).message.split('\n')[0]})`);
  }
  const unpacked = join(staging, `venue-gateway-${m.version}`);
  if (!existsSync(join(unpacked, 'dist/cli/main.js'))) {
    rmSync(staging, { recursive: true, force: true });
    throw new Error(`artifact: the tarball holds no venue-gateway-${m.version}/dist/cli/main.js`);
  }
  writeFileSync(join(unpacked, 'release.manifest.cose'), manifestBytes);
  await run('sync', ['-f', unpacked]); // its files on the disk before the rename makes it a release
  renameSync(unpacked, target);
  rmSync(staging, { recursive: true, force: true });
  const fd = openSync(releasesDir(root), 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
