// The checkpoint of the encounters still open, as each commit writes it: pure encoding and
// decoding, no database.
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { decode as cborDecode, encode as cborEncode } from 'cbor-x';
import { bucketSeconds, type Encounter } from '../../core/encounters/index.js';

/**
 * The checkpoint of open encounters is rewritten with every commit, so it holds only what
 * changes, as small as the wire keeps it: each encounter's reference to its temp ID (in
 * `open_ids`, written once) and its numbers, column by column, deflated. Times and bucket
 * seconds are whole seconds (first seen rounded down, last seen up), as the wire sends them:
 * a restored encounter goes out exactly as it would have.
 */
const OPEN_COLUMNS = 9;

/**
 * Columns chosen to be small and alike: seconds since last heard (0 for a phone still there),
 * duration, adverts, strongest RSSI, spread, RSSI sum, adverts without RSSI, the clock flag,
 * and per bucket its seconds with the last one sent as its difference from the duration.
 */
function openColumns(open: Encounter[], now: number): number[][] {
  const cols: number[][] = Array.from({ length: OPEN_COLUMNS }, () => []);
  const nowS = Math.ceil(now / 1000);
  for (const e of open) {
    const firstS = Math.floor(e.firstSeen / 1000);
    const lastS = Math.max(firstS, Math.ceil(e.lastSeen / 1000));
    cols[0].push(nowS - lastS);
    cols[1].push(lastS - firstS);
    cols[2].push(e.count);
    cols[3].push(e.rssiMax);
    cols[4].push(e.rssiMax - e.rssiMin);
    cols[5].push(e.rssiSum);
    cols[6].push(e.count - e.rssiCount);
    cols[7].push(e.clockSynced ? 1 : 0);
    const seconds = bucketSeconds(e.bucketMs);
    let sum = 0;
    for (let i = 0; i < seconds.length - 1; i++) {
      cols[8].push(seconds[i]);
      sum += seconds[i];
    }
    if (seconds.length > 0) cols[8].push(lastS - firstS - sum - seconds[seconds.length - 1]);
  }
  return cols;
}

export function encodeOpenState(refs: number[], open: Encounter[], now: number): Buffer {
  let prev = 0;
  const deltas = refs.map((r) => {
    const d = r - prev;
    prev = r;
    return d;
  });
  const buckets = open[0]?.bucketMs.length ?? 0;
  return deflateRawSync(Buffer.from(cborEncode([4, Math.ceil(now / 1000), buckets, deltas, openColumns(open, now)])), { level: 9 });
}

export function decodeOpenState(data: Buffer, idOf: (ref: number) => { protocol: number; temp_id: Buffer; metadata: Buffer } | undefined): Encounter[] {
  const [version, nowS, buckets, deltas, cols] = cborDecode(inflateRawSync(data)) as [number, number, number, number[], number[][]];
  if (version !== 4) throw new Error(`open_checkpoint: unknown version ${version}`);
  const out: Encounter[] = [];
  let ref = 0;
  deltas.forEach((d, i) => {
    ref += d;
    const id = idOf(ref);
    if (!id) return; // only a damaged file could lose it: skip, never invent
    const lastS = nowS - cols[0][i];
    const duration = cols[1][i];
    const seconds = cols[8].slice(i * buckets, (i + 1) * buckets);
    if (buckets > 0) seconds[buckets - 1] = duration - seconds.slice(0, buckets - 1).reduce((x, y) => x + y, 0) - seconds[buckets - 1];
    out.push({
      protocol: id.protocol, tempId: id.temp_id, metadata: id.metadata, firstSeen: (lastS - duration) * 1000, lastSeen: lastS * 1000,
      count: cols[2][i], rssiMax: cols[3][i], rssiMin: cols[3][i] - cols[4][i], rssiSum: cols[5][i], rssiCount: cols[2][i] - cols[6][i],
      clockSynced: cols[7][i] === 1, bucketMs: seconds.map((x) => x * 1000),
    });
  });
  return out;
}
