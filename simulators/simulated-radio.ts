// The simulated radio: drives a Crowd against a clock that may run faster than life.
import type { AdvertSink, Radio } from '../daemon/radio/index.js';
import { Crowd, CrowdOptions } from './crowd.js';
import type { RadioStatus } from '../core/wire/status.js';

export interface SimulatedRadioOptions extends CrowdOptions {
  /** Simulated ms per real ms. */
  speed: number;
  tickMs?: number;
  wallClock?: () => number;
}

export class SimulatedRadio implements Radio {
  /** Its own (possibly accelerated) time, anchored on the wall clock but not stepped with it. */
  readonly followsWallClock = false;
  readonly state = 'simulated';
  private readonly crowd: Crowd;
  private readonly wall: () => number;
  private timer: NodeJS.Timeout | null = null;
  private last: number;

  constructor(private readonly options: SimulatedRadioOptions) {
    this.crowd = new Crowd(options);
    this.wall = options.wallClock ?? Date.now;
    this.last = this.now();
  }

  /** Simulated time: runs `speed` times faster than the wall clock from the anchor on. */
  now(): number {
    return Math.floor(this.options.anchor + (this.wall() - this.options.anchor) * this.options.speed);
  }

  start(sink: AdvertSink): void {
    if (this.timer) return;
    this.last = this.now();
    this.timer = setInterval(() => {
      const now = this.now();
      this.crowd.advance(this.last, now, sink);
      this.last = now;
    }, this.options.tickMs ?? 100);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  poweredOn(): boolean {
    return true;
  }

  status(): RadioStatus {
    return { state: this.state };
  }

  get finished(): boolean {
    return this.crowd.done();
  }
}
