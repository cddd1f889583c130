import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseAgentConfig, rememberName } from '../../agent/config.js';
import { ConfigError } from '../../agent/errors.js';
import { agentUsage, flagGroups } from '../../agent/config.js';
import { generateName, NAME_WORDS } from '../../agent/names.js';
import { nodeState } from '../../agent/node.js';

const parse = (...argv: string[]) => parseAgentConfig(argv, {});
const error = (argv: string[], env: NodeJS.ProcessEnv = {}): string => {
  try {
    parseAgentConfig(argv, env);
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`expected ${argv.join(' ')} to be refused`);
};

describe('agent config', () => {
  it('has the defaults of SPEC §1.1', () => {
    const c = parse('--name', 'node-a');
    expect(c).to.include({
      name: 'node-a',
      etcdPrefix: '/kith',
      dataDir: '/var/lib/kith',
      clusterDomain: 'cluster.local',
      dnsTtl: 5,
      dnsUdpEngine: 'auto',
      imagePull: 'missing',
      podNetwork: 'kith',
      clusterCidr: '10.244.0.0/16',
      // SPEC §8: what the host has, not 1 CPU and 1 GiB.
      podCpuLimit: availableParallelism(),
      podMemoryLimit: Math.floor(totalmem() / 2 ** 20) - Math.max(Math.ceil(Math.floor(totalmem() / 2 ** 20) / 10), 512),
      healthyTtl: 30,
      aliveTtl: 300,
      iptablesChain: 'KITH-node-a',
      logLevel: 'info',
      pluginsAll: true,
    });
    expect(c.plugins).to.deep.equal(['worker', 'dns', 'api', 'scheduler', 'reaper', 'replicaset']);
    expect(c.etcdEndpoints).to.equal(undefined);
  });

  it('reads the environment, flags winning', () => {
    const env = {
      KITH_NAME: 'from-env', KITH_PLUGINS: 'dns,api', KITH_ETCD_ENDPOINTS: 'http://127.0.0.1:1,http://127.0.0.1:2', KITH_LOG_LEVEL: 'debug',
      KITH_ETCD_PREFIX: '/other', KITH_DATA_DIR: '/srv/kith',
    };
    const c = parseAgentConfig([], env);
    expect(c.etcdPrefix).to.equal('/other');
    expect(c.dataDir).to.equal('/srv/kith');
    expect(parseAgentConfig(['--etcd-prefix', '/flag', '--data-dir', '/tmp/d'], env)).to.include({ etcdPrefix: '/flag', dataDir: '/tmp/d' });
    expect(c.name).to.equal('from-env');
    expect(c.plugins).to.deep.equal(['dns', 'api']);
    expect(c.pluginsAll).to.equal(false);
    expect(c.etcdEndpoints).to.deep.equal(['http://127.0.0.1:1', 'http://127.0.0.1:2']);
    expect(c.logLevel).to.equal('debug');
    expect(parseAgentConfig(['--name', 'from-flag'], env).name).to.equal('from-flag');
  });

  it('parses listen lists and upstreams', () => {
    const c = parse('--name', 'a', '--dns-listen', '127.0.0.1:5353,10.0.0.1:53', '--upstream-dns', 'none');
    expect(c.dnsListen).to.deep.equal([{ host: '127.0.0.1', port: 5353 }, { host: '10.0.0.1', port: 53 }]);
    expect(c.upstreamDns).to.equal('none');
    expect(parse('--name', 'a', '--upstream-dns', '127.0.0.2:53').upstreamDns).to.deep.equal([{ host: '127.0.0.2', port: 53 }]);
  });

  it('takes switches bare on the command line, or as true/false, 1/0, yes/no in their env', () => {
    expect(parse('--name', 'a').keepPods).to.equal(false);
    expect(parse('--name', 'a', '--keep-pods').keepPods).to.equal(true);
    expect(parseAgentConfig(['--name', 'a'], { KITH_KEEP_PODS: '1' }).keepPods).to.equal(true);
    expect(parseAgentConfig(['--name', 'a'], { KITH_KEEP_PODS: 'No' }).keepPods).to.equal(false);
    expect(parseAgentConfig(['--name', 'a', '--keep-pods'], { KITH_KEEP_PODS: 'false' }).keepPods).to.equal(true);
    expect(error(['--name', 'a'], { KITH_KEEP_PODS: 'maybe' })).to.match(/^--keep-pods 'maybe': /);
    expect(error(['--name', 'a', '--keep-pods=yes'])).to.match(/keep-pods/);
  });

  it('cuts the default chain name to 28 characters', () => {
    const c = parse('--name', 'indescribable-bumblebee-1234');
    expect(c.iptablesChain).to.have.length(28);
  });

  it('names the flag in every error', () => {
    expect(error(['--name', 'Bad_Name'])).to.match(/^--name 'Bad_Name': /);
    expect(error(['--name', 'a'.repeat(29)])).to.match(/^--name /);
    expect(error(['--plugins', 'dns,bogus'])).to.match(/^--plugins /);
    expect(error(['--dns-ttl', 'soon'])).to.match(/^--dns-ttl 'soon'/);
    expect(error(['--dns-listen', '127.0.0.1'])).to.match(/^--dns-listen /);
    expect(error(['--dns-udp-engine', 'fast'])).to.match(/^--dns-udp-engine 'fast'/);
    expect(error(['--image-pull', 'sometimes'])).to.match(/^--image-pull 'sometimes'/);
    expect(parseAgentConfig(['--image-pull', 'never'], {}).imagePull).to.equal('never');
    expect(parseAgentConfig([], { KITH_IMAGE_PULL: 'newer' }).imagePull).to.equal('newer');
    expect(error(['--etcd-endpoints', 'not a url'])).to.match(/^--etcd-endpoints /);
    expect(error(['--cluster-cidr', '10.0.0.0/33'])).to.match(/^--cluster-cidr /);
    expect(error(['--healthy-ttl', '10', '--alive-ttl', '5'])).to.match(/^--alive-ttl /);
    expect(error(['--iptables-chain', 'x'.repeat(29)])).to.match(/^--iptables-chain /);
    expect(error([], { KITH_LOG_LEVEL: 'loud' })).to.match(/^--log-level 'loud'/);
    expect(error(['--no-such-flag', 'x'])).to.match(/no-such-flag/);
    expect(error(['--etcd-ca', '/ca.pem'])).to.equal("--etcd-ca '/ca.pem': needs --etcd-endpoints (the embedded etcd speaks plain HTTP on loopback)");
    expect(error(['--etcd-endpoints', 'https://10.0.0.1:2379'])).to.equal("--etcd-endpoints 'https://10.0.0.1:2379': https:// endpoints need --etcd-ca");
    expect(error(['--etcd-endpoints', 'http://10.0.0.1:2379', '--etcd-ca', '/ca.pem'])).to.match(/^--etcd-endpoints .*every endpoint must be https:\/\//);
    expect(error(['--etcd-endpoints', 'https://10.0.0.1:2379', '--etcd-ca', '/ca.pem', '--etcd-key', '/k.pem'])).to.equal("--etcd-key '/k.pem': needs --etcd-cert");
  });
});

describe('plugin flags', () => {
  it('merges every plugin\'s flags, with their env and defaults, whether or not the plugin runs', () => {
    const c = parse('--name', 'a', '--plugins', 'reaper');
    expect(c).to.include({ workerPollMs: 1000, schedulerRetryMs: 10_000, schedulerMaxTries: 6, dnsTtl: 5, podNetwork: 'kith' });
    const e = parseAgentConfig(['--scheduler-max-tries', '4'], { KITH_WORKER_POLL_MS: '250', KITH_SCHEDULER_RETRY_MS: '200', KITH_SCHEDULER_MAX_TRIES: '3' });
    expect(e).to.include({ workerPollMs: 250, schedulerRetryMs: 200, schedulerMaxTries: 4 });
    expect(error(['--worker-poll-ms', '0'])).to.match(/^--worker-poll-ms '0': /);
    expect(error([], { KITH_SCHEDULER_RETRY_MS: 'soon' })).to.match(/^--scheduler-retry-ms 'soon': /);
    expect(error(['--plugins', 'dns,bogus'])).to.equal("--plugins 'dns,bogus': 'bogus' is not a plugin; each is one of worker, dns, api, scheduler, reaper, replicaset");
  });

  it('lists every flag once in --help, by group, with its env var and default', () => {
    const help = agentUsage();
    const flags = flagGroups().flatMap((g) => Object.values(g.flags));
    expect(new Set(flags.map((f) => f.flag)).size).to.equal(flags.length);
    for (const f of flags) {
      const line = help.split('\n').find((l) => l.startsWith(`  --${f.flag} `));
      expect(line, f.flag).to.be.a('string');
      if (f.env) expect(line).to.include(`env ${f.env}`);
      if (f.default !== undefined) expect(line).to.include(`default ${f.default}`);
    }
    expect(help).to.match(/\nworker plugin flags:\n  --pod-network /);
    expect(help).to.match(/\ndns plugin flags:\n  --dns-listen /);
  });
});

describe('names', () => {
  it('remembers a random node name in the data dir, so a restarted agent is the same node', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kith-name-'));
    try {
      const first = parseAgentConfig(['--data-dir', dir], {});
      expect(rememberName(first)).to.equal(undefined);
      expect(readFileSync(join(dir, 'node-name'), 'utf8')).to.equal(`${first.name}\n`);
      const again = parseAgentConfig(['--data-dir', dir], {});
      rememberName(again);
      expect(again.name).to.equal(first.name);
      expect(again.iptablesChain).to.equal(`KITH-${first.name}`.slice(0, 28));
      // A given name wins and is not remembered; a given chain is kept.
      const given = parseAgentConfig(['--data-dir', dir, '--name', 'chosen', '--iptables-chain', 'MINE'], {});
      rememberName(given);
      expect(given).to.include({ name: 'chosen', iptablesChain: 'MINE' });
      expect(readFileSync(join(dir, 'node-name'), 'utf8')).to.equal(`${first.name}\n`);
      // What is not a node name is replaced.
      writeFileSync(join(dir, 'node-name'), 'Not A Name\n');
      const fresh = parseAgentConfig(['--data-dir', dir], {});
      rememberName(fresh);
      expect(readFileSync(join(dir, 'node-name'), 'utf8')).to.equal(`${fresh.name}\n`);
      // A data dir that cannot be written: the random name is used, and the agent is told why it is not kept.
      writeFileSync(join(dir, 'a-file'), '');
      const ro = parseAgentConfig(['--data-dir', join(dir, 'a-file', 'sub')], {});
      expect(rememberName(ro)).to.match(/^could not remember the node name in .*a-file\/sub\/node-name \(ENOTDIR\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('generates adjective-noun-NNNN labels of at most 28 characters', () => {
    for (let i = 0; i < 2000; i++) {
      const n = generateName();
      expect(n).to.match(/^[a-z]+-[a-z]+-\d{4}$/);
      expect(n.length).to.be.at.most(28);
    }
    const longest = Math.max(...NAME_WORDS.adjectives.map((a) => a.length)) + Math.max(...NAME_WORDS.nouns.map((n) => n.length)) + 6;
    expect(longest).to.be.at.most(28);
  });
});

describe('node state', () => {
  it('is derived from the two heartbeats', () => {
    expect(nodeState({ healthy: true, alive: true })).to.equal('healthy');
    expect(nodeState({ healthy: false, alive: true })).to.equal('degraded');
    expect(nodeState({ healthy: false, alive: false })).to.equal('dead');
    expect(nodeState({ healthy: true, alive: false })).to.equal('dead');
  });
});
