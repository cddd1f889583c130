#!/usr/bin/env node
import { runAgent } from './agent.js';
import { generateName } from './names.js';

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

`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'agent':
      return runAgent(rest);
    case 'gen-name':
      process.stdout.write(`${generateName()}\n`);
      return 0;
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
