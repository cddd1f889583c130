import { expect } from 'chai';
import { pod as podSchema } from '../../../api/schemas.js';
import { bridgeMac, containerRunArgs, judgeMissing, judgeWaits, leftPods, MISSES_BEFORE_GONE, podCreateArgs, podExits, type InspectedContainer, type PodWait, type PsPod } from '../../../agent/runtime/podman-args.js';

const spec = (containers: unknown[]) => podSchema.parse({ name: 'p', type: 'pod', state: 'created', spec: { containers } }).spec;

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

  it('reads the pods an earlier run left from podman pod ps and their infra containers, the holder skipped', () => {
    const pods: PsPod[] = [
      { Name: 'n--holder', Labels: { 'kith.node': 'n' } },
      { Name: 'n-web', Labels: { 'kith.node': 'n', 'kith.pod': 'web' } },
      { Name: 'n-stopped', Labels: { 'kith.node': 'n', 'kith.pod': 'stopped' } },
      { Name: 'n-noinfra', Labels: { 'kith.node': 'n', 'kith.pod': 'noinfra' } },
      { Name: 'n-old', Labels: { 'kith.node': 'n' } },
      { Name: 'n-othernet', Labels: { 'kith.pod': 'othernet' } },
    ];
    const infra: InspectedContainer[] = [
      { Name: 'n-web-infra', State: { Running: true }, NetworkSettings: { Networks: { net: { IPAddress: '10.1.1.7' } } } },
      { Name: '/n-stopped-infra', State: { Running: false }, NetworkSettings: { Networks: { net: { IPAddress: '' } } } },
      { Name: 'n-old-infra', State: { Running: true }, NetworkSettings: { Networks: { net: { IPAddress: '10.1.1.8' } } } },
      { Name: 'n-othernet-infra', State: { Running: true }, NetworkSettings: { Networks: { podman: { IPAddress: '10.88.0.2' } } } },
    ];
    expect(leftPods('n', 'net', pods, infra)).to.deep.equal([
      { runtimeName: 'n-web', pod: 'web', running: true, ip: '10.1.1.7' },
      { runtimeName: 'n-stopped', pod: 'stopped', running: false },
      { runtimeName: 'n-noinfra', pod: 'noinfra', running: false },
      // Without the label, the name says which pod it is.
      { runtimeName: 'n-old', pod: 'old', running: true, ip: '10.1.1.8' },
      // Running, but not on the pod network: nothing to adopt at an address.
      { runtimeName: 'n-othernet', pod: 'othernet', running: true },
    ]);
    expect(leftPods('n', 'net', [], [])).to.deep.equal([]);
  });
});

describe('the pod bridge', () => {
  it('has a fixed, locally administered MAC derived from the subnet', () => {
    expect(bridgeMac('10.244.3.0/24')).to.equal('02:6b:0a:f4:03:01');
    expect(bridgeMac('192.168.255.0/24')).to.equal('02:6b:c0:a8:ff:01');
  });
});

describe('waiting for pods to end', () => {
  it('never judges a pod ended from a listing that misses it: only podman saying its pod is gone, or many misses while it exists', () => {
    const fresh: PodWait = { pod: 'fresh', runtimeName: 'n-fresh', containers: 1, seen: false };
    const old: PodWait = { pod: 'old', runtimeName: 'n-old', containers: 2, seen: false };
    const running = podExits([
      { Exited: false, Labels: { 'kith.pod': 'old' } },
      { Exited: true, ExitCode: 0, Labels: { 'kith.pod': 'old' } },
    ]);
    // The listing predates fresh's container: fresh is missing, not ended.
    let r = judgeWaits([fresh, old], running);
    expect([...r.ended]).to.deep.equal([]);
    expect(r.missing).to.deep.equal([fresh]);
    expect(old.seen).to.equal(true);
    // A slow or partial listing misses old, which had been seen running: still not ended by the listing.
    r = judgeWaits([fresh, old], podExits([]));
    expect([...r.ended]).to.deep.equal([]);
    expect(r.missing).to.deep.equal([fresh, old]);
    // What podman says decides: its pod still exists (or podman cannot say) -> wait on; gone -> ended.
    expect(judgeMissing(old, true)).to.equal(undefined);
    expect(judgeMissing(old, undefined)).to.equal(undefined);
    expect(judgeMissing(old, false)).to.equal('exitFailure');
    // A pod that exists but whose containers miss MISSES_BEFORE_GONE listings in a row has lost them.
    while ((fresh.missed ?? 0) < MISSES_BEFORE_GONE - 1) judgeWaits([fresh], podExits([]));
    expect(judgeMissing(fresh, true)).to.equal(undefined);
    judgeWaits([fresh], podExits([]));
    expect(judgeMissing(fresh, true)).to.equal('exitFailure');
    expect(judgeMissing(fresh, undefined)).to.equal(undefined);
    // A listing that shows the pod again starts the count afresh.
    judgeWaits([fresh], podExits([{ Exited: false, Labels: { 'kith.pod': 'fresh' } }]));
    expect(fresh.missed).to.equal(0);
  });

  it('ends a pod when all its containers have exited, failed if any exited non-zero', () => {
    const a = { pod: 'a', runtimeName: 'n-a', containers: 2, seen: false };
    const b = { pod: 'b', runtimeName: 'n-b', containers: 1, seen: false };
    const c = { pod: 'c', runtimeName: 'n-c', containers: 2, seen: false };
    const r = judgeWaits([a, b, c], podExits([
      { Exited: true, ExitCode: 0, Labels: { 'kith.pod': 'a' } },
      { Exited: true, ExitCode: 0, Labels: { 'kith.pod': 'a' } },
      { Exited: true, ExitCode: 1, Labels: { 'kith.pod': 'b' } },
      { Exited: true, ExitCode: 0, Labels: { 'kith.pod': 'c' } },
    ]));
    expect([...r.ended]).to.deep.equal([[a, 'exitSuccess'], [b, 'exitFailure']]);
    expect(r.missing).to.deep.equal([]);
  });
});
