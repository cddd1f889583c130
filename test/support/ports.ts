import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * Ports for test servers come from below the kernel's ephemeral range.
 * A port the kernel hands out with `listen(0)` is also one it hands to the
 * next outgoing connection: between our probe and the server's bind, any
 * client on the machine can take it as its source port, and the server then
 * fails with EADDRINUSE. Below the ephemeral range only explicit binds compete.
 */
function ephemeralLow(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && low > 12000) return low;
  } catch {
    // not Linux, or /proc not mounted: fall through to the default
  }
  return 32768;
}

const FIRST = 10000;
const SPAN = ephemeralLow() - FIRST;
/** Start at a point that differs between processes so parallel runs rarely meet. */
let next = (process.pid * 7919) % SPAN;
const handedOut = new Set<number>();

function tcpFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

function udpFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    sock.unref();
    sock.once('error', () => {
      sock.close();
      resolve(false);
    });
    sock.bind({ port, address: host, exclusive: true }, () => sock.close(() => resolve(true)));
  });
}

/**
 * A port free for both TCP and UDP on `host` a moment ago, outside the
 * ephemeral range and never handed out twice by this process.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let tries = 0; tries < 500; tries++) {
    const port = FIRST + next;
    next = (next + 1) % SPAN;
    if (handedOut.has(port)) continue;
    if ((await tcpFree(port, host)) && (await udpFree(port, host))) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port on ${host} in ${FIRST}-${FIRST + SPAN - 1} after 500 tries`);
}

const handedOutAddresses = new Set<string>();

/**
 * A loopback address of 127/8 (all of which Linux routes to `lo`) on which
 * `port` is free for TCP and UDP: a stand-in for a node's cluster address,
 * where pods expect the agent on fixed ports (DNS 53, API 80).
 */
export async function loopbackAddress(port: number): Promise<string> {
  for (let tries = 0; tries < 50; tries++) {
    const host = `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
    if (handedOutAddresses.has(host)) continue;
    if ((await tcpFree(port, host)) && (await udpFree(port, host))) {
      handedOutAddresses.add(host);
      return host;
    }
  }
  throw new Error(`no loopback address with port ${port} free after 50 tries`);
}
