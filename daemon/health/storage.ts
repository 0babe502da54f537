// Which storage holds the database, read from sysfs: a technician should know whether a unit
// whose power is cut every night writes to an SD card, and which one (what a cut may lose
// depends on whether the card honours flush requests; see the README, "Power cuts").
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export interface StorageInfo {
  /** The whole device (mmcblk0, sda, vda), or null when the folder is on no block device. */
  device: string | null;
  sdCard: boolean;
  detail: string;
}

/** SD card manufacturer ids (CID MID) of the makers most often found in Pis. */
const SD_MAKERS: Record<number, string> = { 0x02: 'Toshiba/Kioxia', 0x03: 'SanDisk', 0x1b: 'Samsung', 0x41: 'Kingston', 0x74: 'Transcend' };

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Linux's dev_t as stat reports it: major in bits 8-19, minor in bits 0-7 and 20-31. */
export function deviceNumbers(dev: number): { major: number; minor: number } {
  return { major: Math.floor(dev / 256) & 0xfff, minor: (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00) };
}

/** Describes the block device of `dev` (a folder's `stat().dev`) from the sysfs tree at `sys`. */
export function describeStorage(dev: number, sys = '/sys'): StorageInfo {
  const { major, minor } = deviceNumbers(dev);
  const link = join(sys, 'dev', 'block', `${major}:${minor}`);
  if (major === 0 || !existsSync(link)) {
    return { device: null, sdCard: false, detail: `no block device (${major}:${minor}: tmpfs, overlay or a network filesystem)` };
  }
  let dir = realpathSync(link);
  if (existsSync(join(dir, 'partition'))) dir = dirname(dir);
  const device = basename(dir);
  const cache = read(join(dir, 'queue', 'write_cache'));
  const cacheNote = cache ? `, write cache: ${cache}` : '';
  const type = read(join(dir, 'device', 'type'));
  if (type === 'SD' || type === 'MMC') {
    const mid = Number.parseInt(read(join(dir, 'device', 'manfid')) ?? '', 16);
    const maker = Number.isNaN(mid) ? 'unknown maker' : (SD_MAKERS[mid] ?? `maker 0x${mid.toString(16).padStart(6, '0')}`);
    const name = read(join(dir, 'device', 'name')) ?? 'unnamed';
    const date = read(join(dir, 'device', 'date'));
    const what = type === 'SD' ? 'SD card' : 'eMMC';
    return {
      device, sdCard: type === 'SD',
      detail: `${what} ${name} (${maker}${date ? `, made ${date}` : ''}) as ${device}${cacheNote}`,
    };
  }
  const model = [read(join(dir, 'device', 'vendor')), read(join(dir, 'device', 'model'))].filter(Boolean).join(' ');
  return { device, sdCard: false, detail: `${device}${model ? ` (${model})` : ''}${cacheNote}` };
}
