// The real radio path for scanning: unmodified @abandonware/noble on any HCI transport. Every
// advertising report goes to the sink as raw AD bytes. noble keeps an object per address
// forever (see ble-facts); phones rotate addresses every ~15 min, so the scanner prunes
// noble's per-address tables of every address not heard for a while.
import { createRequire } from 'node:module';
import type { Logger } from '../../core/log/index.js';
import type { RadioStatus, ScannerCounters } from '../../core/wire/status.js';
import type { AdvertSink, Radio } from './radio.js';
import { assignTransport, h4Counters, hciGuardCounters, HciSocket, installHciSocket } from './hci-socket.js';
import { formatTransport, TransportSpec } from './transport.js';

export interface NobleScannerOptions {
  transport: TransportSpec;
  /** noble's device id for this controller (kernel hciN, or a slot for H4 transports). */
  deviceId: number;
  /** Addresses silent for between one and two of these are forgotten by noble. */
  pruneIntervalMs?: number;
  /** No report for this long: the supervisor steps in (restart scan → reset → reopen). */
  silenceMs?: number;
  /** Timestamps for reports (the daemon passes its steady clock). */
  now?: () => number;
  /** Gets noble once loaded: the BlueTrace central role connects through the scanner's noble. */
  onNoble?: (noble: import('./bluetrace-central.js').NobleCentral) => void;
}

type Dict = Record<string, unknown>;

interface NobleInternals {
  _peripherals: Record<string, { state?: string }>;
  _services: Dict;
  _characteristics: Dict;
  _descriptors: Dict;
  _discoveredPeripheralUUids: Dict;
  _bindings: {
    _hci: import('node:events').EventEmitter & { _socket: HciSocket; reset(): void };
    _gap: { _discoveries: Dict };
    _addresses: Dict;
    _addresseTypes: Dict;
    _connectable: Dict;
    scannable?: Dict;
  };
  on(event: string, listener: (...args: unknown[]) => void): void;
  startScanning(uuids: string[], allowDuplicates: boolean): void;
  on(event: 'discover', listener: (p: import('./bluetrace-central.js').NoblePeripheral) => void): void;
  stopScanning(): void;
  state: string;
}

export type { ScannerCounters };

/** Recovery steps, mildest first. */
const RECOVERY = ['restartScan', 'reset', 'reopen'] as const;
const RECOVERY_COUNTER: Record<(typeof RECOVERY)[number], keyof ScannerCounters> = {
  restartScan: 'recoverRestartScan',
  reset: 'recoverReset',
  reopen: 'recoverReopen',
};

export class NobleScanner implements Radio {
  readonly counters: ScannerCounters = {
    reports: 0, stateChanges: 0, prunedAddresses: 0, recoverRestartScan: 0, recoverReset: 0, recoverReopen: 0, recovered: 0,
  };
  state = 'unknown';
  readonly followsWallClock = true;
  private noble: NobleInternals | null = null;
  private heard = new Set<string>();
  private pruneTimer: NodeJS.Timeout | null = null;
  private superviseTimer: NodeJS.Timeout | null = null;
  private lastReportAt = performance.now();
  private lastActionAt = 0;
  /** How far the supervisor has escalated since reports last flowed (0: all well). */
  private level = 0;
  private stopping = false;

  constructor(private readonly options: NobleScannerOptions, private readonly log: Logger) {}

  now(): number {
    return (this.options.now ?? Date.now)();
  }

  start(sink: AdvertSink): void {
    installHciSocket();
    assignTransport(this.options.deviceId, { transport: this.options.transport, passiveScan: true });
    const require = createRequire(import.meta.url);
    const noble = (require('@abandonware/noble/with-custom-binding') as (o: object) => NobleInternals)({ deviceId: this.options.deviceId });
    this.noble = noble;
    noble._bindings._hci.on('leAdvertisingReport', (_status: number, _type: number, address: string, _addressType: string, eir: Buffer, rssi: number) => {
      this.counters.reports++;
      this.lastReportAt = performance.now();
      if (this.level > 0) {
        this.log.info({ after: RECOVERY[this.level - 1] }, 'scanner recovered: reports flow again');
        this.counters.recovered++;
        this.level = 0;
      }
      this.heard.add(address);
      sink(eir, rssi, address, this.now());
    });
    noble.on('stateChange', (state) => {
      this.counters.stateChanges++;
      this.state = String(state);
      this.log.info({ state, transport: formatTransport(this.options.transport) }, 'scanner controller state');
      // Duplicates allowed: every advert counts towards an encounter.
      if (state === 'poweredOn') noble.startScanning([], true);
    });
    // Some controllers end the scan when a connection starts (abandonware/noble #191): scan on.
    noble.on('scanStop', () => {
      setTimeout(() => !this.stopping && noble.state === 'poweredOn' && noble.startScanning([], true), 100).unref();
    });
    this.options.onNoble?.(noble);
    const interval = this.options.pruneIntervalMs ?? 5 * 60_000;
    this.pruneTimer = setInterval(() => this.prune(), interval);
    this.pruneTimer.unref();
    const silenceMs = this.options.silenceMs ?? 60_000;
    this.superviseTimer = setInterval(() => this.supervise(silenceMs), Math.min(5000, silenceMs / 2));
    this.superviseTimer.unref();
  }

  /**
   * No reports for `silenceMs` (a wedged controller, a dead link): escalate one step per silent
   * period, restart scanning → reset the controller → reopen the transport, then keep reopening
   * at a slower pace. Never throws: an adapter fault must not stop the daemon.
   */
  private supervise(silenceMs: number): void {
    const n = this.noble;
    const now = performance.now();
    if (!n || now - this.lastReportAt < silenceMs) return;
    const pace = this.level >= RECOVERY.length ? silenceMs * 5 : silenceMs;
    if (now - this.lastActionAt < pace) return;
    this.lastActionAt = now;
    const step = RECOVERY[Math.min(this.level, RECOVERY.length - 1)];
    this.level++;
    this.counters[RECOVERY_COUNTER[step]]++;
    this.log.warn({ step, silentS: Math.round((now - this.lastReportAt) / 1000), state: this.state }, 'no advertising reports; recovering the scanner');
    try {
      const hci = n._bindings._hci;
      if (step === 'restartScan') {
        if (n.state === 'poweredOn') n.stopScanning();
        setTimeout(() => n.state === 'poweredOn' && n.startScanning([], true), 200).unref();
      } else if (step === 'reset') {
        hci.reset();
        // After a reset the controller forgets its scan state; noble, already poweredOn, does not rescan.
        setTimeout(() => n.state === 'poweredOn' && n.startScanning([], true), 500).unref();
      } else {
        hci._socket.reopen();
      }
    } catch (err) {
      this.log.error({ step, err: (err as Error).message }, 'scanner recovery step failed');
    }
  }

  get recoveryLevel(): number {
    return this.level;
  }

  /** Forgets, in noble, every address not heard since the previous prune. */
  prune(): void {
    const n = this.noble;
    if (!n) return;
    const heard = this.heard;
    this.heard = new Set();
    const b = n._bindings;
    for (const address of Object.keys(b._gap._discoveries)) {
      if (!heard.has(address)) delete b._gap._discoveries[address];
    }
    for (const uuid of Object.keys(n._peripherals)) {
      const state = n._peripherals[uuid].state;
      if (state === 'connected' || state === 'connecting') continue;
      const address = uuid.match(/.{2}/g)?.join(':') ?? uuid;
      if (heard.has(address)) continue;
      for (const table of [n._peripherals, n._services, n._characteristics, n._descriptors, n._discoveredPeripheralUUids, b._addresses, b._addresseTypes, b._connectable, b.scannable ?? {}]) {
        delete (table as Dict)[uuid];
      }
      this.counters.prunedAddresses++;
    }
  }

  /** Why the controller cannot be reached, when it cannot (for the status and `vgw doctor`). */
  get transportError(): string | null {
    return this.noble?._bindings._hci._socket.lastError ?? null;
  }

  /** Peripherals noble currently remembers: flat over time thanks to prune(). */
  get rememberedAddresses(): number {
    return this.noble ? Object.keys(this.noble._peripherals).length : 0;
  }

  poweredOn(): boolean {
    return this.state === 'poweredOn';
  }

  status(): RadioStatus {
    return {
      state: this.state, error: this.transportError, ...this.counters, recoveryLevel: this.recoveryLevel,
      rememberedAddresses: this.rememberedAddresses, h4: { ...h4Counters }, hciGuard: { ...hciGuardCounters },
    };
  }

  stop(): void {
    this.stopping = true;
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    if (this.superviseTimer) clearInterval(this.superviseTimer);
    const n = this.noble;
    if (!n) return;
    if (n.state === 'poweredOn') n.stopScanning();
    n._bindings._hci._socket.close();
  }
}
