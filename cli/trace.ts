import { Command } from 'commander';
import { loadConfig, readFileLimited } from '../core/config/index.js';
import {
  caseVisits, checkUids, coPresent, DEFAULT_MARGIN_MS, HistoryError, historyTimestampMs, historyVisits, newInvalidCounts, parseHistory,
  type Evidence, type InvalidCounts, type Presence, type PresenceContacts,
} from '../core/matching/index.js';
import { PROTOCOL_BLUETRACE } from '../core/protocols/index.js';
import { loadRegistry } from '../core/trust/index.js';
import { loadBluetraceKey, type EncounterSource } from '../collector/index.js';
import { collect, openEncounterSource } from './encounter-db.js';
import { fail, parseTime, UsageError } from './errors.js';

/** A 14-day history of a phone is a few thousand records; this is far above any real upload. */
const MAX_HISTORY_BYTES = 64 * 1024 * 1024;

interface Sources {
  db?: string;
  keyFile?: string;
  registry?: string;
  config?: string;
  from?: string;
  to?: string;
  marginS?: string;
  json?: boolean;
}

interface Resolved {
  source: EncounterSource;
  key: Buffer;
  registry?: string;
  from: number;
  to: number;
  marginMs: number;
}

/** The database, key and registry from the options, or from a collector's config (`collector.*`). */
async function resolve(opts: Sources): Promise<Resolved> {
  let { db, keyFile, registry } = opts;
  if (opts.config) {
    const c = loadConfig(opts.config).collector;
    if (!c) throw new UsageError(`--config: ${opts.config} has no collector section: give a collector's config, or --db and --key-file`);
    db ??= c.database;
    keyFile ??= c.bluetraceKeyFile;
    registry ??= c.registry;
  }
  if (!db) throw new UsageError("--db: give the collector's database (or --config with a collector's config)");
  if (!keyFile) throw new UsageError("--key-file: give the backend's BlueTrace key file (64 hex digits, mode 0600), or a collector config with collector.bluetraceKeyFile");
  const from = opts.from === undefined ? 0 : parseTime(opts.from, '--from');
  const to = opts.to === undefined ? Number.MAX_SAFE_INTEGER : parseTime(opts.to, '--to');
  if (to <= from) throw new UsageError('--to: must be after --from');
  let marginMs = DEFAULT_MARGIN_MS;
  if (opts.marginS !== undefined) {
    if (!/^\d+(\.\d+)?$/.test(opts.marginS)) throw new UsageError(`--margin-s: "${opts.marginS}" is not a number of seconds (≥ 0)`);
    marginMs = Number(opts.marginS) * 1000;
  }
  const key = loadBluetraceKey(keyFile);
  return { source: await openEncounterSource(db), key, registry, from, to, marginMs };
}

/** Everyone else at each presence's venue then; temp IDs refused on the way are counted in `invalid`. */
async function contactsOf(r: Resolved, presences: Presence[], exclude: ReadonlySet<string>, invalid: InvalidCounts): Promise<PresenceContacts[]> {
  const out: PresenceContacts[] = [];
  for (const p of presences) {
    const around = await collect(r.source.encounters(p.from - r.marginMs, p.to + r.marginMs + 1, { venue: p.venue }));
    out.push(coPresent(r.key, p, around, exclude, invalid, r.marginMs));
  }
  return out;
}

function checkUidOption(uids: string[]): void {
  try {
    checkUids(uids);
  } catch (err) {
    throw new UsageError(`--uid: ${(err as Error).message}`);
  }
}

const iso = (ms: number) => new Date(ms).toISOString();
const evidenceJson = (e: Evidence) => (typeof e === 'number' ? e : { gateway: e.gateway, encounter: e.id });

function visitsJson(visits: PresenceContacts[]) {
  return visits.map((v) => ({
    venue: v.presence.venue,
    from: iso(v.presence.from),
    to: iso(v.presence.to),
    evidence: v.presence.evidence.map(evidenceJson),
    contacts: v.contacts.map((c) => ({
      uid: c.uid,
      firstSeen: iso(c.firstSeen),
      lastSeen: iso(c.lastSeen),
      overlapS: c.overlapS,
      rssiMax: c.rssiMax,
      encounters: c.encounters.map(evidenceJson),
    })),
    anonymousEncounters: v.anonymousEncounters,
  }));
}

const refusedText = (invalid: InvalidCounts) =>
  Object.entries(invalid).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';

function printVisits(visits: PresenceContacts[]): void {
  for (const v of visits) {
    const p = v.presence;
    process.stdout.write(`${p.venue ?? '-'}  ${iso(p.from)} → ${iso(p.to)}  ${v.contacts.length} contacts, ${v.anonymousEncounters} EN encounters (anonymous)\n`);
    for (const c of v.contacts) {
      process.stdout.write(`  ${c.uid}  ${iso(c.firstSeen)} → ${iso(c.lastSeen)}  overlap ${c.overlapS} s  RSSI ${c.rssiMax ?? '-'}\n`);
    }
  }
}

const common = (cmd: Command) =>
  cmd
    .option('--db <file>', "the collector's database (SQLite file or postgres:// URL)")
    .option('--key-file <file>', "the backend's BlueTrace key (collector.bluetraceKeyFile)")
    .option('-c, --config <file>', "or a collector's config: collector.database, collector.bluetraceKeyFile, collector.registry")
    .option('--from <time>', 'only sightings from then, ISO-8601 or unix ms')
    .option('--to <time>', 'only sightings before then, ISO-8601 or unix ms')
    .option('--margin-s <s>', 'co-present if seen this close before or after (OpenTrace phones exchange about every 140 s)', String(DEFAULT_MARGIN_MS / 1000))
    .option('--json', 'print the answer as JSON');

function caseCommand(): Command {
  return common(new Command('case'))
    .description("(a) a confirmed case's BlueTrace UIDs → their venue visits → the other visitors present then")
    .requiredOption('--uid <uid...>', "the case's UIDs (28 base64 characters each)")
    .addHelpText('after', '\nExit codes: 0 answered (possibly no visits), 2 bad arguments or files.\nExample:\n  vgw trace case -c /etc/venue-gateway/collector.json --uid kT1h0Pq2cE9nWm4xR7vY3bZ8aLsQ --json')
    .action(async (opts: Sources & { uid: string[] }) => {
      try {
        checkUidOption(opts.uid);
        const r = await resolve(opts);
        const visits = caseVisits(r.key, opts.uid, await collect(r.source.encounters(r.from, r.to, { protocol: PROTOCOL_BLUETRACE })), r.marginMs);
        const contactRefusals = newInvalidCounts();
        const answer = await contactsOf(r, visits.presences, new Set(opts.uid), contactRefusals);
        await r.source.close();
        if (opts.json) {
          process.stdout.write(JSON.stringify({
            query: 'case', uids: opts.uid, marginS: r.marginMs / 1000,
            bluetraceEncountersOpened: visits.opened, refused: visits.invalid, contactEncountersRefused: contactRefusals,
            visits: visitsJson(answer),
          }, null, 2) + '\n');
          return;
        }
        process.stdout.write(`${answer.length} venue visits; ${visits.opened} BlueTrace encounters opened, refused: ${refusedText(visits.invalid)}\n`);
        printVisits(answer);
      } catch (err) {
        fail(err);
      }
    });
}

function historyCommand(): Command {
  return common(new Command('history'))
    .description("(b) a confirmed case's uploaded history → the venues whose temp IDs it holds, and when → the other visitors")
    .requiredOption('--history <file>', "the uploaded history: OpenTrace's {records: [{timestamp, msg, modelC, modelP, rssi, org}]} or its records ('-' for stdin)")
    .option('--registry <file>', "the gateways' registration records, which name each venue's bluetraceUid (collector.registry)")
    .option('--uid <uid...>', "the uploader's own UIDs (the upload token names them), left out of the contacts")
    .addHelpText('after', '\nExit codes: 0 answered (possibly no venue), 2 bad arguments or files.\nExample:\n  vgw trace history -c /etc/venue-gateway/collector.json --history upload.json --json')
    .action(async (opts: Sources & { history: string; uid?: string[] }) => {
      try {
        checkUidOption(opts.uid ?? []);
        const r = await resolve(opts);
        if (!r.registry) throw new UsageError("--registry: give the gateways' registration records (they name each venue's bluetraceUid), or a collector config with collector.registry");
        const venueOfUid = new Map<string, string>();
        for (const rec of loadRegistry(r.registry)) if (rec.bluetraceUid) venueOfUid.set(rec.bluetraceUid, rec.venue);
        let text: string;
        try {
          text = readFileLimited(opts.history === '-' ? 0 : opts.history, MAX_HISTORY_BYTES, '--history').toString('utf8');
        } catch (err) {
          if (err instanceof RangeError) throw new UsageError(err.message);
          throw new UsageError(`--history: cannot read ${opts.history} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
        }
        let records;
        try {
          records = parseHistory(text);
        } catch (err) {
          if (err instanceof HistoryError) throw new UsageError(`--history: ${opts.history}: ${err.message}`);
          throw err;
        }
        const inRange = records.filter((rec) => {
          const t = historyTimestampMs(rec.timestamp);
          return t >= r.from && t < r.to;
        });
        const visits = historyVisits(r.key, inRange, venueOfUid, r.marginMs);
        const contactRefusals = newInvalidCounts();
        const answer = await contactsOf(r, visits.presences, new Set(opts.uid ?? []), contactRefusals);
        await r.source.close();
        if (opts.json) {
          process.stdout.write(JSON.stringify({
            query: 'history', marginS: r.marginMs / 1000,
            records: inRange.length, venueRecords: visits.venueRecords, phoneRecords: visits.phoneRecords, refused: visits.invalid,
            contactEncountersRefused: contactRefusals, visits: visitsJson(answer),
          }, null, 2) + '\n');
          return;
        }
        process.stdout.write(
          `${inRange.length} records: ${visits.venueRecords} at venues, ${visits.phoneRecords} of other phones, refused: ${refusedText(visits.invalid)}; ${answer.length} venue visits\n`,
        );
        printVisits(answer);
      } catch (err) {
        fail(err);
      }
    });
}

export function traceCommand(): Command {
  return new Command('trace')
    .description('BlueTrace contact tracing at venues with the backend key: who else was there when a confirmed case was')
    .addHelpText('after', "\nTemp IDs are decrypted only to answer these queries; a sighting outside its temp ID's validity is refused\n(expired_id), as OpenTrace's server refuses an uploaded record.\nExamples:\n  vgw trace case -c /etc/venue-gateway/collector.json --uid kT1h0Pq2cE9nWm4xR7vY3bZ8aLsQ\n  vgw trace history -c /etc/venue-gateway/collector.json --history upload.json")
    .addCommand(caseCommand())
    .addCommand(historyCommand());
}
