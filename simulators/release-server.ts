// A static HTTPS server for releases, as any web server would serve a folder (Range requests
// answered with 206), with a certificate from the project's own CA script; it can cut a download
// short once, to see the unit resume it, hold each download to a rate (as a CDN or a venue's
// uplink would), and it records what was asked. For tests and benchmarks.
import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { projectRoot } from '../core/software/index.js';

/** The project's CA script, found from here whether this runs from the sources or from dist/. */
const CERTS = join(projectRoot() ?? '.', 'provisioning/tls/certs.sh');

export interface ReleaseServer {
  /** https://127.0.0.1:<port>/ */
  url: string;
  /** The CA file that signs its certificate (the unit's update.ca). */
  ca: string;
  /** Requests seen: the file and the Range header, if any. */
  requests: Array<{ file: string; range: string | null; status: number }>;
  /** The next whole-file answer for `file` stops after `bytes` bytes, the connection dropped. */
  cutOnce(file: string, bytes: number): void;
  close(): Promise<void>;
}

function certificates(dir: string): { ca: string; cert: string; key: string } {
  for (const args of [['ca', dir], ['server', dir, 'releases', 'IP:127.0.0.1']]) {
    if (args[0] === 'ca' && existsSync(join(dir, 'ca.key'))) continue;
    const r = spawnSync('sh', [CERTS, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`certs.sh ${args.join(' ')}: ${r.stderr}`);
  }
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 'releases.crt'), key: join(dir, 'releases.key') };
}

/** Passes bytes on at no more than `bytesPerS` (a token bucket refilled every 50 ms). */
function throttle(bytesPerS: number): Transform {
  let allowance = 0;
  let last = Date.now();
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const send = (offset: number) => {
        const now = Date.now();
        allowance = Math.min(bytesPerS, allowance + ((now - last) / 1000) * bytesPerS);
        last = now;
        const n = Math.min(chunk.length - offset, Math.floor(allowance));
        if (n > 0) {
          this.push(chunk.subarray(offset, offset + n));
          allowance -= n;
        }
        if (offset + n >= chunk.length) done();
        else setTimeout(() => send(offset + n), 50);
      };
      send(0);
    },
  });
}

/** `rateBytesPerS`: each download's pace (none: as fast as the machine goes). */
export async function startReleaseServer(folder: string, pki: string, rateBytesPerS?: number): Promise<ReleaseServer> {
  const tls = certificates(pki);
  const requests: ReleaseServer['requests'] = [];
  const cuts = new Map<string, number>();
  const server: Server = createServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, (req, res) => {
    const file = basename(decodeURIComponent(new URL(req.url ?? '/', 'https://x').pathname));
    const path = join(folder, file);
    const range = req.headers.range ?? null;
    const answer = (status: number) => requests.push({ file, range, status });
    if (!existsSync(path)) {
      answer(404);
      res.writeHead(404).end('not found');
      return;
    }
    const size = statSync(path).size;
    const m = range ? /^bytes=(\d+)-$/.exec(range) : null;
    if (range && (!m || Number(m[1]) >= size)) {
      answer(416);
      res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      return;
    }
    const start = m ? Number(m[1]) : 0;
    answer(m ? 206 : 200);
    res.writeHead(m ? 206 : 200, { 'content-length': size - start, 'accept-ranges': 'bytes', ...(m ? { 'content-range': `bytes ${start}-${size - 1}/${size}` } : {}) });
    const cut = !m ? cuts.get(file) : undefined;
    if (cut === undefined) {
      const body = createReadStream(path, { start });
      void (rateBytesPerS ? pipeline(body, throttle(rateBytesPerS), res) : pipeline(body, res)).catch(() => res.destroy());
      return;
    }
    cuts.delete(file);
    // Part of the body, then the connection dropped as a failing mobile link would.
    const stream = createReadStream(path, { start: 0, end: cut - 1 });
    stream.on('data', (chunk) => res.write(chunk));
    stream.on('end', () => setTimeout(() => res.socket?.destroy(), 50));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}/`, ca: tls.ca, requests,
    cutOnce: (file, bytes) => cuts.set(file, bytes),
    close: () => new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
