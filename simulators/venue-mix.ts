// The venue traffic mix of the fleet simulator: what a fleet of tens of thousands of premises looks
// like from the backend. Each kind has a share of the fleet and a rate of encounters (one phone's
// temp ID heard for a while: a visit of an hour is about four, as RPIs rotate every ~15 minutes).
// Figures are business-hours averages chosen to be on the busy side of the SELangkah scale (40,000
// premises; 14 million visits in its first weeks); docs/scaling.md works them through.

export interface VenueKind {
  name: string;
  /** Share of the fleet. */
  share: number;
  /** Encounters closed per hour while open. */
  encountersPerHour: number;
  /** A visitor's stay, seconds (uniform between the two). */
  dwellS: [number, number];
}

export const VENUE_MIX: readonly VenueKind[] = [
  { name: 'shop', share: 0.6, encountersPerHour: 30, dwellS: [120, 900] },
  { name: 'restaurant', share: 0.25, encountersPerHour: 150, dwellS: [900, 3600] },
  { name: 'supermarket', share: 0.12, encountersPerHour: 600, dwellS: [600, 2400] },
  { name: 'mall', share: 0.03, encountersPerHour: 3000, dwellS: [900, 5400] },
];

/** Encounters per hour of the mix's average venue. */
export function meanEncountersPerHour(mix: readonly VenueKind[] = VENUE_MIX): number {
  return mix.reduce((n, k) => n + k.share * k.encountersPerHour, 0);
}

/** The kind of each of `n` venues, in proportion to the shares (deterministic: no sampling error). */
export function assignVenueKinds(n: number, mix: readonly VenueKind[] = VENUE_MIX): VenueKind[] {
  const out: VenueKind[] = [];
  let cumulative = 0;
  for (const kind of mix) {
    cumulative += kind.share;
    const until = Math.round(cumulative * n);
    while (out.length < until) out.push(kind);
  }
  while (out.length < n) out.push(mix[mix.length - 1]);
  // interleaved, so that any prefix of the fleet has the mix too
  return out.map((k, i) => ({ k, key: ((i * 2654435761) >>> 0) / 2 ** 32 })).sort((a, b) => a.key - b.key).map(({ k }) => k);
}

/** A Poisson draw with mean `mean` (Knuth's method below 30, a rounded normal above). */
export function poisson(mean: number, random: () => number): number {
  if (mean <= 0) return 0;
  if (mean > 30) return Math.max(0, Math.round(mean + Math.sqrt(mean) * normal(random)));
  const limit = Math.exp(-mean);
  let k = 0;
  let p = random();
  while (p > limit) {
    k++;
    p *= random();
  }
  return k;
}

function normal(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}
