// Simulators: what stands in for the world in tests, the demo and benchmarks. A crowd of phones,
// the radio that hears it, a virtual HCI controller, HCI capture readers and a private Mosquitto.
// The daemon reaches in only for the simulated radio, when its config asks for one.
export { Crowd, CROWD_MODEL, enAdvertisingData, phone, rotationAt } from './crowd.js';
export type { CrowdOptions, Phone } from './crowd.js';
export { SimulatedRadio } from './simulated-radio.js';
export type { SimulatedRadioOptions } from './simulated-radio.js';
export { advertisingReport, VirtualController } from './virtual-controller.js';
export type { VirtualControllerOptions } from './virtual-controller.js';
export { advertisingReportEvents, CaptureFormatError, readHciCapture } from './captures.js';
export { freePort, LocalBroker } from './local-broker.js';
export { findPostgres, LocalPostgres } from './local-postgres.js';
export { FLEET_DEFAULTS, FleetSim } from './fleet.js';
export type { FleetOptions, FleetReport, ReconnectReport } from './fleet.js';
export { MemoryOutbox } from './memory-outbox.js';
export { assignVenueKinds, meanEncountersPerHour, poisson, VENUE_MIX } from './venue-mix.js';
export type { VenueKind } from './venue-mix.js';
