#!/usr/bin/env node
import { runAgent } from './agent.js';
import { generateName } from './names.js';

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
