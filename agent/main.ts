#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runAgent } from './agent.js';
import { ConfigError } from './errors.js';
import { generateName } from './names.js';
import { kithVersion } from './version.js';

// gRPC names a TLS peer by its IP address when an endpoint is one, and Node warns about that
// (DEP0123) on stderr, where a failed start promises one line. The certificate is checked all the same.
const emitWarning = process.emitWarning.bind(process) as (...args: unknown[]) => void;
process.emitWarning = ((...args: unknown[]) => {
  const code = typeof args[1] === 'object' && args[1] !== null ? (args[1] as { code?: unknown }).code : args[2];
  if (code !== 'DEP0123') emitWarning(...args);
}) as typeof process.emitWarning;

const USAGE = `usage: kith <command> [flags]

  kith agent [flags]   run the node agent (kith agent --help lists its flags)
  kith gen-name        print a random node or pod name
  kith version         print kith's version
  kith systemd-unit [--env] [agent flags]
                       print a systemd unit running 'kith agent' (--env: the
                       environment file it reads, /etc/default/kith, with those flags)

`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'agent':
      return runAgent(rest);
    case 'gen-name':
      process.stdout.write(`${generateName()}\n`);
      return 0;
    case 'version':
    case '--version':
      process.stdout.write(`kith ${kithVersion()}\n`);
      return 0;
    case 'systemd-unit': {
      const { systemdEnv, systemdUnit } = await import('./systemd.js');
      try {
        if (rest[0] === '--env') process.stdout.write(systemdEnv(rest.slice(1)));
        else process.stdout.write(systemdUnit(process.execPath, realpathSync(fileURLToPath(import.meta.url)), rest));
        return 0;
      } catch (err) {
        process.stderr.write(`kith systemd-unit: ${(err as Error).message}\n`);
        return err instanceof ConfigError ? 2 : 1;
      }
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + (await import('./cli/client.js')).CLIENT_USAGE);
      return command === undefined ? 2 : 0;
    default: {
      // Client commands (SPEC §1.2) live in agent/cli/.
      const { runClient } = await import('./cli/client.js');
      return runClient(argv);
    }
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`kith: ${err.message.split('\n')[0]}\n`);
    process.exit(1);
  },
);
