// What the daemon needs of a radio, real (NobleScanner over HCI) or simulated (simulators/):
// advertising reports as raw AD bytes with RSSI, address and the radio's own time.
export type AdvertSink = (data: Buffer, rssi: number, address: string, time: number) => void;

export interface Radio {
  start(sink: AdvertSink): void;
  stop(): void;
  /** The radio's clock: a steady wall clock for the real one, simulated time for a crowd. */
  now(): number;
}
