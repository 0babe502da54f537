// Diagnosis keys (TEKs) as health authorities publish them: the EN export file or JSON.
import { EN_TEK_ROLLING_PERIOD } from '../protocols/index.js';
import { isHex } from '../identifiers/index.js';

export interface DiagnosisKey {
  key: Buffer;
  rollingStartIntervalNumber: number;
  rollingPeriod: number;
}

/** The spec lets an RPI be matched up to two hours either side of its interval (clock drift). */
export const DRIFT_TOLERANCE_MS = 2 * 3600_000;
export const EXPORT_HEADER = Buffer.from('EK Export v1    ', 'latin1');

export class KeyFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyFileError';
  }
}

// --- a minimal protobuf reader: the export format is two small messages ---
interface Field {
  no: number;
  wire: number;
  value: bigint | Buffer;
}

function readVarint(buf: Buffer, at: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (let i = at; i < buf.length && i < at + 10; i++) {
    result |= BigInt(buf[i] & 0x7f) << shift;
    if ((buf[i] & 0x80) === 0) return [result, i + 1];
    shift += 7n;
  }
  throw new KeyFileError('protobuf: truncated varint');
}

function* fields(buf: Buffer): Generator<Field> {
  let at = 0;
  while (at < buf.length) {
    const [tag, next] = readVarint(buf, at);
    at = next;
    const no = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    if (wire === 0) {
      const [v, n] = readVarint(buf, at);
      at = n;
      yield { no, wire, value: v };
    } else if (wire === 1 || wire === 5) {
      const size = wire === 1 ? 8 : 4;
      if (at + size > buf.length) throw new KeyFileError('protobuf: truncated fixed field');
      yield { no, wire, value: Buffer.from(buf.subarray(at, at + size)) };
      at += size;
    } else if (wire === 2) {
      const [len, n] = readVarint(buf, at);
      at = n;
      const end = at + Number(len);
      if (end > buf.length) throw new KeyFileError('protobuf: truncated length-delimited field');
      yield { no, wire, value: Buffer.from(buf.subarray(at, end)) };
      at = end;
    } else {
      throw new KeyFileError(`protobuf: unsupported wire type ${wire}`);
    }
  }
}

/** TemporaryExposureKeyExport (the key file of the EN key-server format): field 7 holds the keys. */
export function parseExportFile(file: Buffer): DiagnosisKey[] {
  if (file.length < 16 || !file.subarray(0, 16).equals(EXPORT_HEADER)) {
    throw new KeyFileError('not an EN export file: it must start with the 16-byte header "EK Export v1    "');
  }
  const keys: DiagnosisKey[] = [];
  for (const f of fields(file.subarray(16))) {
    if ((f.no !== 7 && f.no !== 8) || f.wire !== 2) continue; // keys and revised keys
    let key: Buffer | null = null;
    let rsin: number | null = null;
    let period = EN_TEK_ROLLING_PERIOD;
    for (const k of fields(f.value as Buffer)) {
      if (k.no === 1 && k.wire === 2) key = k.value as Buffer;
      else if (k.no === 3 && k.wire === 0) rsin = Number(k.value);
      else if (k.no === 4 && k.wire === 0) period = Number(k.value);
    }
    if (key?.length === 16 && rsin !== null) keys.push({ key, rollingStartIntervalNumber: rsin, rollingPeriod: period });
  }
  return keys;
}

/** A JSON list of {key (base64 or hex), rollingStartIntervalNumber, rollingPeriod?}. */
export function parseJsonKeys(text: string): DiagnosisKey[] {
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch (err) {
    throw new KeyFileError(`not JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(list)) throw new KeyFileError('expected a JSON array of {key, rollingStartIntervalNumber, rollingPeriod}');
  return list.map((entry, i) => {
    const e = entry as { key?: unknown; rollingStartIntervalNumber?: unknown; rollingPeriod?: unknown };
    const raw = typeof e.key === 'string' ? (isHex(e.key, 16) ? Buffer.from(e.key, 'hex') : Buffer.from(e.key, 'base64')) : null;
    if (!raw || raw.length !== 16) throw new KeyFileError(`[${i}].key: must be 16 bytes, as 32 hex digits or base64`);
    if (!Number.isSafeInteger(e.rollingStartIntervalNumber) || (e.rollingStartIntervalNumber as number) < 0) {
      throw new KeyFileError(`[${i}].rollingStartIntervalNumber: must be a whole number (unix seconds / 600)`);
    }
    const period = e.rollingPeriod ?? EN_TEK_ROLLING_PERIOD;
    if (!Number.isSafeInteger(period) || (period as number) < 1 || (period as number) > EN_TEK_ROLLING_PERIOD) {
      throw new KeyFileError(`[${i}].rollingPeriod: must be 1 to 144`);
    }
    return { key: raw, rollingStartIntervalNumber: e.rollingStartIntervalNumber as number, rollingPeriod: period as number };
  });
}

export function parseKeyFile(file: Buffer): DiagnosisKey[] {
  return file.subarray(0, 16).equals(EXPORT_HEADER) ? parseExportFile(file) : parseJsonKeys(file.toString('utf8'));
}

