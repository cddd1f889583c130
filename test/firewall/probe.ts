import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Tiny TCP/UDP servers and clients run with `node -e` inside test namespaces,
 * so a test sees exactly what a client sees: an answer, a refusal (RST or
 * ICMP port unreachable, as from REJECT), or silence.
 */

/** Serves `<label>:<port>` on every TCP port and echoes it on every UDP port given; prints `ready` once bound. */
export const SERVER = `
const net = require('node:net'), dgram = require('node:dgram');
const [label, tcp, udp] = process.argv.slice(1);
let pending = 0;
const up = () => { if (--pending === 0) console.log('ready'); };
for (const p of tcp.split(',').filter(Boolean)) {
  pending++;
  net.createServer((s) => { s.on('error', () => {}); s.end(label + ':' + p + '\\n'); }).listen(Number(p), '0.0.0.0', up);
}
for (const p of udp.split(',').filter(Boolean)) {
  pending++;
  const s = dgram.createSocket('udp4');
  s.on('message', (m, r) => s.send(label + ':udp' + p + '\\n', r.port, r.address));
  s.bind(Number(p), '0.0.0.0', up);
}
`;

/** Prints `answer:<text>`, `refused`, `timeout` or `error:<code>` for one TCP or UDP exchange. */
export const CLIENT = `
const net = require('node:net'), dgram = require('node:dgram');
const [proto, host, port] = process.argv.slice(1);
const done = (s) => { console.log(s); process.exit(0); };
setTimeout(() => done('timeout'), 2000);
const fail = (e) => done(e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET' ? 'refused' : 'error:' + e.code);
if (proto === 'tcp') {
  let data = '';
  const s = net.connect(Number(port), host);
  s.on('data', (d) => (data += d));
  s.on('end', () => done(data ? 'answer:' + data.trim() : 'refused'));
  s.on('error', fail);
} else {
  const s = dgram.createSocket('udp4');
  s.on('message', (m) => done('answer:' + String(m).trim()));
  s.on('error', fail);
  s.connect(Number(port), host, () => s.send('probe'));
}
`;

export interface Runner {
  run(cmd: string, args: string[], opts?: { reject?: boolean }): Promise<{ stdout: string }>;
  spawn(cmd: string, args: string[]): ChildProcess;
}

/** One exchange from inside `where`. */
export async function probe(where: Runner, proto: 'tcp' | 'udp', host: string, port: number): Promise<string> {
  const r = await where.run(process.execPath, ['-e', CLIENT, proto, host, String(port)], { reject: false });
  return r.stdout.trim() || 'error:no-output';
}

/** Starts a SERVER inside `where` and waits (bounded) until it is bound. */
export async function serve(where: Runner, label: string, tcp: number[], udp: number[] = []): Promise<ChildProcess> {
  const p = where.spawn(process.execPath, ['-e', SERVER, label, tcp.join(','), udp.join(',')]);
  let out = '';
  let err = '';
  p.stdout!.on('data', (d) => (out += d));
  p.stderr!.on('data', (d) => (err += d));
  for (let i = 0; i < 100 && !out.includes('ready'); i++) {
    if (p.exitCode !== null) break;
    await sleep(50);
  }
  if (!out.includes('ready')) throw new Error(`server ${label} did not start: ${err}`);
  return p;
}
