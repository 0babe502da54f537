// The fleet at a glance, as `vgw fleet` and the collector's fleet page show it: one row per
// gateway from what the database holds — its lives (batches, sequence numbers) and its last
// retained status (online or offline, backlog, clock, radio, beacon). Pure: rows and time in.
import { z } from 'zod';

/** A gateway life as the collector counts it. */
export interface LifeRow {
  gateway: string;
  life: string;
  venue: string;
  lastSeq: number;
  /** Batches of this life stored: lastSeq − batches sequence numbers have not arrived. */
  batches: number;
  lastBatchAt: number;
}

/** A gateway's last status message as the collector kept it. */
export interface StatusRow {
  gateway: string;
  venue: string;
  state: 'online' | 'offline';
  /** stopped, connection lost (the Last Will), or null when online. */
  reason: string | null;
  /** Since when the gateway has been in this state (when the collector first saw it so). */
  since: number;
  receivedAt: number;
  /** The document as it arrived (JSON). */
  document: string;
}

export interface FleetRow {
  gateway: string;
  venue: string;
  /** unknown: batches arrived but no status message has. */
  state: 'online' | 'offline' | 'unknown';
  reason: string | null;
  since: string | null;
  lastStatusAt: string | null;
  lastBatchAt: string | null;
  /** Seconds since the last batch arrived. */
  lastBatchAgoS: number | null;
  lives: number;
  /** Sequence numbers of every life that have not arrived (lost, or still to come). */
  seqMissing: number;
  /** From the status: encounters not yet acknowledged, and batches waiting. */
  backlog: { pending: number; outboxBatches: number } | null;
  clock: { synchronized: boolean; source: string } | null;
  radio: string | null;
  beacon: string | null;
  /** What its latest status says it runs: release and commit ("0.1.0 8ed102a1b2c3"), and its configuration's version and source. */
  software: string | null;
  /** "sha256:… remote v5 committed; v6 refused": the digest, the source, the backend's version in effect and a last offer that did not apply. */
  config: string | null;
  /** From 30 days before one of its certificates expires: which, and when. */
  certificateWarning: string | null;
}

/** The parts of an online status the listing shows; anything else in it is left alone. */
const countersSchema = z.object({
  software: z.object({ version: z.string(), commit: z.string() }).optional(),
  config: z.object({
    version: z.string(),
    source: z.string(),
    remote: z.object({
      version: z.number().nullable(),
      state: z.string(),
      last: z.object({ version: z.number(), outcome: z.string() }).nullable(),
    }).optional(),
  }).optional(),
  counters: z.object({
    store: z.object({ pending: z.number(), outboxBatches: z.number() }).partial().optional(),
    clock: z.object({ synchronized: z.boolean(), source: z.string() }).optional(),
    radio: z.object({ state: z.string() }).optional(),
    beacon: z.object({ state: z.string() }).optional(),
    tls: z.object({ warning: z.string().nullable() }).optional(),
  }).optional(),
});

/** The configuration a status reports, in a few words. */
function configText(c: NonNullable<z.infer<typeof countersSchema>['config']>): string {
  const r = c.remote;
  const inEffect = r && r.version !== null ? ` v${r.version} ${r.state}` : '';
  const lastOffer = r?.last && r.last.outcome !== 'applied' ? `; v${r.last.version} ${r.last.outcome}` : '';
  return `${c.version} ${c.source}${inEffect}${lastOffer}`;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * A gateway's status is a few KiB; a larger one is not kept, nor read back from a database an
 * older collector filled (the fleet view holds every gateway's at once).
 */
export const MAX_STATUS_BYTES = 64 * 1024;

/** The longest text a row takes from what a gateway said (a state, a reason, a clock source). */
export const MAX_FIELD_CHARS = 64;

/**
 * What a gateway wrote, made safe to show: control characters (a terminal's escape sequences)
 * become U+FFFD and the text is cut at MAX_FIELD_CHARS. Anyone with a gateway's credentials
 * can write its status; the operator's terminal and page must not obey it.
 */
export function shownText(value: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what it replaces
  const clean = value.replace(/[\u0000-\u001f\u007f-\u009f]/g, '\ufffd');
  return clean.length > MAX_FIELD_CHARS ? `${clean.slice(0, MAX_FIELD_CHARS - 1)}…` : clean;
}
const shown = (value: string | null | undefined) => (value === null || value === undefined ? null : shownText(value));

export function fleetRows(lives: readonly LifeRow[], statuses: readonly StatusRow[], now: number): FleetRow[] {
  const byGateway = new Map<string, LifeRow[]>();
  for (const l of lives) {
    const list = byGateway.get(l.gateway);
    if (list) list.push(l);
    else byGateway.set(l.gateway, [l]);
  }
  const statusOf = new Map(statuses.map((s) => [s.gateway, s]));
  const gateways = new Set([...byGateway.keys(), ...statusOf.keys()]);
  const rows: FleetRow[] = [];
  for (const gateway of gateways) {
    const ls = byGateway.get(gateway) ?? [];
    const latest = ls.reduce<LifeRow | null>((a, l) => (a === null || l.lastBatchAt > a.lastBatchAt ? l : a), null);
    const s = statusOf.get(gateway);
    let doc: z.infer<typeof countersSchema> | undefined;
    if (s) {
      try {
        doc = countersSchema.parse(JSON.parse(s.document));
      } catch {
        doc = undefined; // not a status we can read: shown as state alone
      }
    }
    const counters = doc?.counters;
    const lastBatchAt = latest?.lastBatchAt ?? null;
    const pending = counters?.store?.pending;
    const outboxBatches = counters?.store?.outboxBatches;
    rows.push({
      gateway: shownText(gateway),
      venue: shownText(s?.venue ?? latest?.venue ?? ''),
      state: s?.state ?? 'unknown',
      reason: shown(s?.reason),
      since: iso(s?.since ?? null),
      lastStatusAt: iso(s?.receivedAt ?? null),
      lastBatchAt: iso(lastBatchAt),
      lastBatchAgoS: lastBatchAt === null ? null : Math.max(0, Math.round((now - lastBatchAt) / 1000)),
      lives: ls.length,
      seqMissing: ls.reduce((n, l) => n + Math.max(0, l.lastSeq - l.batches), 0),
      backlog: pending !== undefined && outboxBatches !== undefined && s?.state === 'online' ? { pending, outboxBatches } : null,
      clock: s?.state === 'online' && counters?.clock ? { synchronized: counters.clock.synchronized, source: shownText(counters.clock.source) } : null,
      radio: s?.state === 'online' ? shown(counters?.radio?.state) : null,
      beacon: s?.state === 'online' ? shown(counters?.beacon?.state) : null,
      software: doc?.software ? shownText(`${doc.software.version} ${doc.software.commit}`) : null,
      config: doc?.config ? shownText(configText(doc.config)) : null,
      certificateWarning: s?.state === 'online' ? shown(counters?.tls?.warning) : null,
    });
  }
  // What needs a look first: offline, then missing batches, then by name.
  const rank = (r: FleetRow) => (r.state === 'offline' ? 0 : r.state === 'unknown' ? 1 : r.seqMissing > 0 ? 2 : 3);
  return rows.sort((a, b) => rank(a) - rank(b) || (a.gateway < b.gateway ? -1 : a.gateway > b.gateway ? 1 : 0));
}

/** A status message off the wire → the row the collector keeps, or null when it is not one. */
export function statusRow(payload: Buffer, receivedAt: number, previous: { state: string; since: number } | undefined): StatusRow | null {
  let doc: { gateway?: unknown; venue?: unknown; state?: unknown; reason?: unknown };
  try {
    doc = JSON.parse(payload.toString('utf8'));
  } catch {
    return null;
  }
  if (doc === null || typeof doc !== 'object' || typeof doc.gateway !== 'string' || typeof doc.venue !== 'string') return null;
  if (doc.state !== 'online' && doc.state !== 'offline') return null;
  const state = doc.state;
  return {
    gateway: doc.gateway,
    venue: doc.venue,
    state,
    reason: typeof doc.reason === 'string' ? doc.reason : null,
    since: previous && previous.state === state ? previous.since : receivedAt,
    receivedAt,
    document: payload.toString('utf8'),
  };
}

/** Encounters per hour per venue (hour: unix ms at its start). */
export interface VenueHour {
  venue: string;
  hour: number;
  encounters: number;
}

export const HOUR_MS = 3_600_000;

/** The chart's data: the busiest venues' encounters per hour, the rest summed, and every hour's total. */
export interface VenueChart {
  /** Start of each hour shown, oldest first (unix ms). */
  hours: number[];
  venues: Array<{ venue: string; total: number; perHour: number[] }>;
  /** All other venues together, per hour. */
  others: number[];
  othersVenues: number;
  total: number[];
}

/** The `hours` hours up to and including the one `now` falls in; `top` venues by encounters, busiest first. */
export function venueChart(rows: readonly VenueHour[], now: number, hours: number, top: number): VenueChart {
  const last = Math.floor(now / HOUR_MS) * HOUR_MS;
  const first = last - (hours - 1) * HOUR_MS;
  const hourList = Array.from({ length: hours }, (_, i) => first + i * HOUR_MS);
  const perVenue = new Map<string, number[]>();
  for (const r of rows) {
    const i = (r.hour - first) / HOUR_MS;
    if (!Number.isInteger(i) || i < 0 || i >= hours) continue;
    let series = perVenue.get(r.venue);
    if (!series) perVenue.set(r.venue, (series = new Array<number>(hours).fill(0)));
    series[i] += r.encounters;
  }
  const ranked = [...perVenue]
    .map(([venue, perHour]) => ({ venue, total: perHour.reduce((a, b) => a + b, 0), perHour }))
    .sort((a, b) => b.total - a.total || (a.venue < b.venue ? -1 : 1));
  const shown = ranked.slice(0, top);
  const others = new Array<number>(hours).fill(0);
  for (const v of ranked.slice(top)) v.perHour.forEach((n, i) => (others[i] += n));
  const total = others.map((n, i) => n + shown.reduce((a, v) => a + v.perHour[i], 0));
  return { hours: hourList, venues: shown, others, othersVenues: Math.max(0, ranked.length - top), total };
}

/** Counts for the page's and `vgw fleet`'s headline. */
export function fleetSummary(rows: readonly FleetRow[]): {
  gateways: number; online: number; offline: number; unknown: number; withMissingBatches: number; versions: Record<string, number>;
} {
  // What a rollout of releases moves: how many units report each version ("unknown": no status, or none said).
  const versions: Record<string, number> = {};
  for (const r of rows) {
    const v = r.software?.split(' ')[0] ?? 'unknown';
    versions[v] = (versions[v] ?? 0) + 1;
  }
  return {
    gateways: rows.length,
    online: rows.filter((r) => r.state === 'online').length,
    offline: rows.filter((r) => r.state === 'offline').length,
    unknown: rows.filter((r) => r.state === 'unknown').length,
    withMissingBatches: rows.filter((r) => r.seqMissing > 0).length,
    versions,
  };
}
