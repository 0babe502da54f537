// The BlueTrace concern: the venue's temp ID supply and the two roles, built from the config.
// The peripheral takes a slot on the advertising controller, the central rides the scanner's
// noble; both hand exchanges to the pipeline and stop while no valid temp ID is at hand.
import { besideDatabase, type Config } from '../../core/config/index.js';
import type { Logger } from '../../core/log/index.js';
import type { Sighting } from '../../core/protocols/index.js';
import type { BluetraceStatus } from '../../core/wire/status.js';
import type { Lifecycle } from '../lifecycle.js';
import { Advertiser, BluetraceCentral, BluetracePeripheral, type NobleCentral } from '../radio/index.js';
import type { Uplink } from '../uplink/index.js';
import { TempIdSupply } from './tempid-supply.js';

export interface BluetraceDeps {
  uplink: Uplink;
  advertiser: Advertiser | null;
  clockSynced: () => boolean;
  steadyNow: () => number;
  onExchange: (s: Sighting) => void;
  log: Logger;
}

export class Bluetrace implements Lifecycle {
  readonly name = 'bluetrace';
  readonly supply: TempIdSupply;
  readonly peripheral: BluetracePeripheral | null;
  readonly central: BluetraceCentral | null;

  constructor(config: Config, d: BluetraceDeps) {
    const b = config.bluetrace;
    const t = b.tempIds;
    this.supply = new TempIdSupply(
      {
        path: t.file ?? besideDatabase(config, 'bluetrace-tempids.json'),
        lowWater: t.lowWater,
        retryMs: t.retryS * 1000,
        clockTrusted: () => t.unsyncedClock === 'use' || d.clockSynced(),
        request: (id, count) => d.uplink.requestTempIds(id, count),
      },
      d.log.child({ concern: 'bluetrace' }),
    );
    d.uplink.onTempIdsAnswer((r) => this.supply.accept(r));
    const role = {
      serviceUuid: b.serviceUuid,
      characteristicUuid: b.characteristicUuid,
      org: b.org,
      model: b.model,
      venueTempId: (now: number) => this.supply.current(now),
      now: d.steadyNow,
      onExchange: d.onExchange,
    };
    this.peripheral = b.peripheral.enabled && d.advertiser ? new BluetracePeripheral({ ...role, connectionTimeoutMs: b.peripheral.connectionTimeoutS * 1000 }, d.log) : null;
    if (this.peripheral) {
      const peripheral = this.peripheral;
      d.advertiser!.addSlot(peripheral);
      d.advertiser!.withBleno((bleno) => peripheral.attach(bleno));
    }
    this.central = b.central.enabled
      ? new BluetraceCentral({ ...role, connectionTimeoutMs: b.central.connectionTimeoutS * 1000, maxConnections: b.central.maxConnections, skipMs: b.central.skipS * 1000, ownAddress: () => d.advertiser?.address ?? null }, d.log)
      : null;
  }

  /** For the scanner: the central role connects through its noble. */
  attachCentral(noble: NobleCentral): void {
    this.central?.attach(noble);
  }

  start(): void {
    this.supply.start();
  }

  stop(): void {
    this.central?.stop();
    this.supply.stop();
  }

  status(): BluetraceStatus {
    const p = this.peripheral;
    const c = this.central;
    return {
      state: 'enabled',
      tempIds: this.supply.status(),
      peripheral: p ? { state: p.state, ...p.counters, refused: { ...p.counters.refused } } : null,
      central: c ? { ...c.counters, refused: { ...c.counters.refused }, connections: c.connections } : null,
    };
  }
}
