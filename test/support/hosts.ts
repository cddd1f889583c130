/**
 * Test hosts: network namespaces made by the test run, joined like hosts on one LAN.
 *
 *   const lan = await TestLan.create({ hosts: 2 });   // also sweeps leftovers of crashed runs
 *   try {
 *     const [h1, h2] = lan.hosts;                     // h1.name 'kt-ab12cd-1', h1.address '198.18.X.1'
 *     await h1.run('ip', ['-br', 'addr']);            // a command inside h1 (nsenter --net), throws on non-zero exit
 *     const srv = h1.spawn('busybox', ['nc', '-lk', '-p', '9000', '-e', 'echo', 'hi']);  // killed by destroy()
 *     TestAgent.start({ wrap: h1.wrap, args: [...] });    // a process inside h1
 *     const etcdUrl = `http://${lan.gateway}:${await lan.relay(etcd.clientPort)}`;  // root loopback service, reachable from the hosts
 *     await h1.route('10.231.2.0/24', h2.address);    // host-gw style route
 *     const pod = await h1.addNamespacePod('10.231.1.0/24');  // a "pod" without podman: a netns behind a bridge in h1
 *   } finally {
 *     await lan.destroy();                            // everything above, even after failures
 *   }
 *
 * Layout. The LAN is a bridge in its own namespace `<id>-lan`; each host is a
 * namespace `<id>-<n>` whose `eth0` (a veth) is a port of that bridge, with
 * address `198.18.X.<n>/24` (RFC 2544 benchmark range, X random per run and
 * not used by this machine) and loopback up. With `uplink` (the default) the
 * root namespace joins the LAN too, as `lan.gateway` = `198.18.X.254` on the
 * link `<id>`: the test process reaches the hosts' addresses (an agent's API),
 * and the hosts reach services of the test process through `relay()`. No
 * default route is set in a host, and root does not forward, so nothing a host
 * sends leaves the machine. ip_forward is 1 in every host (pods route through
 * it).
 *
 * Commands run in a host with `nsenter --net=/run/netns/<name>` (`wrap`), not
 * `ip netns exec`, which remounts /sys and breaks podman. podman run that way
 * creates its networks, bridges and pods inside the host namespace.
 *
 * Naming convention: every name the run makes starts with `lan.id` (`kt-` and
 * six random characters). Name podman networks, pods and containers made in a
 * host with a prefix of `host.name` (e.g. `--pod-network <host.name>`, worker
 * node name `<host.name>`): `destroy()` removes, inside each host, every podman
 * container, pod and network whose name starts with `<host.name>`, then any
 * left starting with `lan.id`. It then kills every process still in the run's
 * namespaces, deletes the uplink, and deletes the namespaces.
 *
 * Leftovers of crashed runs: a run writes its owner (pid and start time) to
 * `/run/kith-test-hosts/<id>` before making anything; `sweepTestHosts()`
 * (called by the first `TestLan.create()` of a process) destroys every
 * `kt-xxxxxx` namespace, link and podman object whose owner is gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type Options as ExecaOptions } from 'execa';

const OWNERS = '/run/kith-test-hosts';
const ID_RE = /^kt-[a-z0-9]{6}$/;
const NAME_RE = /^(kt-[a-z0-9]{6})(-|$)/;
const EXEC_TIMEOUT = 30_000;

export interface LanOptions {
  /** Number of hosts (1..200). */
  hosts: number;
  /** Put the root namespace on the LAN as `gateway` (default true). */
  uplink?: boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

async function sh(cmd: string, args: string[], opts: ExecaOptions = {}): Promise<RunResult> {
  const r = await execa(cmd, args, { stdin: 'ignore', timeout: EXEC_TIMEOUT, reject: false, ...opts });
  const res = { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode: r.exitCode ?? -1 };
  if (opts.reject !== false && res.exitCode !== 0) {
    throw new Error(`${[cmd, ...args].join(' ')}: exit ${res.exitCode}${r.timedOut ? ' (timed out)' : ''}: ${res.stderr.trim()}`);
  }
  return res;
}

/** Runs and ignores failure (for clean-up of what may already be gone). */
async function tryRun(cmd: string, args: string[]): Promise<RunResult> {
  return sh(cmd, args, { reject: false });
}

function randomId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return 'kt-' + [...randomBytes(6)].map((b) => alphabet[b % alphabet.length]).join('');
}

function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function ownerAlive(id: string): boolean {
  try {
    const [pid, start] = readFileSync(join(OWNERS, id), 'utf8').trim().split(' ');
    return startTime(Number(pid)) === start;
  } catch {
    return false;
  }
}

export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

/** `nsenter` prefix that runs a command inside a network namespace. */
export function nsWrap(name: string): string[] {
  return ['nsenter', `--net=${netnsPath(name)}`];
}

/** A "pod" made without podman: a namespace whose eth0 sits on a bridge of its host. */
export interface NamespacePod {
  /** Namespace name, `<host.name>-p<k>`. */
  name: string;
  address: string;
  wrap: string[];
  run(cmd: string, args: string[], opts?: ExecaOptions): Promise<RunResult>;
  spawn(cmd: string, args: string[]): ChildProcess;
}

export class TestHost {
  readonly wrap: string[];
  private readonly children: ChildProcess[] = [];
  private podBridge: { subnet: string; gateway: string; next: number } | undefined;
  /** Namespaces of namespace pods, deleted by destroy(). */
  readonly podNamespaces: string[] = [];

  constructor(
    readonly lan: TestLan,
    /** Namespace name, `<lan.id>-<index>`. */
    readonly name: string,
    readonly index: number,
    /** This host's LAN address. */
    readonly address: string,
  ) {
    this.wrap = nsWrap(name);
  }

  /** Runs a command inside this host; throws (naming the command and stderr) on a non-zero exit unless `reject: false`. */
  run(cmd: string, args: string[], opts: ExecaOptions = {}): Promise<RunResult> {
    return sh(this.wrap[0]!, [...this.wrap.slice(1), cmd, ...args], opts);
  }

  /** Starts a long-running process inside this host; destroy() kills it. */
  spawn(cmd: string, args: string[]): ChildProcess {
    const p = spawn(this.wrap[0]!, [...this.wrap.slice(1), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(p);
    return p;
  }

  /** Routes `subnet` via `via` (e.g. another host's address) in this host. */
  async route(subnet: string, via: string): Promise<void> {
    await sh('ip', ['-n', this.name, 'route', 'replace', subnet, 'via', via]);
  }

  /**
   * A namespace standing in for a pod: a veth from a bridge `kpods` in this host
   * (address `<subnet>.1`, made on first use) to `eth0` in the new namespace
   * (`<subnet>.<k+1>`, default route via the bridge). `subnet` is a /24 and must
   * be the same on every call for one host.
   */
  async addNamespacePod(subnet: string): Promise<NamespacePod> {
    const base = subnet.replace(/\.0\/24$/, '');
    if (base === subnet) throw new Error(`addNamespacePod: '${subnet}' is not an a.b.c.0/24 subnet`);
    if (!this.podBridge) {
      await sh('ip', ['-n', this.name, 'link', 'add', 'kpods', 'type', 'bridge']);
      await sh('ip', ['-n', this.name, 'addr', 'add', `${base}.1/24`, 'dev', 'kpods']);
      await sh('ip', ['-n', this.name, 'link', 'set', 'kpods', 'up']);
      this.podBridge = { subnet, gateway: `${base}.1`, next: 2 };
    } else if (this.podBridge.subnet !== subnet) {
      throw new Error(`addNamespacePod: host ${this.name} already has pod subnet ${this.podBridge.subnet}`);
    }
    const k = this.podBridge.next++;
    const name = `${this.name}-p${k}`;
    const address = `${base}.${k}`;
    this.podNamespaces.push(name);
    await sh('ip', ['netns', 'add', name]);
    await sh('ip', ['link', 'add', 'eth0', 'netns', name, 'type', 'veth', 'peer', 'name', `vp${k}`, 'netns', this.name]);
    await sh('ip', ['-n', this.name, 'link', 'set', `vp${k}`, 'master', 'kpods', 'up']);
    await sh('ip', ['-n', name, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
    await sh('ip', ['-n', name, 'link', 'set', 'eth0', 'up']);
    await sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    await sh('ip', ['-n', name, 'route', 'add', 'default', 'via', this.podBridge.gateway]);
    const wrap = nsWrap(name);
    return {
      name,
      address,
      wrap,
      run: (cmd, args, opts = {}) => sh(wrap[0]!, [...wrap.slice(1), cmd, ...args], opts),
      spawn: (cmd, args) => {
        const p = spawn(wrap[0]!, [...wrap.slice(1), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        this.children.push(p);
        return p;
      },
    };
  }

  /** Kills what this host's handle started and every process left in its namespaces; removes its podman objects. */
  async cleanUp(): Promise<void> {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await removePodman(this.name, this.wrap);
    for (const ns of [...this.podNamespaces, this.name]) await killNamespace(ns);
  }
}

/** Removes podman containers, pods and networks whose names start with `prefix`, running podman under `wrap`. */
async function removePodman(prefix: string, wrap: string[] = []): Promise<void> {
  const podman = (args: string[]) => tryRun(wrap[0] ?? 'podman', wrap.length ? [...wrap.slice(1), 'podman', ...args] : args);
  const matches = (n: string) => n === prefix || n.startsWith(prefix + '-');
  const names = async (args: string[]) =>
    (await podman(args)).stdout.split('\n').map((s) => s.trim()).filter((n) => n && matches(n));
  const pods = await names(['pod', 'ps', '--format', '{{.Name}}']);
  if (pods.length) await podman(['pod', 'rm', '-f', '-t', '0', ...pods]);
  const containers = await names(['ps', '-a', '--format', '{{.Names}}']);
  if (containers.length) await podman(['rm', '-f', '-t', '0', ...containers]);
  const networks = await names(['network', 'ls', '--format', '{{.Name}}']);
  if (networks.length) await podman(['network', 'rm', '-f', ...networks]);
}

/** SIGKILLs every process in a namespace, then deletes it. */
async function killNamespace(ns: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const pids = (await tryRun('ip', ['netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean).map(Number);
    const others = pids.filter((p) => p !== process.pid);
    if (others.length === 0) break;
    for (const pid of others) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await sleep(50);
  }
  await tryRun('ip', ['netns', 'del', ns]);
}

async function listNetns(): Promise<string[]> {
  return (await tryRun('ip', ['netns', 'list'])).stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!.trim())
    .filter(Boolean);
}

let swept = false;

/** Destroys every test-host namespace, link and podman object of runs whose owner process is gone. Idempotent. */
export async function sweepTestHosts(): Promise<string[]> {
  const stale = new Set<string>();
  const consider = (name: string) => {
    const m = NAME_RE.exec(name);
    if (m && !ownerAlive(m[1]!)) stale.add(m[1]!);
  };
  const netns = await listNetns();
  netns.forEach(consider);
  const links = (await tryRun('ip', ['-o', 'link', 'show'])).stdout.split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '');
  links.forEach(consider);
  for (const args of [['pod', 'ps', '--format', '{{.Name}}'], ['ps', '-a', '--format', '{{.Names}}'], ['network', 'ls', '--format', '{{.Name}}']]) {
    (await tryRun('podman', args)).stdout.split('\n').map((s) => s.trim()).forEach(consider);
  }
  try {
    readdirSync(OWNERS).forEach(consider);
  } catch {
    /* no owners yet */
  }
  for (const id of stale) {
    // podman first, from inside each host still present, so its network teardown runs there.
    for (const ns of netns.filter((n) => /^kt-[a-z0-9]{6}-\d+$/.test(n) && n.startsWith(id + '-'))) {
      await removePodman(ns, nsWrap(ns));
    }
    await removePodman(id);
    for (const ns of netns.filter((n) => n.startsWith(id + '-'))) await killNamespace(ns);
    await tryRun('ip', ['link', 'del', id]);
    rmSync(join(OWNERS, id), { force: true });
  }
  return [...stale];
}

export class TestLan {
  readonly hosts: TestHost[] = [];
  /** Root namespace's address on the LAN (with uplink). */
  readonly gateway: string;
  readonly subnet: string;
  private readonly relays: Server[] = [];
  private readonly sockets = new Set<Socket>();
  private destroyed = false;

  private constructor(
    /** Prefix of every name this run makes: `kt-` and six random characters. */
    readonly id: string,
    /** The `X` of `198.18.X.0/24` or `198.19.X.0/24`: the LAN's third octet base. */
    private readonly net: string,
    readonly uplink: boolean,
  ) {
    this.subnet = `${net}.0/24`;
    this.gateway = `${net}.254`;
  }

  get lanNamespace(): string {
    return `${this.id}-lan`;
  }

  static async create(opts: LanOptions): Promise<TestLan> {
    if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > 200) throw new Error(`TestLan: hosts must be 1..200, not ${opts.hosts}`);
    if (!swept) {
      swept = true;
      await sweepTestHosts();
    }
    const id = randomId();
    mkdirSync(OWNERS, { recursive: true });
    writeFileSync(join(OWNERS, id), `${process.pid} ${startTime(process.pid)}\n`);
    const lan = new TestLan(id, await freeLanNet(), opts.uplink ?? true);
    try {
      await lan.build(opts.hosts);
    } catch (err) {
      await lan.destroy();
      throw err;
    }
    return lan;
  }

  private async build(n: number): Promise<void> {
    const ln = this.lanNamespace;
    await sh('ip', ['netns', 'add', ln]);
    await sh('ip', ['-n', ln, 'link', 'set', 'lo', 'up']);
    await sh('ip', ['-n', ln, 'link', 'add', 'br0', 'type', 'bridge']);
    await sh('ip', ['-n', ln, 'link', 'set', 'br0', 'up']);
    // Bridged LAN frames must not meet the lan namespace's (empty) iptables.
    await tryRun('nsenter', [`--net=${netnsPath(ln)}`, 'sysctl', '-q', '-w', 'net.bridge.bridge-nf-call-iptables=0']);
    for (let i = 1; i <= n; i++) {
      const name = `${this.id}-${i}`;
      const host = new TestHost(this, name, i, `${this.net}.${i}`);
      this.hosts.push(host);
      await sh('ip', ['netns', 'add', name]);
      await sh('ip', ['link', 'add', 'eth0', 'netns', name, 'type', 'veth', 'peer', 'name', `h${i}`, 'netns', ln]);
      await sh('ip', ['-n', ln, 'link', 'set', `h${i}`, 'master', 'br0', 'up']);
      await sh('ip', ['-n', name, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0']);
      await sh('ip', ['-n', name, 'link', 'set', 'eth0', 'up']);
      await sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
      await sh(host.wrap[0]!, [...host.wrap.slice(1), 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    }
    if (this.uplink) {
      await sh('ip', ['link', 'add', this.id, 'type', 'veth', 'peer', 'name', 'up0', 'netns', ln]);
      await sh('ip', ['-n', ln, 'link', 'set', 'up0', 'master', 'br0', 'up']);
      await sh('ip', ['addr', 'add', `${this.gateway}/24`, 'dev', this.id]);
      await sh('ip', ['link', 'set', this.id, 'up']);
      // Another run may have picked the same /24 at the same moment: give up rather than share it.
      const holders = (await tryRun('ip', ['-4', '-o', 'addr', 'show'])).stdout
        .split('\n')
        .filter((l) => l.includes(` ${this.net}.`) && !l.includes(` ${this.id} `));
      if (holders.length) throw new Error(`TestLan: ${this.subnet} taken by another run at the same time; retry`);
    }
    // Wait (bounded) until every host answers on the LAN: bridge ports take a moment to forward.
    for (const h of this.hosts) {
      for (let t = 0; ; t++) {
        const target = this.uplink ? this.gateway : this.hosts[0]!.address;
        const r = await h.run('busybox', ['ping', '-c', '1', '-W', '1', target], { reject: false });
        if (r.exitCode === 0) break;
        if (t >= 20) throw new Error(`TestLan: ${h.name} cannot reach ${target}`);
        await sleep(100);
      }
    }
  }

  /**
   * A TCP relay on `gateway:<returned port>` to `target:port` in the root
   * namespace, so hosts reach a loopback service of the test process (e.g. a
   * TestEtcd: `--etcd-endpoints http://${lan.gateway}:${await lan.relay(etcd.clientPort)}`).
   */
  async relay(port: number, target = '127.0.0.1'): Promise<number> {
    if (!this.uplink) throw new Error('TestLan.relay needs uplink');
    // Half-open both ways: a client that shuts down its sending side still gets the answer.
    const srv = createServer({ allowHalfOpen: true }, (client) => {
      const upstream = createConnection({ host: target, port, allowHalfOpen: true });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => (client.destroy(), upstream.destroy()));
      }
      client.pipe(upstream).pipe(client);
    });
    this.relays.push(srv);
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(0, this.gateway, () => resolve());
    });
    return (srv.address() as { port: number }).port;
  }

  /** Removes everything this run made. Safe to call twice and after a partial create. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.relays.map((r) => new Promise((res) => r.close(res))));
    const existing = new Set(await listNetns());
    for (const h of this.hosts) {
      if (existing.has(h.name)) await h.cleanUp();
      else for (const ns of h.podNamespaces) await killNamespace(ns);
    }
    await removePodman(this.id);
    await killNamespace(this.lanNamespace);
    if (this.uplink) await tryRun('ip', ['link', 'del', this.id]);
    rmSync(join(OWNERS, this.id), { force: true });
  }
}

/** A /24 of 198.18.0.0/15 that no interface of the root namespace has an address in. */
async function freeLanNet(): Promise<string> {
  const used = (await tryRun('ip', ['-4', '-o', 'addr', 'show'])).stdout;
  for (let i = 0; i < 100; i++) {
    const b = randomBytes(2);
    const net = `198.${18 + (b[0]! & 1)}.${b[1]!}`;
    if (!used.includes(` ${net}.`)) return net;
  }
  throw new Error('TestLan: no free /24 in 198.18.0.0/15');
}
