// `vgw fleet update`: a release taken by the units in a staged rollout (docs/operating.md,
// "Releases"): each gets the signed update request `vgw command update` sends, a canary first, then
// a rate, the rollout aborted once --abort-after units failed (refused it, or rolled it back).
import type { Command } from 'commander';
import { RELEASE_VERSION } from '../core/wire/index.js';
import { UsageError } from './errors.js';
import { staged, type StagedOptions, startWith } from './fleet-command.js';

export function addFleetUpdate(fleet: Command): void {
  staged(fleet, 'update', 'have the units take a signed release, in stages: a canary first, then a rate, stopping once too many fail',
    'A unit counts as done once it runs the release, committed (it passed its health gate); as failed when it refuses the\n' +
      'release or rolls it back (the reason named), or does not report within --settle (download and health gate included).',
    'vgw fleet update --fleet --manifest https://releases.example/venue-gateway-0.2.0-linux-arm64.manifest.cose --release-version 0.2.0 --canary 1% --rate 60 --abort-after 10 -c collector.json')
    .requiredOption('--manifest <url>', 'the https:// URL of the release manifest (`make release` writes it beside the tarball)')
    .requiredOption('--release-version <v>', 'the version the manifest must be of')
    .option('--downgrade', 'allow a version older than the one a unit runs')
    .action(startWith((opts: StagedOptions & { manifest: string; releaseVersion: string; downgrade?: boolean }) => {
      if (!/^https:\/\/\S+\.manifest\.cose$/.test(opts.manifest)) throw new UsageError(`--manifest: "${opts.manifest}" must be the https:// URL of a release manifest (…/venue-gateway-<version>-linux-<arch>.manifest.cose)`);
      if (!RELEASE_VERSION.test(opts.releaseVersion)) throw new UsageError(`--release-version: "${opts.releaseVersion}" is not a semantic version such as 0.2.0`);
      return { op: 'update', manifest: opts.manifest, version: opts.releaseVersion, ...(opts.downgrade ? { downgrade: true } : {}) };
    }));
}
