export type { AdvertSink, Radio } from './radio.js';
export { createH4Framer } from './h4.js';
export { assignTransport, forcePassiveScan, h4Counters, hciGuardCounters, HciSocket, installHciSocket, wellFormedAdvertisingReport } from './hci-socket.js';
export { NobleScanner } from './noble-scanner.js';
export type { NobleScannerOptions } from './noble-scanner.js';
export { formatTransport, parseTransport, TRANSPORT_HELP } from './transport.js';
export type { TransportSpec } from './transport.js';
export { VenueBeacon } from './beacon.js';
export type { BeaconStatus, VenueBeaconOptions } from './beacon.js';
