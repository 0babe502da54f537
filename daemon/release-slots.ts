// The install root on disk (docs/operating.md, "Releases"): releases/<version> side by side, the
// `current` link the service starts and the `committed` link its guard runs from, and
// update-state.json, which the links follow (core/release/slots.ts). Every change is a file
// replaced atomically or a link renamed over the old one, so a power cut leaves the old or the new,
// and the guard puts the links right at the next start.
import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { emptySlotState, guardBoot, type GuardPlan, parseSlotState, releasesKept, type SlotState } from '../core/release/index.js';
import { projectRoot } from '../core/software/index.js';
import { writeFileAtomic } from './atomic-file.js';

export const releasesDir = (root: string) => join(root, 'releases');
export const releaseDir = (root: string, version: string) => join(root, 'releases', version);
export const downloadsDir = (root: string) => join(root, 'downloads');
const statePath = (root: string) => join(root, 'update-state.json');

/** The version a link names (releases/<version>), or null without one. */
export function linkedVersion(root: string, name: 'current' | 'committed'): string | null {
  try {
    return basename(readlinkSync(join(root, name)));
  } catch {
    return null;
  }
}

/**
 * The state, or one made from the links when there is none (a first install, or a file that no
 * longer reads: `problem` says so, and the unit goes on with the release it was running).
 */
export function readSlotState(root: string): { state: SlotState; problem: string | null } {
  const fromLinks = () => emptySlotState(linkedVersion(root, 'committed') ?? linkedVersion(root, 'current'));
  if (!existsSync(statePath(root))) return { state: fromLinks(), problem: null };
  const state = parseSlotState(readFileSync(statePath(root), 'utf8'));
  return state ? { state, problem: null } : { state: fromLinks(), problem: `${statePath(root)} is not an update state (v 1); going on from the links` };
}

export function writeSlotState(root: string, state: SlotState): void {
  writeFileAtomic(statePath(root), JSON.stringify(state), 0o644);
}

/** Points `name` at releases/<version>: a new link renamed over the old one (relative, so a staged root works). */
export function pointLink(root: string, name: 'current' | 'committed', version: string): void {
  if (linkedVersion(root, name) === version) return;
  const tmp = join(root, `.${name}.new`);
  rmSync(tmp, { force: true });
  symlinkSync(join('releases', version), tmp);
  renameSync(tmp, join(root, name));
}

/**
 * What the service's ExecStartPre runs, from the committed release, before every start: the start
 * of a trial counted (a crash loop rolls it back), and the links made to say what the state says.
 */
export function guard(root: string, now: number): GuardPlan & { problem: string | null } {
  const { state, problem } = readSlotState(root);
  const plan = guardBoot(state, now);
  if (plan.run !== null && !existsSync(join(releaseDir(root, plan.run), 'dist/cli/main.js'))) {
    throw new Error(`release ${plan.run} is not installed under ${releasesDir(root)}: install a release (provisioning/install.sh --release)`);
  }
  if (plan.state !== state || problem) writeSlotState(root, plan.state);
  if (plan.state.committed) pointLink(root, 'committed', plan.state.committed);
  if (plan.run) pointLink(root, 'current', plan.run);
  return { ...plan, problem };
}

/** Releases and downloads no longer needed: what the state keeps stays (the committed, the one before, a trial). */
export function pruneReleases(root: string, state: SlotState): string[] {
  const keep = new Set(releasesKept(state));
  const removed: string[] = [];
  for (const name of existsSync(releasesDir(root)) ? readdirSync(releasesDir(root)) : []) {
    if (keep.has(name)) continue;
    rmSync(join(releasesDir(root), name), { recursive: true, force: true });
    removed.push(name);
  }
  rmSync(downloadsDir(root), { recursive: true, force: true });
  return removed;
}

/** The version this process runs if it runs from a release under `root`; null when it runs from elsewhere (a checkout, a test). */
export function runningRelease(root: string, version: string): string | null {
  const here = projectRoot();
  if (!here) return null;
  try {
    return realpathSync(here) === realpathSync(releaseDir(root, version)) ? version : null;
  } catch {
    return null;
  }
}
