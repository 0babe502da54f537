export { Crowd, CROWD_MODEL, enAdvertisingData, phone, rotationAt } from './crowd.js';
export type { AdvertSink, CrowdOptions, Phone } from './crowd.js';
export { SimulatedRadio } from './simulated.js';
export type { SimulatedRadioOptions } from './simulated.js';
