export { Bluetrace } from './bluetrace.js';
export type { BluetraceDeps } from './bluetrace.js';
export { TempIdSupply } from './tempid-supply.js';
export type { TempIdSupplyOptions } from './tempid-supply.js';
