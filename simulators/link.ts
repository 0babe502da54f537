// An LE connection on the virtual medium, between two ends: hosts behind emulated controllers
// (noble, bleno) or simulated phones. L2CAP frames cross it whole; each controller fragments
// them for its host. Delivery is asynchronous, as a radio's connection events are.

/** HCI role codes in LE Connection Complete. */
export const ROLE_CENTRAL = 0;
export const ROLE_PERIPHERAL = 1;
/** HCI reasons: the host ended it / the other side's host ended it / the link timed out. */
export const REASON_LOCAL_HOST = 0x16;
export const REASON_REMOTE_USER = 0x13;
export const REASON_TIMEOUT = 0x08;

export interface LinkEnd {
  /** As noble prints it: colon-separated, most significant byte first. */
  readonly addressString: string;
  /** 0 public, 1 random. */
  readonly addressType: number;
  linkUp(link: Link, role: number): void;
  l2cap(link: Link, cid: number, payload: Buffer): void;
  linkDown(link: Link, reason: number): void;
}

export class Link {
  up = true;
  /** L2CAP frames carried each way, for tests and the flood benchmark. */
  frames = 0;

  constructor(
    readonly central: LinkEnd,
    readonly peripheral: LinkEnd,
    /** What either end measures of the other now (Read RSSI). */
    readonly rssi: () => number,
    private readonly latencyMs = 0,
  ) {}

  /** Both ends learn of the link: the central first, as its controller completes the connection. */
  open(): void {
    this.central.linkUp(this, ROLE_CENTRAL);
    this.peripheral.linkUp(this, ROLE_PERIPHERAL);
  }

  other(end: LinkEnd): LinkEnd {
    return end === this.central ? this.peripheral : this.central;
  }

  send(from: LinkEnd, cid: number, payload: Buffer): void {
    if (!this.up) return;
    const to = this.other(from);
    const deliver = () => {
      if (!this.up) return;
      this.frames++;
      to.l2cap(this, cid, payload);
    };
    if (this.latencyMs > 0) setTimeout(deliver, this.latencyMs);
    else setImmediate(deliver);
  }

  /** Ends the link: `by` gets the local reason, the other end `reason`. */
  close(by: LinkEnd, reason: number, localReason = REASON_LOCAL_HOST): void {
    if (!this.up) return;
    this.up = false;
    by.linkDown(this, localReason);
    this.other(by).linkDown(this, reason);
  }
}
