// Watchdog, readiness and the control socket's view of the daemon's health.
export * from './health-monitor.js';
