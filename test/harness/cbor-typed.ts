// CBOR decoded with its major types kept, for checking payloads against the CDDL: cbor-x (like
// any JS decoder) hands back a number for both an integer and a float, and the protocol promises
// integers. Also flags any integer or length not written in its shortest form (RFC 8949 §4.1).
export type Typed =
  | { t: 'uint' | 'nint'; v: bigint }
  | { t: 'float'; v: number }
  | { t: 'bstr'; v: Buffer }
  | { t: 'tstr'; v: string }
  | { t: 'array'; v: Typed[] }
  | { t: 'map'; v: Array<[Typed, Typed]> }
  | { t: 'bool'; v: boolean }
  | { t: 'null' | 'undefined'; v: null }
  | { t: 'tag'; tag: bigint; v: Typed };

export class CborShapeError extends Error {}

export function decodeTyped(bytes: Uint8Array): Typed {
  const buf = Buffer.from(bytes);
  let pos = 0;
  const need = (n: number) => {
    if (pos + n > buf.length) throw new CborShapeError(`truncated at byte ${pos}`);
  };
  const argument = (info: number): bigint => {
    if (info < 24) return BigInt(info);
    const size = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
    if (size === undefined) throw new CborShapeError(`indefinite length or reserved value at byte ${pos - 1}`);
    need(size);
    const v = size === 8 ? buf.readBigUInt64BE(pos) : BigInt(buf.readUIntBE(pos, size));
    const shortest = v < 24n ? 0 : v < 0x100n ? 1 : v < 0x10000n ? 2 : v < 0x100000000n ? 4 : 8;
    if (size !== shortest) throw new CborShapeError(`${v} written in ${size} bytes at byte ${pos - 1}, not the shortest form`);
    pos += size;
    return v;
  };
  const item = (): Typed => {
    need(1);
    const head = buf[pos++];
    const major = head >> 5;
    const info = head & 31;
    if (major === 7) {
      if (info === 20 || info === 21) return { t: 'bool', v: info === 21 };
      if (info === 22) return { t: 'null', v: null };
      if (info === 23) return { t: 'undefined', v: null };
      const size = { 25: 2, 26: 4, 27: 8 }[info];
      if (size === undefined) throw new CborShapeError(`simple value ${info} at byte ${pos - 1}`);
      need(size);
      const v = size === 2 ? buf.readUInt16BE(pos) : size === 4 ? buf.readFloatBE(pos) : buf.readDoubleBE(pos);
      pos += size;
      return { t: 'float', v };
    }
    const arg = argument(info);
    switch (major) {
      case 0:
        return { t: 'uint', v: arg };
      case 1:
        return { t: 'nint', v: -1n - arg };
      case 2:
      case 3: {
        const n = Number(arg);
        need(n);
        const slice = buf.subarray(pos, pos + n);
        pos += n;
        return major === 2 ? { t: 'bstr', v: Buffer.from(slice) } : { t: 'tstr', v: slice.toString('utf8') };
      }
      case 4:
        return { t: 'array', v: Array.from({ length: Number(arg) }, () => item()) };
      case 5:
        return { t: 'map', v: Array.from({ length: Number(arg) }, () => [item(), item()] as [Typed, Typed]) };
      default:
        return { t: 'tag', tag: arg, v: item() };
    }
  };
  const value = item();
  if (pos !== buf.length) throw new CborShapeError(`${buf.length - pos} bytes after the item`);
  return value;
}

/** A parsed JSON value in the same form: JSON numbers that are whole are integers. */
export function typedFromJson(v: unknown): Typed {
  if (v === null) return { t: 'null', v: null };
  if (typeof v === 'boolean') return { t: 'bool', v };
  if (typeof v === 'string') return { t: 'tstr', v };
  if (typeof v === 'number') return Number.isInteger(v) ? { t: v >= 0 ? 'uint' : 'nint', v: BigInt(v) } : { t: 'float', v };
  if (Array.isArray(v)) return { t: 'array', v: v.map(typedFromJson) };
  if (typeof v === 'object') return { t: 'map', v: Object.entries(v as object).map(([k, x]) => [{ t: 'tstr', v: k }, typedFromJson(x)] as [Typed, Typed]) };
  throw new Error(`not JSON: ${typeof v}`);
}
