// A local unix socket that answers the daemon's status document: `vgw status` and `vgw doctor`
// on the unit read it without broker credentials (a gateway's certificate may not make
// requests) and without writing anything to the SD card.
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, Server } from 'node:net';
import { dirname } from 'node:path';
import { controlSocketPath } from '../../core/config/index.js';

export { controlSocketPath };
import type { Logger } from '../../core/log/index.js';
import { LocalStatus, parseStatus } from '../../core/wire/index.js';

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Serves `status()` as one JSON line per connection; a failure to listen is logged, not fatal. */
export async function startControlSocket(path: string, status: () => unknown, log: Logger): Promise<Server | null> {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    if (existsSync(path)) {
      if (await socketAnswers(path)) {
        log.error({ path }, 'another daemon answers on the control socket; status will not be served');
        return null;
      }
      unlinkSync(path); // left by a daemon that was killed
    }
    const server = createServer((conn) => {
      conn.on('error', () => conn.destroy());
      conn.end(JSON.stringify(status()) + '\n');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    chmodSync(path, 0o660);
    server.on('error', (err) => log.warn({ err: err.message }, 'control socket error'));
    return server;
  } catch (err) {
    log.warn({ path, err: (err as Error).message }, 'control socket not available; `vgw status` will not reach this daemon');
    return null;
  }
}

/**
 * The running daemon's status, or null when nothing answers within `timeoutMs`; a StatusError
 * when what answers is not a status document (another program, another protocol version).
 */
export function readControlSocket(path: string, timeoutMs = 3000): Promise<LocalStatus | null> {
  return new Promise((resolve, reject) => {
    let text = '';
    const s = createConnection(path);
    const timer = setTimeout(() => {
      s.destroy();
      resolve(null);
    }, timeoutMs);
    s.on('data', (d) => (text += d.toString()));
    s.on('error', () => {
      clearTimeout(timer);
      resolve(null);
    });
    s.on('end', () => {
      clearTimeout(timer);
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        return resolve(null);
      }
      try {
        resolve(parseStatus(value, `the control socket ${path}`) as LocalStatus);
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}

/** The control socket as a concern of the daemon: listens at start, closes at stop. */
export class ControlSocket {
  readonly name = 'control socket';
  private server: Server | null = null;

  constructor(private readonly path: string, private readonly status: () => unknown, private readonly log: Logger) {}

  async start(): Promise<void> {
    this.server = await startControlSocket(this.path, this.status, this.log);
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
