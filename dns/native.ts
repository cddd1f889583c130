import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * The native UDP engine (`dns/native/udp.cc`, built by `scripts/build-native.sh`
 * into `build/Release/kith_udp.node`).
 *
 * Why it exists: at a fixed 20,000 queries/s on the 2-core test machines a
 * bare `node:dgram` responder that only copies each query back has a p99 of
 * 0.5 to 1 ms, nsd 0.3 to 0.45 ms (`test/bench/README.md`). Node's per-datagram path (a 64 KB receive buffer,
 * a call into JavaScript and a send request for each packet) costs 6 to 9 µs
 * of CPU per query, so the agent waits for a CPU more often and longer than
 * nsd does. The engine reads and answers the common query on a thread of its
 * own, in batches, from the same precomputed answers as dns/fastpath.ts; every
 * other datagram reaches the JavaScript server unchanged.
 */

export interface NativeStats {
  /** [qtype * 32 + rcode, count] of the queries the thread answered. */
  counts: [number, number][];
  /** Counts per latency bucket of dns/metrics.ts, the last one +Inf. */
  buckets: number[];
  sum: number;
  count: number;
  hits: number;
  misses: number;
  /** Never answered: source port 0, QR=1, shorter than a header, cut short. */
  dropped: number;
  /** Sent to JavaScript but refused because its queue was full. */
  overflow: number;
  entries: number;
}

declare const engineBrand: unique symbol;
export type EngineHandle = { readonly [engineBrand]: true };

export interface NativeUdp {
  open(host: string, port: number, bufferBytes: number): EngineHandle;
  start(engine: EngineHandle, onMiss: (query: Buffer, address: string, port: number) => void, queueSize: number): void;
  send(engine: EngineHandle, bytes: Buffer, address: string, port: number): boolean;
  store(engine: EngineHandle, query: Buffer, response: Buffer, generation: number, rcode: number): boolean;
  setGeneration(engine: EngineHandle, generation: number): void;
  stats(engine: EngineHandle): NativeStats;
  close(engine: EngineHandle): void;
}

let loaded: { udp?: NativeUdp; error?: string } | undefined;

/** The engine, or why it cannot be used (not built, or built for another node). */
export function loadNativeUdp(): { udp?: NativeUdp; error?: string } {
  if (loaded) return loaded;
  let dir = import.meta.dirname;
  let path: string | undefined;
  for (let i = 0; i < 4 && !path; i++) {
    const p = join(dir, 'build', 'Release', 'kith_udp.node');
    if (existsSync(p)) path = p;
    dir = dirname(dir);
  }
  if (!path) return (loaded = { error: 'build/Release/kith_udp.node not found (run scripts/build-native.sh)' });
  try {
    loaded = { udp: createRequire(import.meta.url)(path) as NativeUdp };
  } catch (err) {
    loaded = { error: `${path}: ${(err as Error).message}` };
  }
  return loaded;
}
