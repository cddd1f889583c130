import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAIN, ROOT } from '../support/agent.js';

const kith = (...args: string[]) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};
const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0;

describe('kith version and kith systemd-unit', function () {
  this.timeout(90_000);

  it('prints its version', () => {
    const r = kith('version');
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/^kith \d+\.\d+\.\d+\n$/);
  });

  it('prints a unit that drains on stop, restarts on failure, finds podman, iptables, ip and etcd, and runs the flags given', function () {
    const r = kith('systemd-unit', '--plugins', 'worker,dns', '--host-address', '10.0.0.11');
    expect(r.code, r.stderr).to.equal(0);
    const unit = r.stdout;
    const lines = unit.split('\n');
    expect(lines).to.include('Environment=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    expect(lines).to.include('Environment="KITH_AGENT_FLAGS=--plugins worker,dns --host-address 10.0.0.11"');
    expect(lines).to.include('EnvironmentFile=-/etc/default/kith');
    expect(lines).to.include(`ExecStart=${process.execPath} ${MAIN} agent $KITH_AGENT_FLAGS`);
    for (const l of ['KillMode=mixed', 'KillSignal=SIGTERM', 'Restart=on-failure', 'WantedBy=multi-user.target']) expect(lines).to.include(l);
    if (!hasSystemdAnalyze) return this.skip();
    const dir = mkdtempSync(join(tmpdir(), 'kith-unit-'));
    try {
      writeFileSync(join(dir, 'kith.service'), unit);
      const v = spawnSync('systemd-analyze', ['verify', join(dir, 'kith.service')], { encoding: 'utf8', timeout: 30_000 });
      expect(v.status, v.stderr).to.equal(0);
      // verify exits 0 on a line it ignores; it must have nothing to say about the unit.
      expect(v.stderr).to.not.include('kith.service:');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prints the environment file, and refuses bad flags in one line, exit 2', () => {
    const env = kith('systemd-unit', '--env', '--plugins', 'api', '--api-listen', '0.0.0.0:8080');
    expect(env.code).to.equal(0);
    expect(env.stdout.split('\n')).to.include('KITH_AGENT_FLAGS="--plugins api --api-listen 0.0.0.0:8080"');
    const bad = kith('systemd-unit', '--dns-ttl', 'soon');
    expect([bad.code, bad.stderr]).to.deep.equal([2, "kith systemd-unit: --dns-ttl 'soon': Invalid input: expected number, received NaN\n"]);
    const spaced = kith('systemd-unit', '--data-dir', '/srv/my kith');
    expect(spaced.code).to.equal(1);
    expect(spaced.stderr).to.match(/^kith systemd-unit: '\/srv\/my kith' holds a space, quote or \$/);
  });
});
