// The data path of the gateway: radio → decode → aggregate → store. Sightings are stamped with
// whether the clock was synchronised; once a second the open encounters are swept (silence,
// length) and the closed ones handed to the store; a wall-clock step closes them all, since no
// encounter may span one.
import { AggregatorState, closeAll, ClosedEncounter, observe, sweep } from '../core/encounters/index.js';
import type { Logger } from '../core/log/index.js';
import { AdvertKind, classifyAdvertisement, decodeAdvertisement, DropCounters, newDropCounters, type Sighting } from '../core/protocols/index.js';
import type { ClockState, SteadyClock } from './clock/index.js';
import type { Lifecycle } from './lifecycle.js';
import type { Radio } from './radio/index.js';
import type { Store } from './store/index.js';

export interface PipelineOptions {
  radio: Radio;
  aggregator: AggregatorState;
  store: Store;
  steady: SteadyClock;
  clock: () => ClockState;
  /** Whether the clock is synchronised now: set by the pipeline once a second, read by the store too. */
  clockSync: { synced: boolean };
  log: Logger;
}

export class Pipeline implements Lifecycle {
  readonly name = 'radio pipeline';
  readonly drops: DropCounters = newDropCounters();
  readonly adverts = { received: 0, withTempId: 0 };
  /** What else the radio hears, for a technician's diagnosis; nothing of it is stored. */
  readonly heard: Record<AdvertKind, number> = { exposureNotification: 0, eddystone: 0, ibeacon: 0, opentrace: 0, other: 0 };
  private readonly closed: ClosedEncounter[] = [];
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(private readonly o: PipelineOptions) {
    o.steady.onStep((stepMs) => {
      closeAll(o.aggregator, this.closed, 'clockStep');
      o.log.warn({ stepMs }, 'wall clock stepped; open encounters closed, timestamps re-anchored');
    });
  }

  start(): void {
    const { radio, aggregator } = this.o;
    radio.start((data, rssi, address, time) => {
      this.adverts.received++;
      const sighting = decodeAdvertisement(data, rssi, address, time, this.drops);
      if (sighting === null) {
        this.heard[classifyAdvertisement(data)]++;
        return;
      }
      this.heard.exposureNotification++;
      sighting.clockSynced = this.o.clockSync.synced;
      this.adverts.withTempId++;
      observe(aggregator, sighting, this.closed);
    });
    this.sweepTimer = setInterval(() => {
      // A simulated radio keeps its own time: wall-clock steps do not concern it. Its time is
      // still anchored on the wall clock, so an unsynchronised clock flags its sightings too.
      if (radio.followsWallClock) this.o.steady.check();
      this.o.clockSync.synced = this.o.clock().synchronized;
      sweep(aggregator, radio.now(), this.closed);
      this.handOver();
    }, 1000);
  }

  /**
   * A BlueTrace exchange (either role) joins the same aggregation as adverts: one encounter per
   * temp ID. It is stamped with the clock state like a sighting.
   */
  exchange(sighting: Sighting): void {
    sighting.clockSynced = this.o.clockSync.synced;
    observe(this.o.aggregator, sighting, this.closed);
  }

  /** Stops the radio, closes every open encounter and hands them to the store. */
  stop(): void {
    this.o.radio.stop();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    closeAll(this.o.aggregator, this.closed);
    this.handOver();
  }

  private handOver(): void {
    if (this.closed.length === 0) return;
    this.o.store.addEncounters(this.closed);
    this.closed.length = 0;
  }
}
