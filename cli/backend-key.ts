// The backend's signing key: made once on the backend, its public half given to every unit at
// provisioning (`vgw provision --backend-key`). Acks, requests and temp-ID answers are signed with it.
import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { loadBackendKeySeed, writeNewBackendKey } from '../core/trust/index.js';
import { ControlSigner } from '../core/wire/index.js';
import { fail, UsageError } from './errors.js';

export function backendKeyCommand(): Command {
  return new Command('backend-key')
    .description("make the backend's signing key (mode 0600), or show the public key of one; units trust what it signs")
    .option('--out <file>', 'write a new key here (refuses to overwrite)')
    .option('--show <file>', 'print the public key of an existing key file')
    .option('--json', 'print {"publicKey", "kid"} as JSON')
    .addHelpText('after', '\nExamples:\n  vgw backend-key --out /etc/venue-gateway/backend.key\n  vgw backend-key --show /etc/venue-gateway/backend.key --json\nGive the public key to `vgw provision --backend-key`, and the file to the collectors (collector.controlKeyFile).')
    .action((opts: { out?: string; show?: string; json?: boolean }) => {
      try {
        if (!!opts.out === !!opts.show) throw new UsageError('give one of --out <file> (a new key) or --show <file> (an existing one)');
        if (opts.out && existsSync(opts.out)) throw new UsageError(`--out: ${opts.out} exists: a backend key is never overwritten (units trust it); choose another file`);
        const signer = new ControlSigner(opts.out ? writeNewBackendKey(opts.out) : loadBackendKeySeed(opts.show!));
        const shown = { publicKey: signer.key.publicKey.toString('hex'), kid: signer.kid.toString('hex') };
        if (opts.json) process.stdout.write(JSON.stringify(shown) + '\n');
        else process.stdout.write(`${opts.out ? `wrote ${opts.out} (mode 0600)\n` : ''}public key ${shown.publicKey}\nkey id     ${shown.kid}\n`);
      } catch (err) {
        fail(err);
      }
    });
}
