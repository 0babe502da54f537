// Reading a config file: bounded in size and depth, JSON with numbers that fit, then the schema.
import { closeSync, openSync, readSync } from 'node:fs';
import { type Config, ConfigError, parseConfig } from './schema.js';

/**
 * Reads a small text or binary file the user named, refusing more than `maxBytes` (a device
 * such as /dev/zero or a wrong path must not eat the memory).
 */
export function readFileLimited(path: string | 0, maxBytes: number, field: string): Buffer {
  const fd = path === 0 ? 0 : openSync(path, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(65_536, maxBytes + 1 - total));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > maxBytes) throw new RangeError(`${field}: ${path === 0 ? 'standard input' : path} is larger than ${maxBytes} bytes: is it the right file?`);
    }
    return Buffer.concat(chunks);
  } finally {
    if (fd !== 0) closeSync(fd);
  }
}

/** JSON.parse turns numbers too large for a double (1e400) into Infinity: name where. */
function nonFiniteNumbers(value: unknown, path: string[] = []): string[] {
  if (typeof value === 'number') return Number.isFinite(value) ? [] : [`${path.join('.') || '(top level)'}: the number is too large: use a value that fits (see \`vgw config docs\`)`];
  if (Array.isArray(value)) return value.flatMap((v, i) => nonFiniteNumbers(v, [...path, String(i)]));
  if (typeof value === 'object' && value !== null) return Object.entries(value).flatMap(([k, v]) => nonFiniteNumbers(v, [...path, k]));
  return [];
}

const MAX_CONFIG_BYTES = 1024 * 1024;
/** The schema is 4 levels deep; a deeper file is not a config, and the checks below recurse. */
const MAX_CONFIG_DEPTH = 32;

/** How deep arrays and objects nest in JSON text, counted without parsing (so without recursion). */
function nestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') max = Math.max(max, ++depth);
    else if (c === '}' || c === ']') depth--;
  }
  return max;
}

export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileLimited(path, MAX_CONFIG_BYTES, 'config').toString('utf8');
  } catch (err) {
    if (err instanceof RangeError) throw new ConfigError([`larger than ${MAX_CONFIG_BYTES} bytes: is it the right file?`], path);
    throw new ConfigError([`cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)}): check the path`], path);
  }
  const depth = nestingDepth(text);
  if (depth > MAX_CONFIG_DEPTH) throw new ConfigError([`nested ${depth} levels deep; a config is at most ${MAX_CONFIG_DEPTH}: is it the right file?`], path);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`not valid JSON (${(err as Error).message}): fix the syntax`], path);
  }
  const tooLarge = nonFiniteNumbers(json);
  if (tooLarge.length > 0) throw new ConfigError(tooLarge, path);
  return parseConfig(json, path);
}

export function requireGateway(config: Config): NonNullable<Config['gateway']> {
  if (!config.gateway) {
    throw new ConfigError(['gateway: required by `vgw run`: add {"gateway": {"id": "...", "venue": "..."}}'], '');
  }
  return config.gateway;
}

export function requireSecretsFile(config: Config): string {
  if (!config.secretsFile) {
    throw new ConfigError(['secretsFile: required by `vgw run`: every batch is signed with the key it holds; run `vgw provision` to make one'], '');
  }
  return config.secretsFile;
}
