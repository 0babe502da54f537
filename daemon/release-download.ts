// Fetching a release over HTTPS (docs/operating.md, "Releases"): the manifest whole, the tarball
// into a `.part` file that an interrupted download resumes with a Range request, within the size
// the signed manifest names. Integrity is the manifest's business (size, SHA-256, signature);
// HTTPS keeps a network from learning or steering which release a unit takes.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, statSync, truncateSync } from 'node:fs';
import { get as httpsGet, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Timers } from '../core/time/index.js';

export class DownloadError extends Error {
  /** false: asking again will not help (a 404, a server that ignores the size). */
  constructor(message: string, readonly retryable: boolean) {
    super(message);
    this.name = 'DownloadError';
  }
}

export interface FetchOptions {
  /** The release server's CA (PEM); the system's CAs otherwise. */
  ca?: Buffer;
  /** No byte for this long: the connection is given up (and a download resumed). */
  idleTimeoutMs: number;
}

/** Only HTTPS: a command naming anything else is refused before anything is fetched. */
export function releaseUrlProblem(url: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `manifest: "${url.slice(0, 200)}" is not a URL`;
  }
  return parsed.protocol === 'https:' ? null : `manifest: ${parsed.protocol}// is not allowed: a release is fetched over https:// only`;
}

function request(url: string, opts: FetchOptions, headers: Record<string, string>): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const options: RequestOptions = { headers, timeout: opts.idleTimeoutMs, ...(opts.ca ? { ca: opts.ca } : {}) };
    const req = httpsGet(url, options, resolve);
    req.on('timeout', () => req.destroy(new DownloadError(`${url}: no answer within ${opts.idleTimeoutMs / 1000} s`, true)));
    req.on('error', (err) => reject(err instanceof DownloadError ? err : new DownloadError(`${url}: ${err.message}`, true)));
  });
}

const httpError = (url: string, status: number | undefined) =>
  new DownloadError(`${url}: HTTP ${status ?? '?'}${status === 404 ? ' (no such release on the server)' : ''}`, status !== undefined && status >= 500);

/** A small file whole (the manifest), at most `maxBytes`. */
export async function fetchSmall(url: string, maxBytes: number, opts: FetchOptions): Promise<Buffer> {
  const res = await request(url, opts, {});
  if (res.statusCode !== 200) {
    res.resume();
    throw httpError(url, res.statusCode);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      res.destroy();
      throw new DownloadError(`${url}: larger than ${maxBytes} bytes: not a release manifest`, false);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

const sizeOf = (file: string) => (existsSync(file) ? statSync(file).size : 0);

/**
 * One attempt: what `part` lacks of the `total` bytes, resumed from its end when it holds some.
 * Resolves when the file is whole; rejects on a cut, a timeout or a bad answer.
 */
async function attempt(url: string, part: string, total: number, opts: FetchOptions, onBytes: (have: number) => void): Promise<void> {
  let have = sizeOf(part);
  if (have > total) {
    truncateSync(part, 0);
    have = 0;
  }
  if (have === total) return;
  const res = await request(url, opts, have > 0 ? { Range: `bytes=${have}-` } : {});
  let append = have > 0;
  if (res.statusCode === 200) append = false; // the server sends it whole: start again
  else if (res.statusCode === 206) {
    const start = /^bytes (\d+)-/.exec(res.headers['content-range'] ?? '');
    if (!start || Number(start[1]) !== have) {
      res.resume();
      truncateSync(part, 0);
      throw new DownloadError(`${url}: the server resumed at ${start?.[1] ?? 'an unnamed offset'}, not at byte ${have}; starting again`, true);
    }
  } else if (res.statusCode === 416 && have > 0) {
    res.resume();
    truncateSync(part, 0); // what is held is not a prefix of what the server has
    throw new DownloadError(`${url}: the server has no bytes after ${have}; starting again`, true);
  } else {
    res.resume();
    throw httpError(url, res.statusCode);
  }
  const out = createWriteStream(part, { flags: append ? 'a' : 'w', mode: 0o644 });
  let written = append ? have : 0;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      written += chunk.length;
      if (written > total) throw new DownloadError(`${url}: more than the ${total} bytes the signed manifest names`, false);
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
      onBytes(written);
    }
  } catch (err) {
    throw err instanceof DownloadError ? err : new DownloadError(`${url}: ${(err as Error).message}`, true);
  } finally {
    await new Promise<void>((resolve) => out.end(resolve));
  }
  if (!res.complete || written < total) throw new DownloadError(`${url}: the connection ended after ${written} of ${total} bytes`, true);
}

/**
 * The whole file into `part`, resumed across cuts (at most `tries` connections, waiting 1, 2, 4 …
 * s between them, at most 60). `part` survives a restart too: a later command for the same release
 * resumes it, and the hash check catches whatever a power cut left in its tail.
 */
export async function downloadResumable(
  url: string, part: string, total: number, opts: FetchOptions & { tries: number; timers: Timers; onBytes: (have: number) => void; onRetry: (err: DownloadError) => void },
): Promise<void> {
  for (let n = 1; ; n++) {
    try {
      await attempt(url, part, total, opts, opts.onBytes);
      return;
    } catch (err) {
      const e = err instanceof DownloadError ? err : new DownloadError(`${url}: ${(err as Error).message}`, true);
      if (!e.retryable || n >= opts.tries) throw e;
      opts.onRetry(e);
      await new Promise<void>((r) => opts.timers.setTimeout(() => r(), Math.min(60_000, 1000 * 2 ** (n - 1))));
    }
  }
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
