import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { batchToJson, decodeBatch } from '../daemon/uplink/index.js';
import { fail, UsageError } from './errors.js';

export function decodeCommand(): Command {
  return new Command('decode')
    .description('print a batch payload (binary CBOR, as published) as readable JSON')
    .argument('[file]', 'payload file; standard input when absent or "-"')
    .option('--hex', 'the input is hex text rather than binary')
    .addHelpText('after', '\nExamples:\n  mosquitto_sub -t "vgw/v1/+/+/batch" -C 1 | vgw decode\n  vgw decode --hex batch.hex')
    .action((file: string | undefined, opts: { hex?: boolean }) => {
      try {
        let input = readFileSync(file === undefined || file === '-' ? 0 : file);
        if (opts.hex) {
          const text = input.toString('utf8').replace(/\s+/g, '');
          if (!/^([0-9a-fA-F]{2})*$/.test(text)) throw new UsageError('--hex: the input is not an even number of hex digits');
          input = Buffer.from(text, 'hex');
        }
        process.stdout.write(JSON.stringify(batchToJson(decodeBatch(input)), null, 2) + '\n');
      } catch (err) {
        fail(err instanceof Error && err.name === 'WireFormatError' ? new UsageError(`not a valid batch: ${err.message}`) : err);
      }
    });
}
