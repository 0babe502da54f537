// Child process of the HCI-stack benchmark: a virtual controller that floods its scanner
// with LE Advertising Reports. argv: socket path, report count, mode (stable | rotating).
//   stable:   a busy entrance, 500 phones (addresses and RPIs) cycling;
//   rotating: every report from a new address and RPI (1,000,000 addresses pass by).
import { createHash } from 'node:crypto';
import { advertisingReport, enAdvertisingData, VirtualController } from '../simulators/index.js';

const [socketPath, countText, mode] = process.argv.slice(2);
const count = Number(countText);
const vc = new VirtualController({ socketPath });
await vc.start();
process.send?.('ready');

function addressOf(i: number): string {
  const b = Buffer.alloc(6);
  b.writeUIntBE(i, 0, 6);
  b[0] = (b[0] & 0x3f) | 0x40;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

function report(i: number): Buffer {
  const rpi = createHash('md5').update(String(i)).digest();
  return advertisingReport(enAdvertisingData(rpi, rpi.subarray(0, 4)), -60 - (i % 30), addressOf(i));
}

const stable = mode === 'stable' ? Array.from({ length: 500 }, (_, i) => report(i)) : [];
// Ten chunks; after each, wait for the parent's "next" so it can sample memory at rest.
const chunk = Math.ceil(count / 10);
for (let from = 0; from < count; from += chunk) {
  const n = Math.min(chunk, count - from);
  await vc.flood(n, (i) => (mode === 'stable' ? stable[(from + i) % 500] : report(from + i)));
  await new Promise((resolve) => process.once('message', resolve));
}
process.exit(0);
