import { expect } from 'chai';
import { pod as podSchema } from '../../../api/schemas.js';
import { fits, formatCpu, minus, parseLimit, podRequest } from '../../../agent/capacity.js';
import { containerRunArgs, podCreateArgs, podExits } from '../../../agent/runtime/podman-args.js';
import { gatewayOf, normalizeCidr, overlaps, subnetsOf } from '../../../agent/ipv4.js';
import { legacySubnetKey, SUBNET_PREFIX, subnetKey, subnetOfKey } from '../../../agent/keys.js';
import { desiredRoutes, routeChanges } from '../../../agent/worker/routes.js';
import { parseSubnetOwner, pickSubnet } from '../../../agent/worker/subnet-claim.js';

const spec = (containers: unknown[]) => podSchema.parse({ name: 'p', type: 'pod', state: 'created', spec: { containers } }).spec;

describe('worker accounting', () => {
  it('commits the summed request, else the largest limit, else the default', () => {
    expect(podRequest(spec([{ name: 'a', image: 'i' }]))).to.deep.equal({ cpu: 1, memory: 128 });
    expect(
      podRequest(spec([
        { name: 'a', image: 'i', resources: { requests: { cpu: '0.25', memory: 100 } } },
        { name: 'b', image: 'i', resources: { requests: { cpu: 0.5 } } },
      ])),
    ).to.deep.equal({ cpu: 750, memory: 100 });
    expect(podRequest(spec([{ name: 'a', image: 'i', resources: { limits: { cpu: '2', memory: 300 } } }, { name: 'b', image: 'i', resources: { limits: { memory: 500 } } }]))).to.deep.equal({
      cpu: 2000,
      memory: 500,
    });
    expect(podRequest(spec([]))).to.deep.equal({ cpu: 1, memory: 128 });
  });

  it('fits, subtracts and prints CPU without drift', () => {
    let free = { cpu: 1000, memory: 1024 };
    for (let i = 0; i < 10; i++) free = minus(free, { cpu: 100, memory: 1 });
    expect(free.cpu).to.equal(0);
    expect(formatCpu(1500)).to.equal('1.5');
    expect(fits({ cpu: 100, memory: 128 }, { cpu: 100, memory: 128 })).to.equal(true);
    expect(fits({ cpu: 100, memory: 127 }, { cpu: 100, memory: 128 })).to.equal(false);
    expect(parseLimit('cpu', '0.75')).to.equal(750);
    expect(parseLimit('memory', '512')).to.equal(512);
    expect(parseLimit('memory', 'lots')).to.equal(undefined);
  });
});

describe('pod subnets', () => {
  it('splits a cluster CIDR into /24s and picks the first free one', () => {
    expect(subnetsOf('10.244.0.0/22')).to.deep.equal(['10.244.0.0/24', '10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24']);
    expect(subnetsOf('10.244.7.9/16')).to.have.length(256);
    expect(() => subnetsOf('10.244.0.0/25')).to.throw(/smaller than a \/24/);
    expect(pickSubnet('10.244.0.0/22', new Set(['10.244.0.0/24', '10.244.2.0/24']))).to.equal('10.244.1.0/24');
    expect(pickSubnet('10.244.0.0/24', new Set(['10.244.0.0/24']))).to.equal(undefined);
  });

  it('names keys, gateways and overlaps', () => {
    expect(subnetKey('10.244.3.0/24')).to.equal('node.worker/subnet/10.244.3.0/24');
    expect(legacySubnetKey('10.244.3.0/24')).to.equal('node.worker/subnet/10.244.3.0_24');
    expect(subnetOfKey(`${SUBNET_PREFIX}10.244.3.0/24`)).to.equal('10.244.3.0/24');
    expect(subnetOfKey(`${SUBNET_PREFIX}10.244.3.0_24`)).to.equal('10.244.3.0/24');
    expect(subnetOfKey(`${SUBNET_PREFIX}junk`)).to.equal(undefined);
    expect(gatewayOf('10.244.3.0/24')).to.equal('10.244.3.1');
    expect(normalizeCidr('10.244.3.77/24')).to.equal('10.244.3.0/24');
    expect(overlaps('10.244.0.0/16', '10.244.3.0/24')).to.equal(true);
    expect(overlaps('10.245.0.0/24', '10.244.3.0/24')).to.equal(false);
  });
});

describe('host-gw routes', () => {
  it('takes a subnet owner from etcd only when its host address is an IPv4 address', () => {
    expect(parseSubnetOwner('{"worker":"w","hostAddress":"192.0.2.7"}')).to.deep.equal({ worker: 'w', hostAddress: '192.0.2.7' });
    expect(parseSubnetOwner('{"worker":"w"}')).to.deep.equal({ worker: 'w' });
    // These once reached `ip route` (execa throws on an object or a NUL byte) and froze the route table.
    for (const bad of ['{"worker":"w","hostAddress":{}}', '{"worker":"w","hostAddress":"192.0.2.7\\u0000"}', '{"worker":"w","hostAddress":"-x"}',
      '{"worker":""}', '{"worker":5}', 'null', '[]', 'not json']) {
      expect(parseSubnetOwner(bad), bad).to.equal(undefined);
    }
  });

  const subnets = new Map([
    ['10.1.1.0/24', { worker: 'me', hostAddress: '192.0.2.1' }],
    ['10.1.2.0/24', { worker: 'b', hostAddress: '192.0.2.2' }],
    ['10.1.3.0/24', { worker: 'c', hostAddress: '192.0.2.3' }],
    ['10.1.4.0/24', { worker: 'd' }],
  ]);
  it('routes every other live worker\'s subnet via its host address', () => {
    const d = desiredRoutes({ worker: 'me', hostAddress: '192.0.2.1' }, subnets, new Set(['me', 'b', 'd']));
    expect([...d]).to.deep.equal([['10.1.2.0/24', '192.0.2.2']]);
  });
  it('diffs the routes in place against the wanted ones', () => {
    const cur = new Map([['10.1.2.0/24', '192.0.2.9'], ['10.1.5.0/24', '192.0.2.5']]);
    const want = new Map([['10.1.2.0/24', '192.0.2.2'], ['10.1.3.0/24', '192.0.2.3']]);
    expect(routeChanges(cur, want)).to.deep.equal({
      replace: [['10.1.2.0/24', '192.0.2.2'], ['10.1.3.0/24', '192.0.2.3']],
      remove: ['10.1.5.0/24'],
    });
  });
});

describe('podman command lines', () => {
  const p = { runtimeName: 'node1-web', pod: 'web', dns: '10.1.1.1' };
  it('creates the pod on the network with the cluster address as DNS, labelled as the node\'s', () => {
    expect(podCreateArgs('node1', 'kith', p)).to.deep.equal([
      'pod', 'create', '--name=node1-web', '--infra-name=node1-web-infra', '--network=kith', '--dns=10.1.1.1',
      '--label', 'kith.node=node1', '--label', 'kith.pod=web',
    ]);
  });
  it('runs a container detached with a TTY, pulling as --image-pull says, with entrypoint, env, limits and cmd', () => {
    const [c] = spec([{
      name: 'run', image: 'localhost/kith/busybox', entrypoint: '/bin/sh', cmd: ['-c', 'echo hi'], env: { A: '1', B: 'x y' },
      resources: { requests: { cpu: '0.1', memory: 64 }, limits: { cpu: '0.5', memory: 256 } },
    }]).containers;
    expect(containerRunArgs('node1', p, c!, 'missing').slice(0, 5)).to.deep.equal(['container', 'run', '--detach', '--tty', '--pull=missing']);
    expect(containerRunArgs('node1', p, c!)).to.deep.equal([
      'container', 'run', '--detach', '--tty', '--pull=never', '--pod=node1-web', '--name=node1-web-run',
      '--label', 'kith.node=node1', '--label', 'kith.pod=web',
      '--entrypoint=/bin/sh', '--env', 'A=1', '--env', 'B=x y',
      '--memory-reservation=64m', '--cpus=0.5', '--memory=256m',
      'localhost/kith/busybox', '-c', 'echo hi',
    ]);
    const [bare] = spec([{ name: 'c', image: 'img' }]).containers;
    expect(containerRunArgs('n', p, bare!).slice(-1)).to.deep.equal(['img']);
  });
  it('reads how each pod\'s containers ended from podman ps, infra ignored', () => {
    const ex = podExits([
      { IsInfra: true, Exited: false, Labels: { 'kith.pod': 'a' } },
      { Exited: true, ExitCode: 0, Labels: { 'kith.pod': 'a' } },
      { Exited: true, ExitCode: 2, Labels: { 'kith.pod': 'a' } },
      { Exited: false, State: 'running', Labels: { 'kith.pod': 'b' } },
      { Exited: true, ExitCode: 0, Labels: {} },
    ]);
    expect(ex.get('a')).to.deep.equal({ running: 0, exited: 2, failed: 1 });
    expect(ex.get('b')).to.deep.equal({ running: 1, exited: 0, failed: 0 });
    expect(ex.size).to.equal(2);
  });
});

describe('waiting for pods to end', () => {
  it('judges a pod missing from a listing gone only once a listing had shown it, or after several misses', async () => {
    const { judgeWaits, MISSES_BEFORE_GONE } = await import('../../../agent/runtime/podman-args.js');
    const fresh = { pod: 'fresh', containers: 1, seen: false };
    const old = { pod: 'old', containers: 2, seen: false };
    const running = podExits([
      { Exited: false, Labels: { 'kith.pod': 'old' } },
      { Exited: true, ExitCode: 0, Labels: { 'kith.pod': 'old' } },
    ]);
    // The listing predates fresh's container: fresh is not judged.
    expect([...judgeWaits([fresh, old], running)]).to.deep.equal([]);
    expect(old.seen).to.equal(true);
    // old vanished after being seen: removed under us.
    expect([...judgeWaits([fresh, old], podExits([]))]).to.deep.equal([[old, 'exitFailure']]);
    // fresh has missed two listings; it is judged gone at the MISSES_BEFORE_GONE-th.
    for (let missed = 3; missed < MISSES_BEFORE_GONE; missed++) expect(judgeWaits([fresh], podExits([])).size).to.equal(0);
    expect([...judgeWaits([fresh], podExits([]))]).to.deep.equal([[fresh, 'exitFailure']]);
  });

  it('ends a pod when all its containers have exited, failed if any exited non-zero', async () => {
    const { judgeWaits } = await import('../../../agent/runtime/podman-args.js');
    const a = { pod: 'a', containers: 2, seen: false };
    const b = { pod: 'b', containers: 1, seen: false };
    const c = { pod: 'c', containers: 2, seen: false };
    const r = judgeWaits([a, b, c], podExits([
      { Exited: true, ExitCode: 0, Labels: { 'kith.pod': 'a' } },
      { Exited: true, ExitCode: 0, Labels: { 'kith.pod': 'a' } },
      { Exited: true, ExitCode: 1, Labels: { 'kith.pod': 'b' } },
      { Exited: true, ExitCode: 0, Labels: { 'kith.pod': 'c' } },
    ]));
    expect([...r]).to.deep.equal([[a, 'exitSuccess'], [b, 'exitFailure']]);
  });
});
