import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { expect } from 'chai';
import { execa } from 'execa';
import { sweepTestHosts, TestLan } from './hosts.js';

const IMAGE = 'localhost/kith/busybox';

async function leftovers(id: string): Promise<string[]> {
  const out: string[] = [];
  const netns = (await execa('ip', ['netns', 'list'])).stdout;
  const links = (await execa('ip', ['-o', 'link', 'show'])).stdout;
  const pods = (await execa('podman', ['ps', '-a', '--format', '{{.Names}}'])).stdout;
  const nets = (await execa('podman', ['network', 'ls', '--format', '{{.Name}}'])).stdout;
  for (const [what, text] of [['netns', netns], ['link', links], ['container', pods], ['network', nets]] as const) {
    if (text.includes(id)) out.push(what);
  }
  return out;
}

describe('test hosts (network namespaces on one LAN)', function () {
  this.timeout(60_000);

  it('runs podman pods inside two hosts that reach each other across hosts, and destroy() removes everything', async () => {
    const lan = await TestLan.create({ hosts: 2 });
    try {
      const [h1, h2] = lan.hosts as [NonNullable<(typeof lan.hosts)[0]>, NonNullable<(typeof lan.hosts)[0]>];
      expect(h1.name).to.equal(`${lan.id}-1`);
      // A service of the test process, reached from a host through the relay.
      const srv = createServer((s) => s.end('from-root\n'));
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      try {
        const port = await lan.relay((srv.address() as { port: number }).port);
        const r = await h1.run('busybox', ['nc', '-w', '2', lan.gateway, String(port)]);
        expect(r.stdout).to.contain('from-root');
      } finally {
        srv.close();
      }

      const subnets = ['10.231.1.0/24', '10.231.2.0/24'];
      for (const [i, h] of [h1, h2].entries()) {
        await h.run('podman', ['network', 'create', '--disable-dns', '--subnet', subnets[i]!, h.name]);
      }
      await h1.route(subnets[1]!, h2.address);
      await h2.route(subnets[0]!, h1.address);
      await h1.run('podman', ['run', '-d', '--pull=never', '--name', `${h1.name}-web`, '--network', h1.name, IMAGE, 'sh', '-c', 'echo web-one > /www/index.html && httpd -f -p 80 -h /www']);
      await h2.run('podman', ['run', '-d', '--pull=never', '--name', `${h2.name}-cli`, '--network', h2.name, IMAGE, 'sleep', '300']);
      const ip = (await h1.run('podman', ['inspect', '-f', `{{(index .NetworkSettings.Networks "${h1.name}").IPAddress}}`, `${h1.name}-web`])).stdout.trim();
      expect(ip).to.match(/^10\.231\.1\.\d+$/);
      // The bridge lives inside the host, not in the root namespace.
      expect((await h1.run('ip', ['-4', '-o', 'addr'])).stdout).to.contain('10.231.1.1/24');
      expect((await execa('ip', ['-4', '-o', 'addr'])).stdout).not.to.contain('10.231.1.1/24');
      let body = '';
      for (let i = 0; i < 20 && !body.includes('web-one'); i++) {
        body = (await h2.run('podman', ['exec', `${h2.name}-cli`, 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${ip} 80`], { reject: false })).stdout;
      }
      expect(body).to.contain('web-one');

      // A namespace pod (no podman) on h1 answers a pod on h2 too.
      const nsPod = await h1.addNamespacePod('10.231.3.0/24');
      await h2.route('10.231.3.0/24', h1.address);
      nsPod.spawn('busybox', ['nc', '-ll', '-p', '7000', '-e', 'echo', 'ns-pod']);
      let reply = '';
      for (let i = 0; i < 20 && !reply.includes('ns-pod'); i++) {
        reply = (await h2.run('podman', ['exec', `${h2.name}-cli`, 'nc', '-w', '1', nsPod.address, '7000'], { reject: false })).stdout;
      }
      expect(reply).to.contain('ns-pod');
    } finally {
      await lan.destroy();
    }
    expect(await leftovers(lan.id)).to.deep.equal([]);
  });

  it('sweeps the leftovers of a run whose owner died', async () => {
    const lan = await TestLan.create({ hosts: 1 });
    try {
      const h = lan.hosts[0]!;
      await h.run('podman', ['network', 'create', '--disable-dns', '--subnet', '10.231.9.0/24', h.name]);
      await h.addNamespacePod('10.231.8.0/24');
      // Pretend the owner crashed: a pid that is not running.
      writeFileSync(`/run/kith-test-hosts/${lan.id}`, '999999999 0\n');
      const swept = await sweepTestHosts();
      expect(swept).to.include(lan.id);
      expect(await leftovers(lan.id)).to.deep.equal([]);
    } finally {
      await lan.destroy();
    }
  });
});
