import { expect } from 'chai';
import { manifests, samePod } from '../../../agent/cli/apply.js';
import { parseEnv, parsePort, podFromRun, probeFromFlags, UsageError, waitOutcome } from '../../../agent/cli/run.js';
import { progressBar } from '../../../agent/cli/rollout.js';
import { resourceTable } from '../../../agent/cli/table.js';
import { pod } from '../../../api/schemas.js';

describe('cli: pure parts', () => {
  it('parses -p as the reference, with an optional port name', () => {
    expect(parsePort('80')).to.equal(80);
    expect(parsePort('8080:80')).to.deep.equal({ container: 80, cluster: 8080 });
    expect(parsePort('8080:80/http')).to.deep.equal({ container: 80, cluster: 8080, name: 'http' });
    expect(parsePort('80/http')).to.deep.equal({ container: 80, name: 'http' });
    for (const bad of ['0', '65536', 'x', '1:2:3', '80/', ':80', '80:0']) expect(() => parsePort(bad)).to.throw(UsageError, 'invalid port specification');
  });

  it('splits -e at the first =', () => {
    expect(parseEnv('A=b=c')).to.deep.equal(['A', 'b=c']);
    expect(parseEnv('A=')).to.deep.equal(['A', '']);
    expect(() => parseEnv('A')).to.throw(UsageError);
  });

  it('builds a pod the pod schema accepts', () => {
    const p = podFromRun({ name: 'x', image: 'i', cmd: [], env: [], publish: [], mayBeScheduledOn: [], cannotBeScheduledOn: ['w'] });
    expect(pod.safeParse(p).success).to.equal(true);
    expect((p.spec as { schedulingConstraints: unknown }).schedulingConstraints).to.deep.equal({ mayBeScheduledOn: null, cannotBeScheduledOn: ['w'] });
    expect(() => podFromRun({ name: 'x', image: 'i', cmd: [], env: [], publish: [], mayBeScheduledOn: [], cannotBeScheduledOn: [], cpuLimit: '1/2' })).to.throw(UsageError, '--cpu-limit');
  });

  it('builds probes and the restart policy from run\'s flags, which the pod schema accepts', () => {
    const base = { name: 'x', image: 'i', cmd: [], env: [], publish: [], mayBeScheduledOn: [], cannotBeScheduledOn: [] };
    const p = podFromRun({ ...base, readiness: { http: '8080/healthz' }, liveness: { exec: ' cat  /tmp/alive ' }, restart: 'Always' });
    const parsed = pod.parse(p);
    expect(parsed.spec.restartPolicy).to.equal('Always');
    expect(parsed.spec.containers[0]!.readiness).to.deep.include({ http: { port: 8080, path: '/healthz' }, periodSeconds: 10 });
    expect(parsed.spec.containers[0]!.liveness).to.deep.include({ exec: ['cat', '/tmp/alive'] });
    expect(probeFromFlags('readiness', { tcp: '5432' })).to.deep.equal({ tcp: 5432 });
    expect(probeFromFlags('readiness', { http: '80' })).to.deep.equal({ http: { port: 80, path: '/' } });
    expect(probeFromFlags('readiness', {})).to.equal(undefined);
    expect(() => probeFromFlags('readiness', { tcp: '0' })).to.throw(UsageError, "--readiness-tcp '0': must be a port");
    expect(() => probeFromFlags('liveness', { http: 'x/y' })).to.throw(UsageError, '--liveness-http');
    expect(() => probeFromFlags('liveness', { exec: '  ' })).to.throw(UsageError, '--liveness-exec: must name a command');
    expect(() => probeFromFlags('readiness', { tcp: '80', exec: 'true' })).to.throw(UsageError, 'not --readiness-tcp and --readiness-exec');
    expect(() => podFromRun({ ...base, restart: 'sometimes' })).to.throw(UsageError, "--restart 'sometimes'");
  });

  it('shows readiness (only while running) and restarts in the pod table', () => {
    const rows = [
      { name: 'a', state: 'running', metadata: { ready: 'true', restarts: '2', workedBy: 'w1' }, spec: { containers: [{ image: 'img' }] } },
      { name: 'b', state: 'running', metadata: { ready: 'false' }, spec: { containers: [{ image: 'img' }] } },
      { name: 'c', state: 'exitFailure', metadata: { ready: 'true' }, spec: { containers: [{ image: 'img' }] } },
    ];
    expect(resourceTable('pod', rows)).to.equal(
      'NAME  STATE        READY  RESTARTS  WORKER  IMAGE  REPLICASET\n' +
      'a     running      yes    2         w1      img\n' +
      'b     running      no     0                 img\n' +
      'c     exitFailure         0                 img\n',
    );
  });

  it('draws a rollout\'s progress for a terminal: ready #, updated and not ready +, the rest -', () => {
    expect(progressBar(0, 0, 4, 8)).to.equal('[--------] 0 of 4 updated, 0 ready');
    expect(progressBar(2, 1, 4, 8)).to.equal('[##++----] 2 of 4 updated, 1 ready');
    expect(progressBar(4, 4, 4, 8)).to.equal('[########] 4 of 4 updated, 4 ready');
    // A surge above the replicas stays within the bar; nothing to roll is a full bar.
    expect(progressBar(5, 4, 4, 8)).to.equal('[########] 5 of 4 updated, 4 ready');
    expect(progressBar(0, 0, 0, 4)).to.equal('[####] 0 of 0 updated, 0 ready');
  });

  it('waits until a pod runs or ends', () => {
    expect(waitOutcome('scheduled')).to.deep.equal({ done: false });
    expect(waitOutcome('running')).to.deep.equal({ done: true, code: 0 });
    expect(waitOutcome('abandoned')).to.deep.equal({ done: true, code: 1 });
  });

  it('reads manifests from YAML and JSON, several documents or a list, defaulting a pod to created', () => {
    expect(manifests('name: a\ntype: pod\nspec: {}\n---\nname: b\ntype: x\nspec: {}\n', 'f')).to.deep.equal([
      { name: 'a', type: 'pod', spec: {}, state: 'created' },
      { name: 'b', type: 'x', spec: {} },
    ]);
    expect(manifests('[{"name":"a","type":"x","spec":{}}]', 'f')).to.have.length(1);
    expect(manifests('', 'f')).to.deep.equal([]);
    expect(() => manifests('- 1', 'f')).to.throw('f: document 1, item 1: expected a resource object');
  });

  it('sees an unchanged pod whatever the key order and the metadata kith added', () => {
    const stored = { name: 'a', type: 'pod', state: 'running', metadata: { workedBy: 'w1', team: 'x' }, spec: { ports: [], containers: [{ image: 'i', name: 'c', resources: { limits: { cpu: '0.5' } } }] } };
    expect(samePod({ name: 'a', type: 'pod', metadata: { team: 'x' }, spec: { containers: [{ name: 'c', image: 'i', resources: { limits: { cpu: 0.5 } } }] } }, stored)).to.equal(true);
    expect(samePod({ name: 'a', type: 'pod', spec: { containers: [{ name: 'c', image: 'j' }] } }, stored)).to.equal(false);
    expect(samePod({ name: 'a', type: 'pod', metadata: { team: 'y' }, spec: stored.spec }, stored)).to.equal(false);
  });

  it('prints aligned tables', () => {
    expect(resourceTable('replicaset', [{ name: 'front', spec: { replicas: 3 }, status: { live: 3, running: 2, ready: 2, updated: 1, available: 2, rollout: 'progressing' }, state: 'progressing' }])).to.equal(
      'NAME   REPLICAS  LIVE  RUNNING  READY  UPDATED  AVAILABLE  ROLLOUT      STATE\nfront  3         3     2        2      1        2          progressing  progressing\n',
    );
  });
});
