import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { findToken } from '../../../agent/cli/token-source.js';
import { MAIN, ROOT } from '../../support/agent.js';
import { ApiHarness } from '../../api/harness.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The real `kith` entry point with exactly `env` (plus PATH): no token leaks in from the test's own environment. */
function kith(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('cli: tokens (SPEC §9)', function () {
  this.timeout(60_000);
  let h: ApiHarness;
  let home: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    h = await ApiHarness.start();
    home = mkdtempSync(join(tmpdir(), 'kith-home-'));
    // A user's shell on the agent's host: no token given, the agent's data dir known.
    env = { HOME: home, KITH_API: h.url, KITH_DATA_DIR: h.agent.dataDir };
  });
  after(async () => {
    rmSync(home, { recursive: true, force: true });
    await h?.stop();
  });

  it('finds the token in the order --token, KITH_TOKEN, ~/.config/kith/token, <data dir>/admin.token', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kith-src-'));
    try {
      const e: NodeJS.ProcessEnv = { HOME: join(dir, 'home'), KITH_DATA_DIR: join(dir, 'data') };
      expect(findToken(undefined, e).token).to.equal(undefined);
      expect(findToken(undefined, e).source).to.contain(join(dir, 'home', '.config', 'kith', 'token')).and.to.contain(join(dir, 'data', 'admin.token'));
      mkdirSync(join(dir, 'data'));
      writeFileSync(join(dir, 'data', 'admin.token'), 'from-data\n');
      expect(findToken(undefined, e)).to.deep.equal({ token: 'from-data', source: join(dir, 'data', 'admin.token') });
      mkdirSync(join(dir, 'home', '.config', 'kith'), { recursive: true });
      writeFileSync(join(dir, 'home', '.config', 'kith', 'token'), 'from-home\n');
      expect(findToken(undefined, e)).to.deep.equal({ token: 'from-home', source: join(dir, 'home', '.config', 'kith', 'token') });
      expect(findToken(undefined, { ...e, KITH_TOKEN: 'from-env' })).to.deep.equal({ token: 'from-env', source: 'KITH_TOKEN' });
      expect(findToken('from-flag', { ...e, KITH_TOKEN: 'from-env' })).to.deep.equal({ token: 'from-flag', source: '--token' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('needs nothing more on the agent host (admin.token), and says which source a refused token came from', async () => {
    const ok = await kith(['list', 'pod'], env);
    expect(ok.code, ok.stderr).to.equal(0);
    const bad = await kith(['list', 'pod'], { ...env, KITH_TOKEN: 'kith_nonsense' });
    expect(bad.code).to.equal(1);
    expect(bad.stderr.trim().split('\n')).to.have.length(1);
    expect(bad.stderr).to.match(/the API refused the token from KITH_TOKEN: .*give a valid token with --token or KITH_TOKEN/);
    expect(bad.stderr).to.not.contain('kith_nonsense');
    const none = await kith(['list', 'pod'], { HOME: home, KITH_API: h.url, KITH_DATA_DIR: join(home, 'nowhere') });
    expect(none.code).to.equal(1);
    expect(none.stderr).to.contain('no token (none of --token, KITH_TOKEN');
  });

  it('creates (the secret printed once), lists (never a secret) and deletes tokens; roles hold', async () => {
    const made = await kith(['token', 'create', '--role', 'view', '--name', 'reader', '--ttl', '10m'], env);
    expect(made.code, made.stderr).to.equal(0);
    const secret = made.stdout.trim();
    expect(secret).to.match(/^kith_[A-Za-z0-9_-]{43}$/);
    expect(made.stderr).to.contain('token reader (view, expires ').and.to.contain('shown only now');

    const list = await kith(['token', 'list'], env);
    expect(list.code, list.stderr).to.equal(0);
    expect(list.stdout.split('\n')[0]).to.match(/^NAME\s+ROLE\s+CREATED BY\s+CREATED\s+EXPIRES$/);
    expect(list.stdout).to.match(/\nreader\s+view\s/);
    expect(list.stdout).to.not.contain(secret);
    const json = JSON.parse((await kith(['token', 'list', '-o', 'json'], env)).stdout) as { name: string; hash?: string; token?: string }[];
    expect(json.map((t) => t.name)).to.include('reader');
    expect(json.every((t) => t.hash === undefined && t.token === undefined)).to.equal(true);

    // The view token reads, and may not change anything nor see tokens.
    expect((await kith(['--token', secret, 'list', 'pod'], env)).code).to.equal(0);
    const denied = await kith(['--token', secret, 'token', 'list'], env);
    expect(denied.code).to.equal(1);
    expect(denied.stderr).to.match(/the API refused the token from --token: .*use a token with a stronger role/);

    expect((await kith(['token', 'create', '--role', 'root'], env)).stderr).to.match(/role/);
    expect((await kith(['token', 'create'], env)).code).to.equal(2);
    const del = await kith(['token', 'delete', 'reader'], env);
    expect(del.code, del.stderr).to.equal(0);
    expect(del.stdout).to.equal('token/reader deleted\n');
    expect((await kith(['--token', secret, 'list', 'pod'], env)).code).to.equal(1);
    const again = await kith(['token', 'delete', 'reader'], env);
    expect(again.code).to.equal(1);
    expect(again.stderr).to.contain("reader");
  });
});
