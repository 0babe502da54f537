import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { advertisingReportEvents, CaptureFormatError, readHciCapture, VirtualController } from '../simulators/index.js';
import { fail, UsageError } from './errors.js';

function positive(value: string, option: string): number {
  const n = Number(value);
  if (!(n >= 0)) throw new UsageError(`${option}: "${value}" must be a number ≥ 0`);
  return n;
}

export function virtualControllerCommand(): Command {
  return new Command('virtual-controller')
    .description('run the virtual Bluetooth controller: H4 over a unix socket, a crowd of phones or a replayed capture')
    .requiredOption('--socket <path>', 'unix socket to listen on (each connection is one controller)')
    .option('--seed <n>', 'crowd seed', '1')
    .option('--phones <n>', 'phones in total, 0 = endless', '0')
    .option('--arrivals-per-minute <n>', 'phones arriving per minute', '30')
    .option('--min-dwell <s>', 'shortest walk-by, seconds', '20')
    .option('--max-dwell <s>', 'longest walk-by, seconds', '120')
    .option('--replay <file>', 'replay the LE Advertising Reports of a btsnoop or pcapng HCI log instead of a crowd')
    .addHelpText('after', '\nThe daemon connects with radio.scanner.transport "unix:<path>" (and beacon.transport for bleno).\nExample:\n  vgw virtual-controller --socket /tmp/vc.sock --arrivals-per-minute 60')
    .action(async (opts: { socket: string; seed: string; phones: string; arrivalsPerMinute: string; minDwell: string; maxDwell: string; replay?: string }) => {
      try {
        const replay = opts.replay ? advertisingReportEvents(readHciCapture(readFileSync(opts.replay))).map((r) => r.packet) : undefined;
        const minDwellS = positive(opts.minDwell, '--min-dwell');
        const maxDwellS = positive(opts.maxDwell, '--max-dwell');
        if (minDwellS > maxDwellS) throw new UsageError('--min-dwell: must not exceed --max-dwell');
        const vc = new VirtualController({
          socketPath: opts.socket,
          replay,
          crowd: replay
            ? undefined
            : { seed: positive(opts.seed, '--seed'), phones: positive(opts.phones, '--phones'), arrivalsPerMinute: positive(opts.arrivalsPerMinute, '--arrivals-per-minute') || 1, minDwellS, maxDwellS, anchor: Date.now() },
        });
        await vc.start();
        process.stdout.write(`virtual controller listening on ${opts.socket}${replay ? ` (replaying ${replay.length} reports)` : ''}\n`);
        const stop = () => void vc.stop().then(() => process.exit(0));
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      } catch (err) {
        fail(err instanceof CaptureFormatError ? new UsageError(`--replay: ${err.message}`) : err);
      }
    });
}
