// The backend's configuration in layers (docs/protocol.md, "Configuration"): fleet defaults, then
// each group a unit belongs to (a city, a venue type: its registration record's `groups`, in that
// order), then the unit's own overrides. A unit gets them merged, in one message of its own.
import { overlay } from '../config/remote.js';

export type LayerScope = 'fleet' | 'group' | 'gateway';

export interface ConfigLayer {
  scope: LayerScope;
  /** '' for the fleet, the group's name, or the gateway id. */
  name: string;
  /** Raised by one at every change of the layer. */
  version: number;
  settings: Record<string, unknown>;
  /** Unix ms of the last change. */
  updatedAt: number;
}

/** The wire's note of what a unit's settings were merged from (config-layer in docs/protocol.cddl). */
export interface LayerNote {
  layer: LayerScope;
  name?: string;
  version: number;
}

/** At most 8 layers travel (the wire's limit): the fleet, six groups, the unit. */
export const MAX_GROUPS = 6;

const layerKey = (scope: LayerScope, name: string) => `${scope}\u0000${name}`;

/** A unit's settings: its layers merged in order, and which versions went in. Null when no layer applies. */
export function composeLayers(
  layers: readonly ConfigLayer[], unit: { gateway: string; groups?: readonly string[] },
): { settings: Record<string, unknown>; notes: LayerNote[] } | null {
  const byKey = new Map(layers.map((l) => [layerKey(l.scope, l.name), l]));
  const chain = [
    byKey.get(layerKey('fleet', '')),
    ...(unit.groups ?? []).slice(0, MAX_GROUPS).map((g) => byKey.get(layerKey('group', g))),
    byKey.get(layerKey('gateway', unit.gateway)),
  ].filter((l): l is ConfigLayer => l !== undefined);
  if (chain.length === 0) return null;
  let settings: unknown = {};
  for (const l of chain) settings = overlay(settings, l.settings);
  return {
    settings: settings as Record<string, unknown>,
    notes: chain.map((l) => (l.scope === 'fleet' ? { layer: l.scope, version: l.version } : { layer: l.scope, name: l.name, version: l.version })),
  };
}

/** Whether `unit` takes the layer (scope, name). */
export function layerApplies(scope: LayerScope, name: string, unit: { gateway: string; groups?: readonly string[] }): boolean {
  if (scope === 'fleet') return true;
  if (scope === 'group') return (unit.groups ?? []).slice(0, MAX_GROUPS).includes(name);
  return unit.gateway === name;
}
