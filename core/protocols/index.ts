export * from './advertising-data.js';
export * from './decode.js';
export * from './exposure-notification.js';
export * from './sighting.js';
export * from './eddystone-eid.js';
export * from './classify.js';
