// The one configuration schema: validation, defaults and `vgw config docs`.
export * from './schema.js';
export * from './load.js';
export * from './docs.js';
export * from './version.js';
export * from './remote.js';
