// What the daemon needs of a radio, real (NobleScanner over HCI) or simulated (simulators/):
// advertising reports as raw AD bytes with RSSI, address and the radio's own time.
import type { RadioStatus } from '../../core/wire/status.js';

export type AdvertSink = (data: Buffer, rssi: number, address: string, time: number) => void;

export interface Radio {
  start(sink: AdvertSink): void;
  stop(): void;
  /** The radio's clock: a steady wall clock for the real one, simulated time for a crowd. */
  now(): number;
  /** Whether its timestamps follow the wall clock (then a wall-clock step concerns them). */
  readonly followsWallClock: boolean;
  /** The controller's state as a technician reads it: poweredOn, poweredOff, ..., simulated. */
  readonly state: string;
  poweredOn(): boolean;
  /** The radio's part of the status document (`counters.radio`). */
  status(): RadioStatus;
}
