import { Command } from 'commander';
import { openCollectorStore, verifyBatch } from '../collector/index.js';
import { pull, PullError } from '../collector/pull.js';
import { batchToJson } from '../core/wire/index.js';
import { fail, parseTime, UsageError } from './errors.js';
import { gatewayAddress } from './gateway-address.js';

interface PullOptions {
  venue: string;
  gateway: string;
  from: string;
  to: string;
  config?: string;
  broker?: string;
  timeout: string;
  controlKey?: string;
  json?: boolean;
}

export function pullCommand(): Command {
  return new Command('pull')
    .description("ask a gateway to re-publish the encounters of a time range (still within its retention)")
    .requiredOption('--venue <id>', 'venue id')
    .requiredOption('--gateway <id>', 'gateway id')
    .requiredOption('--from <time>', 'start, ISO-8601 or unix ms (inclusive)')
    .requiredOption('--to <time>', 'end, ISO-8601 or unix ms (exclusive)')
    .option('-c, --config <file>', "collector config: its broker, and its database to store what arrives")
    .option('--broker <url>', 'broker URL when no config is given')
    .option('--timeout <s>', 'seconds to wait for the whole answer', '30')
    .option('--control-key <file>', "the backend key file the request is signed with (default: the config's collector.controlKeyFile); a gateway answers signed requests only")
    .option('--json', 'print the answer as JSON: an array of its parts in order, each as `vgw decode` prints a batch (header fields and an `encounters` array)')
    .addHelpText(
      'after',
      '\nEncounters overlapping [from, to) are returned. Exit codes: 0 ok, 1 failure, 2 bad arguments, 3 no answer in time.\n' +
        'Example:\n  vgw pull --venue mall-01 --gateway gw-01 --from 2026-11-22T08:00Z --to 2026-11-22T10:00Z -c collector.json',
    )
    .action(async (opts: PullOptions) => {
      try {
        const from = parseTime(opts.from, '--from');
        const to = parseTime(opts.to, '--to');
        if (to <= from) throw new UsageError('--to: must be after --from');
        const { address, config, registry } = await gatewayAddress(opts, 'pull');
        const parts = await pull({ ...address, from, to });
        const total = parts.reduce((n, p) => n + p.encounters.length, 0);
        let stored = 0;
        // Each part as its key signed it (the store keeps sequence numbers per key).
        const signers = parts.map((p) => {
          if (!registry) return null;
          const verdict = verifyBatch(p, registry);
          if (!verdict.ok) throw new PullError(`reply part ${p.part ?? 0} refused: ${verdict.reason}`);
          return verdict.signer;
        });
        if (opts.config && config.collector) {
          const store = await openCollectorStore(config.collector.database);
          try {
            const results = await store.commit(parts.map((p, i) => ({ batch: p, signer: signers[i] })));
            for (const r of results) {
              if (r instanceof Error) throw r;
              stored += r.stored;
            }
          } finally {
            await store.close();
          }
        }
        if (opts.json) process.stdout.write(JSON.stringify(parts.map(batchToJson), null, 2) + '\n');
        else process.stdout.write(JSON.stringify({ venue: opts.venue, gateway: opts.gateway, from, to, parts: parts.length, encounters: total, newlyStored: stored }) + '\n');
      } catch (err) {
        fail(err);
      }
    });
}
