// `vgw doctor`'s storage line, read from sysfs. This machine has no SD card, so a tree laid out
// as a Raspberry Pi's kernel shows one (the real /sys is read in test/integration/technician.test.ts).
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeStorage, deviceNumbers } from '../../daemon/health/storage.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-storage-');

/** A sysfs tree with one whole device and its partition `major:minor`. */
function sysfs(name: string, major: number, minor: number, device: Record<string, string>, cache = 'write back'): string {
  const sys = join(dir, name);
  const disk = join(sys, 'devices', 'platform', 'host', 'block', name);
  mkdirSync(join(disk, `${name}p2`), { recursive: true });
  writeFileSync(join(disk, `${name}p2`, 'partition'), '2\n');
  mkdirSync(join(disk, 'device'), { recursive: true });
  for (const [file, value] of Object.entries(device)) writeFileSync(join(disk, 'device', file), `${value}\n`);
  mkdirSync(join(disk, 'queue'));
  writeFileSync(join(disk, 'queue', 'write_cache'), `${cache}\n`);
  mkdirSync(join(sys, 'dev', 'block'), { recursive: true });
  symlinkSync(join(disk, `${name}p2`), join(sys, 'dev', 'block', `${major}:${minor}`));
  return sys;
}

// dev_t as Linux's new_encode_dev packs it (what stat reports)
const devOf = (major: number, minor: number) => (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12);

describe('storage under the database', () => {
  it('an SD card in a Pi (mmcblk0p2, 179:2): says it is an SD card, its name, maker and date', () => {
    const sys = sysfs('mmcblk0', 179, 2, { type: 'SD', name: 'SC32G', manfid: '0x000003', oemid: '0x5344', date: '08/2021' });
    expect(describeStorage(devOf(179, 2), sys)).toEqual({
      device: 'mmcblk0', sdCard: true, detail: 'SD card SC32G (SanDisk, made 08/2021) as mmcblk0, write cache: write back',
    });
  });

  it('an unknown maker is shown by its id; eMMC is not called an SD card; a USB disk is named by its model', () => {
    const sd = sysfs('mmcblk1', 179, 258, { type: 'SD', name: 'USD00', manfid: '0x0000ad' });
    expect(describeStorage(devOf(179, 258), sd).detail).toBe('SD card USD00 (maker 0x0000ad) as mmcblk1, write cache: write back');
    const emmc = sysfs('mmcblk2', 179, 3, { type: 'MMC', name: 'BJTD4R', manfid: '0x000015' });
    expect(describeStorage(devOf(179, 3), emmc)).toMatchObject({ device: 'mmcblk2', sdCard: false });
    const usb = sysfs('sda', 8, 1, { vendor: 'Samsung', model: 'Flash Drive FIT' }, 'write through');
    expect(describeStorage(devOf(8, 1), usb)).toEqual({ device: 'sda', sdCard: false, detail: 'sda (Samsung Flash Drive FIT), write cache: write through' });
  });

  it('no block device (tmpfs, overlay): said so, never a crash', () => {
    expect(describeStorage(devOf(0, 45), join(dir, 'none')).detail).toMatch(/^no block device \(0:45/);
    expect(describeStorage(devOf(259, 7), join(dir, 'none')).device).toBeNull();
  });

  it('decodes dev_t as Linux encodes it, minors above 255 included', () => {
    expect(deviceNumbers(devOf(179, 258))).toEqual({ major: 179, minor: 258 });
    expect(deviceNumbers(65024)).toEqual({ major: 254, minor: 0 });
  });
});
