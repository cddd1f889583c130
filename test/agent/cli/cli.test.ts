import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { MAIN, ROOT } from '../../support/agent.js';
import { freePort } from '../../support/ports.js';
import { ApiHarness } from '../../api/harness.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `kith` entry point from source. */
function kith(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, KITH_API: undefined, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
    p.stdin.end(opts.input ?? '');
  });
}

/** stderr is exactly one line. */
const oneLine = (r: Run): string => {
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).to.have.length(1);
  return lines[0]!;
};

describe('cli: the kith client commands against a real agent', function () {
  this.timeout(60_000);
  let h: ApiHarness;
  let dir: string;
  let api: string[];

  before(async () => {
    h = await ApiHarness.start();
    api = ['--api', h.url];
    // The commands find the bootstrap admin token as a user's shell gives it (token.test.ts tests the sources).
    process.env.KITH_TOKEN = h.adminToken;
    dir = mkdtempSync(join(tmpdir(), 'kith-cli-'));
  });
  after(async () => {
    delete process.env.KITH_TOKEN;
    rmSync(dir, { recursive: true, force: true });
    await h?.stop();
  });

  it('gen-name prints a name', async () => {
    const r = await kith(['gen-name']);
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/^[a-z]+-[a-z]+-\d{4}\n$/);
  });

  it('run creates the pod the flags describe and prints its name; -- ends the flags', async () => {
    const r = await kith([...api, 'run', '--name', 'web', '-p', '80', '-p', '8080:81/http', '-e', 'A=1', '-e', 'B=x=y', '--entrypoint', '/bin/sh',
      '--cpu-request', '0.25', '--cpu-limit', '1', '--memory-request', '16', '--memory-limit', '64', '--may-be-scheduled-on', 'w1',
      '--', 'localhost/kith/busybox', '-c', 'echo hi; sleep 5']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.equal('web\n');
    const pod = (await h.request('GET', '/resources/pod/web')).body;
    expect(pod).to.deep.equal({
      name: 'web', type: 'pod', state: 'created', metadata: {},
      spec: {
        containers: [{ name: 'run', image: 'localhost/kith/busybox', entrypoint: '/bin/sh', cmd: ['-c', 'echo hi; sleep 5'], env: { A: '1', B: 'x=y' },
          resources: { requests: { cpu: '0.25', memory: 16 }, limits: { cpu: '1', memory: 64 } } }],
        ports: [80, { container: 81, cluster: 8080, name: 'http' }],
        schedulingConstraints: { mayBeScheduledOn: ['w1'], cannotBeScheduledOn: null },
      },
    });
    expect(await h.value('pod/unscheduled/web')).to.be.a('string');
  });

  it('run without --name picks a name; KITH_API is honoured', async () => {
    const r = await kith(['run', 'localhost/kith/busybox', 'true'], { env: { KITH_API: h.url } });
    expect(r.code, r.stderr).to.equal(0);
    const name = r.stdout.trim();
    expect(name).to.match(/^[a-z]+-[a-z]+-\d{4}$/);
    expect((await h.request('GET', `/resources/pod/${name}`)).status).to.equal(200);
  });

  it('run reports API errors in one line (exit 1) and usage errors in one line (exit 2)', async () => {
    const [exists, badName, port0, noEq, mem, dash, noImage] = await Promise.all([
      kith([...api, 'run', '--name', 'web', 'localhost/kith/busybox']),
      kith([...api, 'run', '--name', 'Bad_Name', 'localhost/kith/busybox']),
      kith([...api, 'run', '-p', '0', 'img']),
      kith([...api, 'run', '-e', 'NOVALUE', 'img']),
      kith([...api, 'run', '--memory-limit', 'lots', 'img']),
      kith([...api, 'run', 'img', 'ls', '-l']),
      kith([...api, 'run']),
    ]);
    expect([exists.code, oneLine(exists)]).to.deep.equal([1, "kith: The resource 'web' of type 'pod' already exists.  If you want to replace it, delete it first."]);
    expect(badName.code).to.equal(1);
    expect(oneLine(badName)).to.match(/^kith: name: must be a lowercase DNS label/);
    expect(await h.value('resource/pod/Bad_Name')).to.equal(undefined);
    expect([port0.code, oneLine(port0)]).to.deep.equal([2, 'kith: invalid port specification: `0`']);
    expect([noEq.code, oneLine(noEq)]).to.deep.equal([2, 'kith: invalid key=value: no `=` found in `NOVALUE`']);
    expect(mem.code).to.equal(2);
    expect(oneLine(mem)).to.match(/--memory-limit 'lots'/);
    expect(dash.code).to.equal(2);
    expect(oneLine(dash)).to.match(/'-l'.*'--'/);
    expect([noImage.code, oneLine(noImage)]).to.deep.equal([2, 'kith: run needs an IMAGE']);
  });

  it('run --wait follows the pod until it runs (exit 0) or ends badly (exit 1)', async () => {
    const setState = async (name: string, state: string) => {
      // The CLI is a fresh process (tsx included): on a loaded machine it takes seconds to POST.
      await h.until(async () => (await h.value(`resource/pod/${name}`)) !== undefined, 20_000);
      const pod = JSON.parse((await h.value(`resource/pod/${name}`))!);
      await h.put(`resource/pod/${name}`, JSON.stringify({ ...pod, state }));
    };
    const good = kith([...api, 'run', '--wait', '--name', 'waits-ok', 'localhost/kith/busybox']);
    await setState('waits-ok', 'scheduled');
    await new Promise((r) => setTimeout(r, 300));
    await setState('waits-ok', 'running');
    const g = await good;
    expect(g.code, g.stderr).to.equal(0);
    expect(g.stdout).to.equal('waits-ok\n');
    expect(g.stderr).to.include('waits-ok: running');

    // A pod that runs and fails at once has ended, not run.
    const flap = kith([...api, 'run', '--wait', '--name', 'waits-flap', 'localhost/kith/busybox']);
    await setState('waits-flap', 'running');
    await new Promise((r) => setTimeout(r, 500));
    await setState('waits-flap', 'exitFailure');
    const f = await flap;
    expect(f.code, f.stderr).to.equal(1);
    expect(f.stderr.trimEnd().split('\n').at(-1)).to.equal('kith: pod waits-flap ended exitFailure');

    const bad = kith([...api, 'run', '--wait', '--name', 'waits-bad', 'localhost/kith/busybox']);
    await setState('waits-bad', 'exitFailure');
    const b = await bad;
    expect(b.code).to.equal(1);
    expect(b.stderr.trimEnd().split('\n').at(-1)).to.equal('kith: pod waits-bad ended exitFailure');

    // An abandoned pod says why, from the scheduler's metadata.error.
    const why = kith([...api, 'run', '--wait', '--name', 'waits-why', 'localhost/kith/busybox']);
    await h.until(async () => (await h.value('resource/pod/waits-why')) !== undefined, 20_000);
    const created = JSON.parse((await h.value('resource/pod/waits-why'))!);
    await h.put('resource/pod/waits-why', JSON.stringify({ ...created, state: 'abandoned', metadata: { scheduledBy: 's', error: 'no allowed worker has 0.001 CPU and 128 MiB free' } }));
    const w = await why;
    expect(w.code).to.equal(1);
    expect(w.stderr.trimEnd().split('\n').at(-1)).to.equal('kith: pod waits-why ended abandoned: no allowed worker has 0.001 CPU and 128 MiB free');

    const t = await kith([...api, 'run', '--wait', '--timeout', '1', '--name', 'waits-long', 'localhost/kith/busybox']);
    expect(t.code).to.equal(1);
    expect(t.stderr).to.include('kith: pod waits-long is still created after 1 s');
  });

  it('list, get and delete, as tables and as JSON', async () => {
    const [table, json, nodes, got, yaml, missing, nothing, noName] = await Promise.all([
      kith([...api, 'list', 'pod']),
      kith([...api, '-o', 'json', 'list', 'pods']),
      kith([...api, 'list', 'nodes']),
      kith([...api, 'get', 'pod', 'web', '-o', 'json']),
      kith([...api, 'get', 'pod', 'web', '-o', 'yaml']),
      kith([...api, 'get', 'pod', 'nope']),
      kith([...api, 'list', 'nothing']),
      kith([...api, 'get', 'pod']),
    ]);
    expect(table.code).to.equal(0);
    const [header, ...rows] = table.stdout.trimEnd().split('\n');
    expect(header).to.match(/^NAME\s+STATE\s+READY\s+RESTARTS\s+WORKER\s+IMAGE\s+REPLICASET$/);
    expect(rows.some((l) => /^web\s+created\s+0\s+localhost\/kith\/busybox$/.test(l))).to.equal(true);
    expect(JSON.parse(json.stdout).map((p: { name: string }) => p.name)).to.include('web');
    expect(nodes.stdout).to.match(new RegExp(`^${h.name}\\s+node\\.api\\s+healthy`, 'm'));
    expect(JSON.parse(got.stdout).spec.containers[0].name).to.equal('run');
    expect(yaml.stdout).to.match(/^name: web$/m);
    expect([missing.code, oneLine(missing)]).to.deep.equal([1, "kith: The resource 'nope' of type 'pod' does not exist."]);
    expect([nothing.code, nothing.stdout, nothing.stderr]).to.deep.equal([0, '', 'No resources found.\n']);
    expect(noName.code).to.equal(2);

    let r = await kith([...api, 'delete', 'pod', 'web']);
    expect([r.code, r.stdout]).to.deep.equal([0, 'pod/web deleted\n']);
    expect(await h.value('pod/unscheduled/web')).to.equal(undefined);
    const [again, node] = await Promise.all([kith([...api, 'delete', 'pod', 'web']), kith([...api, 'delete', 'node.api', h.name])]);
    expect(again.code).to.equal(1);
    expect([node.code, oneLine(node)]).to.deep.equal([1, 'kith: Node resources cannot be deleted via the API.']);
  });

  it('apply creates pods and replicasets from YAML, then updates or leaves them (SPEC §7)', async () => {
    const file = join(dir, 'app.yaml');
    writeFileSync(file, `name: applied
type: pod
spec:
  containers:
    - name: main
      image: localhost/kith/busybox
      cmd: [sleep, "30"]
---
name: front
type: replicaset
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: web
          image: localhost/kith/busybox
`);
    let r = await kith([...api, 'apply', '-f', file]);
    expect([r.code, r.stdout], r.stderr).to.deep.equal([0, 'pod/applied created\nreplicaset/front created\n']);
    expect((await h.request('GET', '/resources/pod/applied')).body.state).to.equal('created');
    expect(await h.value('pod/unscheduled/applied')).to.be.a('string');
    r = await kith([...api, 'apply', '-f', file]);
    expect([r.code, r.stdout], r.stderr).to.deep.equal([0, 'pod/applied unchanged\nreplicaset/front configured\n']);
    writeFileSync(file, 'name: applied\ntype: pod\nspec:\n  containers: [{name: main, image: other}]\n');
    r = await kith([...api, 'apply', '-f', file]);
    expect([r.code, oneLine(r)]).to.deep.equal([1, 'kith: pod/applied: Pod resources cannot be modified via the API.']);
  });

  it('apply takes back a pod it exported: unchanged while it exists, created anew once deleted', async () => {
    let r = await kith([...api, 'run', '--name', 'exported', 'localhost/kith/busybox']);
    expect(r.code, r.stderr).to.equal(0);
    r = await kith([...api, 'get', 'pod', 'exported', '-o', 'yaml']);
    // As a running pod would be exported: its state and the metadata kith wrote.
    const file = join(dir, 'exported.yaml');
    writeFileSync(file, r.stdout.replace(/^state: created$/m, 'state: running').replace(/^metadata: \{\}$/m, 'metadata:\n  workedBy: w1'));
    r = await kith([...api, 'apply', '-f', file]);
    expect([r.code, r.stdout], r.stderr).to.deep.equal([0, 'pod/exported unchanged\n']);
    await kith([...api, 'delete', 'pod', 'exported']);
    r = await kith([...api, 'apply', '-f', file]);
    expect([r.code, r.stdout], r.stderr).to.deep.equal([0, 'pod/exported created\n']);
    const stored = (await h.request('GET', '/resources/pod/exported')).body;
    expect([stored.state, stored.metadata]).to.deep.equal(['created', {}]);
  });

  it('list takes plural and short type names and shows their own columns', async () => {
    await kith([...api, 'apply', '-f', '-'], { input: JSON.stringify({ name: 'listed', type: 'replicaset', spec: { replicas: 0, template: { spec: { containers: [] } } } }) });
    const [pods, rs] = await Promise.all([kith([...api, 'list', 'pods']), kith([...api, 'list', 'rs'])]);
    expect(pods.stdout.split('\n')[0]).to.match(/^NAME\s+STATE\s+READY\s+RESTARTS\s+WORKER\s+IMAGE\s+REPLICASET$/);
    expect(rs.stdout.split('\n')[0]).to.match(/^NAME\s+REPLICAS\s+LIVE\s+RUNNING\s+READY\s+UPDATED\s+AVAILABLE\s+ROLLOUT\s+STATE$/);
  });

  it('apply reads JSON from stdin, several resources at once, and reports bad documents', async () => {
    const docs = JSON.stringify([{ name: 'cfg', type: 'config', spec: { a: 1 } }, { name: 'cfg2', type: 'config', spec: { b: 2 } }]);
    const [r, noName, yaml, missing, bad, empty] = await Promise.all([
      kith([...api, 'apply', '-f', '-'], { input: docs }),
      kith([...api, 'apply', '-f', '-'], { input: '{"spec": {}}' }),
      kith([...api, 'apply', '-f', '-'], { input: 'name: [unclosed' }),
      kith([...api, 'apply', '-f', join(dir, 'missing.yaml')]),
      kith([...api, 'apply', '-f', '-'], { input: JSON.stringify({ name: 'Bad', type: 'config', spec: {} }) }),
      kith([...api, 'apply'], { input: '' }),
    ]);
    expect([empty.code, oneLine(empty)]).to.deep.equal([1, 'kith: stdin: no resources in it']);
    expect([r.code, r.stdout], r.stderr).to.deep.equal([0, 'config/cfg created\nconfig/cfg2 created\n']);
    expect([noName.code, oneLine(noName)]).to.deep.equal([1, "kith: stdin: document 1: expected 'name' and 'type'"]);
    expect(yaml.code).to.equal(1);
    expect(oneLine(yaml)).to.match(/^kith: stdin: document 1: /);
    expect([missing.code, oneLine(missing)]).to.deep.equal([1, `kith: cannot read ${join(dir, 'missing.yaml')}: ENOENT`]);
    expect([bad.code, oneLine(bad)]).to.deep.equal([1, 'kith: config/Bad: name: must be a lowercase DNS label: a-z, 0-9 and -, start with a letter, not end with -, at most 63 characters']);
    // Without a file, as the reference client, from stdin.
    const upd = await kith([...api, '-o', 'json', 'apply'], { input: JSON.stringify({ name: 'cfg', type: 'config', state: 'on', spec: { a: 3 } }) });
    expect(upd.code).to.equal(0);
    expect(JSON.parse(upd.stdout)).to.deep.equal([{ name: 'cfg', type: 'config', state: 'on', metadata: {}, spec: { a: 3 } }]);
  });

  it('scale changes a replicaset\'s replicas', async () => {
    const [r, many, pod, nope] = await Promise.all([
      kith([...api, 'scale', 'replicaset', 'front', '5']),
      kith([...api, 'scale', 'replicaset', 'front', 'many']),
      kith([...api, 'scale', 'pod', 'front', '1']),
      kith([...api, 'scale', 'rs', 'nope', '1']),
    ]);
    expect([r.code, r.stdout], r.stderr).to.deep.equal([0, 'replicaset/front scaled to 5\n']);
    const rs = (await h.request('GET', '/resources/replicaset/front')).body;
    expect(rs.spec.replicas).to.equal(5);
    expect(rs.spec.template.spec.containers[0].image).to.equal('localhost/kith/busybox');
    expect(many.code).to.equal(2);
    expect(pod.code).to.equal(2);
    expect([nope.code, oneLine(nope)]).to.deep.equal([1, "kith: The resource 'nope' of type 'replicaset' does not exist."]);
  });

  it('creates, lists and deletes DNS aliases', async () => {
    const [created, builtin, domain, label, other] = await Promise.all([
      kith([...api, 'create-alias', 'www.shop.cluster.local', 'applied.pod.cluster.local.']),
      kith([...api, 'create-alias', 'x.pod.cluster.local', 'applied.pod.cluster.local']),
      kith([...api, 'create-alias', 'www.shop.example.com', 'applied.pod.cluster.local']),
      kith([...api, 'aliases', 'Www.shop.cluster.local']),
      kith([...api, '--cluster-domain', 'kith.test', 'aliases', 'www.shop.kith.test']),
    ]);
    expect([created.code, created.stdout], created.stderr).to.deep.equal([0, 'alias www.shop.cluster.local -> applied.pod.cluster.local. created\n']);
    expect(await h.value('dns/www.shop.cluster.local./applied.pod.cluster.local.')).to.equal('alias');
    expect([builtin.code, oneLine(builtin)]).to.deep.equal([1, 'kith: Built-in DNS namespaces cannot be modified via the API.']);
    expect([domain.code, oneLine(domain)]).to.deep.equal([2, "kith: could not parse domain 'www.shop.example.com': should be in the form 'HOST.NAMESPACE.cluster.local'"]);
    expect([label.code, oneLine(label)]).to.deep.equal([2, "kith: could not parse domain 'Www.shop.cluster.local': 'Www' is not a valid DNS label"]);
    expect(other.code).to.equal(0);

    const [table, json] = await Promise.all([
      kith([...api, 'aliases', 'www.shop.cluster.local']),
      kith([...api, '-o', 'json', 'aliases', 'www.shop.cluster.local.']),
    ]);
    expect(table.stdout).to.match(/^FROM\s+TO\nwww\.shop\.cluster\.local\s+applied\.pod\.cluster\.local\.\n$/);
    expect(JSON.parse(json.stdout)).to.deep.equal(['applied.pod.cluster.local.']);
    let r = await kith([...api, 'delete-alias', 'www.shop.cluster.local', 'applied.pod.cluster.local']);
    expect(r.code).to.equal(0);
    expect(await h.value('dns/www.shop.cluster.local./applied.pod.cluster.local.')).to.equal(undefined);
    r = await kith([...api, 'delete-alias', 'www.shop.cluster.local', 'applied.pod.cluster.local']);
    expect([r.code, oneLine(r)]).to.deep.equal([1, "kith: The DNS alias 'shop/www' -> 'pod/applied' does not exist."]);
  });

  it('fails in one line when the API is unreachable (exit 1) or the flags are wrong (exit 2)', async () => {
    const port = await freePort();
    const [down, badUrl, unknown, format, flag] = await Promise.all([
      kith(['--api', `http://127.0.0.1:${port}`, 'list', 'pod']),
      kith(['--api', 'not a url', 'list', 'pod']),
      kith([...api, 'frobnicate']),
      kith([...api, '-o', 'xml', 'list', 'pod']),
      kith([...api, 'list', 'pod', '--bogus']),
    ]);
    expect(down.code).to.equal(1);
    expect(oneLine(down)).to.match(/^kith: cannot reach the API at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    expect([badUrl.code, oneLine(badUrl)]).to.deep.equal([2, "kith: --api 'not a url': must be an http:// or https:// URL"]);
    expect([unknown.code, oneLine(unknown)]).to.deep.equal([2, "kith: unknown command 'frobnicate'; run 'kith help'"]);
    expect(format.code).to.equal(2);
    expect(flag.code).to.equal(2);
    expect(oneLine(flag)).to.match(/^kith: list: Unknown option '--bogus'/);
  });
});
