// The collector's HTTP side for operations: Prometheus metrics, a health check for load balancers
// and systemd, the fleet as JSON, and the fleet page. Read-only; binds to loopback by default.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../core/log/index.js';
import type { Collector } from './collector.js';
import { fleetRows, fleetSummary, HOUR_MS, venueChart } from './fleet.js';
import { FLEET_PAGE } from './fleet-page.js';
import { rolloutProgress } from './rollouts.js';

export interface CollectorHttpOptions {
  host: string;
  /** 0 takes a free port (logged, and `port` tells it). */
  port: number;
}

/** The most the venue chart shows: 14 days (retention) of hours, 20 venues. */
const MAX_HOURS = 24 * 14;
const MAX_TOP = 20;

export class CollectorHttp {
  private server: Server | null = null;

  constructor(private readonly collector: Collector, private readonly options: CollectorHttpOptions, private readonly log: Logger) {}

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        this.log.error({ url: req.url, err: err.message }, 'http request failed');
        if (!res.headersSent) send(res, 500, 'application/json', JSON.stringify({ error: err.message }));
        else res.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(
          new Error(
            err.code === 'EADDRINUSE'
              ? `collector.http.port: ${this.options.host}:${this.options.port} is in use (another collector?): choose another port, or 0 for any free one`
              : `collector.http: cannot listen on ${this.options.host}:${this.options.port} (${err.message})`,
          ),
        );
      });
      server.listen(this.options.port, this.options.host, () => resolve());
    });
    server.on('error', (err) => this.log.error({ err: err.message }, 'http server error'));
    this.server = server;
    this.log.info({ url: `http://${this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host}:${this.port}/` }, 'collector http: metrics, health and the fleet page');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'application/json', JSON.stringify({ error: 'only GET' }), { allow: 'GET, HEAD' });
    const url = new URL(req.url ?? '/', 'http://collector');
    if (url.pathname.startsWith('/api/') && !this.collector.started) {
      return send(res, 503, 'application/json', JSON.stringify({ error: 'the collector is starting: its database is not open yet' }), { 'retry-after': '2' });
    }
    switch (url.pathname) {
      case '/':
        return send(res, 200, 'text/html; charset=utf-8', FLEET_PAGE);
      case '/metrics': {
        const registry = this.collector.metrics.registry;
        return send(res, 200, registry.contentType, await registry.metrics());
      }
      case '/healthz': {
        const health = await this.collector.health();
        return send(res, health.healthy ? 200 : 503, 'application/json', JSON.stringify(health));
      }
      case '/api/fleet': {
        const store = this.collector.store;
        const now = Date.now();
        const rows = fleetRows(await store.lives(), await store.statuses(), now);
        const limit = intParam(url, 'limit', rows.length, 0, Number.MAX_SAFE_INTEGER);
        if (limit instanceof Error) return badRequest(res, limit);
        const rollouts = (await store.rollouts(10)).map((r) => rolloutProgress(r.rollout));
        return send(res, 200, 'application/json', JSON.stringify({ at: new Date(now).toISOString(), summary: fleetSummary(rows), rollouts, gateways: rows.slice(0, limit) }));
      }
      case '/api/venue-hours': {
        const hours = intParam(url, 'hours', 24, 1, MAX_HOURS);
        const top = intParam(url, 'top', 8, 1, MAX_TOP);
        if (hours instanceof Error) return badRequest(res, hours);
        if (top instanceof Error) return badRequest(res, top);
        const now = Date.now();
        const to = Math.floor(now / HOUR_MS) * HOUR_MS + HOUR_MS;
        const rows = await this.collector.store.venueHours(to - hours * HOUR_MS, to);
        return send(res, 200, 'application/json', JSON.stringify(venueChart(rows, now, hours, top)));
      }
      default:
        return send(res, 404, 'application/json', JSON.stringify({ error: `no such page: ${url.pathname} (there are /, /metrics, /healthz, /api/fleet, /api/venue-hours)` }));
    }
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function send(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function badRequest(res: ServerResponse, err: Error): void {
  send(res, 400, 'application/json', JSON.stringify({ error: err.message }));
}

/** An integer query parameter in [min, max]; absent gives the default, anything else an error naming it. */
function intParam(url: URL, name: string, fallback: number, min: number, max: number): number | Error {
  const raw = url.searchParams.get(name);
  if (raw === null) return fallback;
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) return new Error(`${name}: expected an integer from ${min} to ${max}, got "${raw}"`);
  return n;
}
