/** The `kith` client commands of SPEC §1.2. Returns the exit code. */
export async function runClient(argv: string[]): Promise<number> {
  process.stderr.write(`kith: unknown command '${argv[0]}'\n`);
  return 2;
}
