import { Command } from 'commander';
import { readFileLimited } from '../core/config/index.js';
import { batchToJson, decodeBatch, MAX_MESSAGE_BYTES, WireFormatError } from '../core/wire/index.js';
import { fail, UsageError } from './errors.js';

/** A batch is at most MAX_MESSAGE_BYTES (twice that as hex): nothing larger is read. */
function readInput(file: string | undefined): Buffer {
  const limit = 2 * MAX_MESSAGE_BYTES + 1024;
  try {
    return readFileLimited(file === undefined || file === '-' ? 0 : file, limit, 'file');
  } catch (err) {
    if (err instanceof RangeError) throw new UsageError(`file: larger than ${limit} bytes, more than any batch: is it the right file?`);
    throw new UsageError(`file: cannot read ${file ?? 'standard input'} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

export function decodeCommand(): Command {
  return new Command('decode')
    .description('print a batch payload (binary CBOR, as published) as readable JSON')
    .argument('[file]', 'payload file; standard input when absent or "-"')
    .option('--hex', 'the input is hex text rather than binary')
    .addHelpText('after', '\nExamples:\n  mosquitto_sub -t "vgw/v3/+/+/batch" -C 1 | vgw decode\n  vgw decode --hex batch.hex')
    .action((file: string | undefined, opts: { hex?: boolean }) => {
      try {
        let input = readInput(file);
        if (opts.hex) {
          const text = input.toString('utf8').replace(/\s+/g, '');
          if (!/^([0-9a-fA-F]{2})*$/.test(text)) throw new UsageError('--hex: the input is not an even number of hex digits');
          input = Buffer.from(text, 'hex');
        }
        process.stdout.write(JSON.stringify(batchToJson(decodeBatch(input)), null, 2) + '\n');
      } catch (err) {
        fail(err instanceof WireFormatError ? new UsageError(`not a valid batch: ${err.message}`) : err);
      }
    });
}
