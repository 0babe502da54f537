// Just enough ATT (Core spec Vol 3 Part F) for a simulated phone to be the other end of a
// BlueTrace exchange with unmodified noble or bleno: a GATT server holding one service with one
// readable, writable characteristic, and a client that discovers, reads and writes one.
export const ATT_CID = 0x0004;
const OP_ERROR = 0x01;
const OP_MTU_REQ = 0x02;
const OP_MTU_RSP = 0x03;
const OP_FIND_INFO_REQ = 0x04;
const OP_READ_BY_TYPE_REQ = 0x08;
const OP_READ_BY_TYPE_RSP = 0x09;
const OP_READ_REQ = 0x0a;
const OP_READ_RSP = 0x0b;
const OP_READ_BLOB_REQ = 0x0c;
const OP_READ_BLOB_RSP = 0x0d;
const OP_READ_BY_GROUP_REQ = 0x10;
const OP_READ_BY_GROUP_RSP = 0x11;
const OP_WRITE_REQ = 0x12;
const OP_WRITE_RSP = 0x13;
const OP_PREPARE_WRITE_REQ = 0x16;
const OP_PREPARE_WRITE_RSP = 0x17;
const OP_EXECUTE_WRITE_REQ = 0x18;
const OP_EXECUTE_WRITE_RSP = 0x19;
const OP_WRITE_CMD = 0x52;
const ECODE_INVALID_HANDLE = 0x01;
const ECODE_REQ_NOT_SUPP = 0x06;
const ECODE_INVALID_OFFSET = 0x07;
const ECODE_PREP_QUEUE_FULL = 0x09;
const ECODE_ATTR_NOT_FOUND = 0x0a;
const PRIMARY_SERVICE = 0x2800;
const CHARACTERISTIC = 0x2803;
const PROP_READ = 0x02;
const PROP_WRITE = 0x08;
const SERVICE_HANDLE = 1;
const DECLARATION_HANDLE = 2;
const VALUE_HANDLE = 3;
/** A phone's stack accepts up to this MTU (Android asks for 512; noble and bleno offer 256). */
export const PHONE_MTU = 512;
const MAX_PREPARED_BYTES = 1024;

function error(request: number, handle: number, code: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = OP_ERROR;
  b[1] = request;
  b.writeUInt16LE(handle, 2);
  b[4] = code;
  return b;
}

export interface CharacteristicHandlers {
  read(): Buffer;
  /** A complete write (long writes once executed). */
  write(value: Buffer): void;
}

/** The GATT server of a phone: one primary service, one READ|WRITE characteristic. */
export class PhoneGattServer {
  private mtu = 23;
  private prepared: Buffer[] = [];

  constructor(private readonly service: Buffer, private readonly characteristic: Buffer, private readonly handlers: CharacteristicHandlers) {}

  /** The response to one request, or null for commands that get none. */
  handle(pdu: Buffer): Buffer | null {
    const op = pdu[0];
    const start = pdu.length >= 3 ? pdu.readUInt16LE(1) : 0;
    switch (op) {
      case OP_MTU_REQ: {
        this.mtu = Math.max(23, Math.min(PHONE_MTU, pdu.readUInt16LE(1)));
        const r = Buffer.alloc(3);
        r[0] = OP_MTU_RSP;
        r.writeUInt16LE(PHONE_MTU, 1);
        return r;
      }
      case OP_READ_BY_GROUP_REQ: {
        if (pdu.readUInt16LE(5) !== PRIMARY_SERVICE || pdu.length !== 7) return error(op, start, ECODE_ATTR_NOT_FOUND);
        if (start > SERVICE_HANDLE) return error(op, start, ECODE_ATTR_NOT_FOUND);
        // one entry: handle, end group handle, 128-bit UUID
        const r = Buffer.alloc(2 + 4 + 16);
        r[0] = OP_READ_BY_GROUP_RSP;
        r[1] = 20;
        r.writeUInt16LE(SERVICE_HANDLE, 2);
        r.writeUInt16LE(VALUE_HANDLE, 4);
        this.service.copy(r, 6);
        return r;
      }
      case OP_READ_BY_TYPE_REQ: {
        const end = pdu.readUInt16LE(3);
        if (pdu.length !== 7 || pdu.readUInt16LE(5) !== CHARACTERISTIC || start > DECLARATION_HANDLE || end < DECLARATION_HANDLE) {
          return error(op, start, ECODE_ATTR_NOT_FOUND);
        }
        const r = Buffer.alloc(2 + 2 + 1 + 2 + 16);
        r[0] = OP_READ_BY_TYPE_RSP;
        r[1] = 21;
        r.writeUInt16LE(DECLARATION_HANDLE, 2);
        r[4] = PROP_READ | PROP_WRITE;
        r.writeUInt16LE(VALUE_HANDLE, 5);
        this.characteristic.copy(r, 7);
        return r;
      }
      case OP_FIND_INFO_REQ:
        return error(op, start, ECODE_ATTR_NOT_FOUND);
      case OP_READ_REQ:
      case OP_READ_BLOB_REQ: {
        if (start !== VALUE_HANDLE) return error(op, start, ECODE_INVALID_HANDLE);
        const value = this.handlers.read();
        const offset = op === OP_READ_BLOB_REQ ? pdu.readUInt16LE(3) : 0;
        if (offset > value.length) return error(op, start, ECODE_INVALID_OFFSET);
        return Buffer.concat([Buffer.from([op === OP_READ_REQ ? OP_READ_RSP : OP_READ_BLOB_RSP]), value.subarray(offset, offset + this.mtu - 1)]);
      }
      case OP_WRITE_REQ:
      case OP_WRITE_CMD:
        if (start !== VALUE_HANDLE) return op === OP_WRITE_CMD ? null : error(op, start, ECODE_INVALID_HANDLE);
        this.handlers.write(Buffer.from(pdu.subarray(3)));
        return op === OP_WRITE_CMD ? null : Buffer.from([OP_WRITE_RSP]);
      case OP_PREPARE_WRITE_REQ: {
        if (start !== VALUE_HANDLE) return error(op, start, ECODE_INVALID_HANDLE);
        const size = this.prepared.reduce((n, b) => n + b.length, 0);
        if (size + pdu.length - 5 > MAX_PREPARED_BYTES) return error(op, start, ECODE_PREP_QUEUE_FULL);
        this.prepared.push(Buffer.from(pdu.subarray(5)));
        return Buffer.concat([Buffer.from([OP_PREPARE_WRITE_RSP]), pdu.subarray(1)]);
      }
      case OP_EXECUTE_WRITE_REQ: {
        const value = Buffer.concat(this.prepared);
        this.prepared = [];
        if (pdu[1] === 0x01) this.handlers.write(value);
        return Buffer.from([OP_EXECUTE_WRITE_RSP]);
      }
      default:
        return error(op, start, ECODE_REQ_NOT_SUPP);
    }
  }
}

export class AttError extends Error {}

/**
 * The GATT client of a phone, one request at a time as ATT requires. `send` puts a PDU on the
 * link; the phone feeds every PDU that comes back to `receive`.
 */
export class PhoneGattClient {
  private mtu = 23;
  private waiting: ((pdu: Buffer) => void) | null = null;

  constructor(private readonly send: (pdu: Buffer) => void) {}

  receive(pdu: Buffer): void {
    const w = this.waiting;
    this.waiting = null;
    w?.(pdu);
  }

  /** Fails every outstanding request: the link went down. */
  fail(): void {
    const w = this.waiting;
    this.waiting = null;
    w?.(Buffer.from([OP_ERROR, 0, 0, 0, 0xff]));
  }

  private request(pdu: Buffer, expected: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiting = (rsp) => (rsp[0] === expected ? resolve(rsp) : reject(new AttError(`ATT request 0x${pdu[0].toString(16)} answered 0x${rsp[0].toString(16)}`)));
      this.send(pdu);
    });
  }

  async exchangeMtu(mtu = PHONE_MTU): Promise<number> {
    const req = Buffer.alloc(3);
    req[0] = OP_MTU_REQ;
    req.writeUInt16LE(mtu, 1);
    const rsp = await this.request(req, OP_MTU_RSP);
    this.mtu = Math.max(23, Math.min(mtu, rsp.readUInt16LE(1)));
    return this.mtu;
  }

  /** The value handle of `characteristic` in `service`, walking the server's attributes as phones do. */
  async find(service: Buffer, characteristic: Buffer): Promise<number> {
    let start = 1;
    let range: [number, number] | null = null;
    while (!range && start <= 0xffff) {
      const req = Buffer.alloc(7);
      req[0] = OP_READ_BY_GROUP_REQ;
      req.writeUInt16LE(start, 1);
      req.writeUInt16LE(0xffff, 3);
      req.writeUInt16LE(PRIMARY_SERVICE, 5);
      const rsp = await this.request(req, OP_READ_BY_GROUP_RSP);
      const size = rsp[1];
      let last = start;
      for (let at = 2; at + size <= rsp.length; at += size) {
        const [s, e] = [rsp.readUInt16LE(at), rsp.readUInt16LE(at + 2)];
        if (size === 20 && rsp.subarray(at + 4, at + 20).equals(service)) range = [s, e];
        last = e;
      }
      if (last === 0xffff || last < start) break;
      start = last + 1;
    }
    if (!range) throw new AttError('service not found');
    for (let at = range[0]; at <= range[1]; ) {
      const req = Buffer.alloc(7);
      req[0] = OP_READ_BY_TYPE_REQ;
      req.writeUInt16LE(at, 1);
      req.writeUInt16LE(range[1], 3);
      req.writeUInt16LE(CHARACTERISTIC, 5);
      const rsp = await this.request(req, OP_READ_BY_TYPE_RSP);
      const size = rsp[1];
      let last = at;
      for (let i = 2; i + size <= rsp.length; i += size) {
        if (size === 21 && rsp.subarray(i + 5, i + 21).equals(characteristic)) return rsp.readUInt16LE(i + 3);
        last = rsp.readUInt16LE(i);
      }
      at = last + 1;
    }
    throw new AttError('characteristic not found');
  }

  async read(handle: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let got = 0;
    for (;;) {
      const blob = parts.length > 0;
      const req = Buffer.alloc(blob ? 5 : 3);
      req[0] = blob ? OP_READ_BLOB_REQ : OP_READ_REQ;
      req.writeUInt16LE(handle, 1);
      if (blob) req.writeUInt16LE(got, 3);
      const rsp = await this.request(req, blob ? OP_READ_BLOB_RSP : OP_READ_RSP);
      parts.push(rsp.subarray(1));
      got += rsp.length - 1;
      if (rsp.length < this.mtu || got >= 512) return Buffer.concat(parts);
    }
  }

  async write(handle: number, value: Buffer): Promise<void> {
    if (value.length + 3 <= this.mtu) {
      await this.request(Buffer.concat([Buffer.from([OP_WRITE_REQ, handle & 0xff, handle >> 8]), value]), OP_WRITE_RSP);
      return;
    }
    const chunk = this.mtu - 5;
    for (let offset = 0; offset < value.length; offset += chunk) {
      const head = Buffer.from([OP_PREPARE_WRITE_REQ, handle & 0xff, handle >> 8, offset & 0xff, offset >> 8]);
      await this.request(Buffer.concat([head, value.subarray(offset, offset + chunk)]), OP_PREPARE_WRITE_RSP);
    }
    await this.request(Buffer.from([OP_EXECUTE_WRITE_REQ, 0x01]), OP_EXECUTE_WRITE_RSP);
  }
}
