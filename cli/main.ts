#!/usr/bin/env node
import { Command } from 'commander';
import { softwareVersion } from '../core/software/index.js';
import { beaconCommand } from './beacon.js';
import { collectCommand } from './collect.js';
import { commandCommand } from './command.js';
import { configCommand } from './config.js';
import { decodeCommand } from './decode.js';
import { demoCommand } from './demo.js';
import { EXIT } from './errors.js';
import { exportCommand } from './export.js';
import { fleetCommand } from './fleet.js';
import { fleetSimCommand } from './fleet-sim.js';
import { matchCommand } from './match.js';
import { provisionCommand } from './provision.js';
import { backendKeyCommand } from './backend-key.js';
import { releaseCommand } from './release.js';
import { pullCommand } from './pull.js';
import { statusCommand } from './status.js';
import { traceCommand } from './trace.js';
import { doctorCommand } from './doctor.js';
import { runCommand } from './run.js';
import { updateCommand } from './update.js';
import { virtualControllerCommand } from './virtual-controller.js';

const program = new Command('vgw')
  .description('venue-gateway: venue BLE beacon and encounter logger for contact tracing')
  .version(`${softwareVersion().version} (commit ${softwareVersion().commit})`)
  // A command's options are its own: `vgw fleet config set -c …` gives -c to `set`, not to `fleet`.
  .enablePositionalOptions()
  .addHelpText('after', '\nExit codes: 0 ok, 1 failure, 2 bad arguments or config, 3 timeout.');

for (const cmd of [provisionCommand(), backendKeyCommand(), releaseCommand(), updateCommand(), runCommand(), statusCommand(), doctorCommand(), collectCommand(), pullCommand(), commandCommand(), decodeCommand(), configCommand(), beaconCommand(), matchCommand(), traceCommand(), exportCommand(), fleetCommand(), virtualControllerCommand(), fleetSimCommand(), demoCommand()]) {
  program.addCommand(cmd);
}

/** commander's own usage errors (unknown option, missing argument) exit with 2, like ours. */
function usageExitCodes(cmd: Command): void {
  cmd.exitOverride((err) => process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage));
  for (const sub of cmd.commands) usageExitCodes(sub);
}
usageExitCodes(program);

await program.parseAsync(process.argv);
