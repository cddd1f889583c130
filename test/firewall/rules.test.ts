import { expect } from 'chai';
import { chainSetUp, chainTearDown, FirewallInputError, jumpFirst, podRules, ruleArgs, rulesForIp, splitRuleLine } from '../../firewall/rules.js';

const C = 'KITH-node1';
const A = '10.244.1.5';

describe('firewall rules (pure)', () => {
  it('an exposed port gets one filter RETURN, then the catch-all REJECT', () => {
    const rules = podRules(C, { ip: A, ports: [80] });
    expect(rules.map((r) => ruleArgs(r, '-A').join(' '))).to.deep.equal([
      `-t filter -A ${C} -d ${A}/32 -p tcp --dport 80 -j RETURN`,
      `-t filter -A ${C} -d ${A}/32 -m conntrack ! --ctstate RELATED,ESTABLISHED -j REJECT`,
    ]);
  });

  it('a port only probed is open to the worker\'s own probes (from the gateway) and no one else, before the REJECT', () => {
    const rules = podRules(C, { ip: A, ports: [80], probes: { from: '10.244.1.1', ports: [8080, 80, 8080] } });
    expect(rules.map((r) => ruleArgs(r, '-A').join(' '))).to.deep.equal([
      `-t filter -A ${C} -d ${A}/32 -p tcp --dport 80 -j RETURN`,
      // 80 is declared (open to all already); 8080 once.
      `-t filter -A ${C} -s 10.244.1.1/32 -d ${A}/32 -p tcp --dport 8080 -j RETURN`,
      `-t filter -A ${C} -d ${A}/32 -m conntrack ! --ctstate RELATED,ESTABLISHED -j REJECT`,
    ]);
    expect(() => podRules(C, { ip: A, ports: [], probes: { from: 'gw', ports: [1] } })).to.throw(FirewallInputError, /probe source 'gw'/);
    expect(() => podRules(C, { ip: A, ports: [], probes: { from: '10.0.0.1', ports: [0] } })).to.throw(FirewallInputError, /probed port/);
  });

  it('{container} without cluster is the same as a bare port', () => {
    expect(podRules(C, { ip: A, ports: [{ container: 80, name: 'http' }] })).to.deep.equal(podRules(C, { ip: A, ports: [80] }));
  });

  it('a mapped port gets DNAT in nat and a RETURN only for connections DNATed from its cluster port', () => {
    const rules = podRules(C, { ip: A, ports: [{ container: 80, cluster: 8080 }] });
    expect(rules.map((r) => ruleArgs(r, '-A').join(' '))).to.deep.equal([
      `-t nat -A ${C} -d ${A}/32 -p tcp --dport 8080 -j DNAT --to-destination ${A}:80`,
      `-t filter -A ${C} -d ${A}/32 -p tcp -m conntrack --ctstate DNAT --ctorigdstport 8080 --ctdir ORIGINAL --dport 80 -j RETURN`,
      `-t filter -A ${C} -d ${A}/32 -m conntrack ! --ctstate RELATED,ESTABLISHED -j REJECT`,
    ]);
  });

  it('keeps spec order, nat rules first, and deletes with -D in the same order', () => {
    const rules = podRules(C, { ip: A, ports: [{ container: 81, cluster: 9081 }, 22, { container: 80, cluster: 9080 }] });
    expect(rules.map((r) => r.table)).to.deep.equal(['nat', 'nat', 'filter', 'filter', 'filter', 'filter']);
    expect(rules[0]!.spec).to.include('9081');
    expect(rules[1]!.spec).to.include('9080');
    expect(rules[3]!.spec.join(' ')).to.contain('--dport 22 -j RETURN');
    expect(ruleArgs(rules[0]!, '-D').slice(0, 4)).to.deep.equal(['-t', 'nat', '-D', C]);
  });

  it('a pod without ports rejects every new inbound connection', () => {
    const rules = podRules(C, { ip: A, ports: [] });
    expect(rules).to.have.length(1);
    expect(rules[0]!.spec).to.include('REJECT');
  });

  it('refuses bad input with an error naming it', () => {
    const bad = (ip: string, ports: unknown[], msg: RegExp) =>
      expect(() => podRules(C, { ip, ports: ports as never })).to.throw(FirewallInputError, msg);
    bad('10.244.1', [80], /pod IP '10.244.1'/);
    bad(A, [0], /ports\[0\]: 0 is not a TCP port/);
    bad(A, [{ container: 80, cluster: 70000 }], /ports\[0\]\.cluster: 70000/);
    bad(A, ['80'], /ports\[0\]: must be a port/);
    bad(A, [80, 80], /ports\[1\]: port 80 is already declared by ports\[0\]/);
    bad(A, [{ container: 80, cluster: 8080 }, 8080], /ports\[1\]: port 8080/);
    bad(A, [80, { container: 81, cluster: 80 }], /ports\[1\]: port 80/);
    expect(() => podRules('X'.repeat(29), { ip: A, ports: [] })).to.throw(FirewallInputError, /1-28 characters/);
  });

  it('a container port may be exposed and also mapped from a cluster port', () => {
    expect(podRules(C, { ip: A, ports: [80, { container: 80, cluster: 8080 }] })).to.have.length(4);
  });

  it('sets up the chain in both tables, nat jumps appended and filter jumps inserted', () => {
    expect(chainSetUp(C).map((a) => a.join(' '))).to.deep.equal([
      `-t nat -N ${C}`,
      `-t nat -A PREROUTING -j ${C}`,
      `-t nat -A OUTPUT -j ${C}`,
      `-t filter -N ${C}`,
      `-t filter -I FORWARD -j ${C}`,
      `-t filter -I OUTPUT -j ${C}`,
    ]);
  });

  it('tears down from a listing: every jump (duplicates too), then flush and delete', () => {
    const listing = [
      '-P PREROUTING ACCEPT',
      `-N ${C}`,
      '-N CNI-HOSTPORT-DNAT',
      `-A PREROUTING -j ${C}`,
      `-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT`,
      `-A OUTPUT -j ${C}`,
      `-A OUTPUT -j ${C}`,
      `-A ${C} -d ${A}/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination ${A}:80`,
      `-A PREROUTING -j ${C}-other`,
    ].join('\n');
    expect(chainTearDown(C, 'nat', listing).map((a) => a.join(' '))).to.deep.equal([
      `-t nat -D PREROUTING -j ${C}`,
      `-t nat -D OUTPUT -j ${C}`,
      `-t nat -D OUTPUT -j ${C}`,
      `-t nat -F ${C}`,
      `-t nat -X ${C}`,
    ]);
  });

  it('tear-down of nothing is nothing (idempotent), and a lone jump is still removed', () => {
    expect(chainTearDown(C, 'filter', '-P FORWARD ACCEPT\n-A FORWARD -j CNI-FORWARD')).to.deep.equal([]);
    expect(chainTearDown(C, 'filter', `-A FORWARD -m comment --comment "kith jump" -j ${C}`)).to.deep.equal([
      ['-t', 'filter', '-D', 'FORWARD', '-m', 'comment', '--comment', 'kith jump', '-j', C],
    ]);
  });

  it('splits iptables -S lines with quoted comments', () => {
    expect(splitRuleLine('-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD')).to.deep.equal([
      '-A', 'FORWARD', '-m', 'comment', '--comment', 'CNI firewall plugin rules', '-j', 'CNI-FORWARD',
    ]);
  });

  it('keeps the filter jump first: nothing to do when it is, else insert at 1 and delete the copies below by number', () => {
    expect(jumpFirst(C, 'FORWARD', `-P FORWARD ACCEPT\n-A FORWARD -j ${C}\n-A FORWARD -j NETAVARK_FORWARD`)).to.deep.equal([]);
    const listing = [
      '-P FORWARD ACCEPT',
      '-A FORWARD -m comment --comment "netavark firewall plugin rules" -j NETAVARK_FORWARD',
      `-A FORWARD -j ${C}`,
      '-A FORWARD -j OTHER',
      `-A FORWARD -j ${C}`,
    ].join('\n');
    expect(jumpFirst(C, 'FORWARD', listing).map((a) => a.join(' '))).to.deep.equal([
      `-t filter -I FORWARD 1 -j ${C}`,
      '-t filter -D FORWARD 5',
      '-t filter -D FORWARD 3',
    ]);
    expect(jumpFirst(C, 'OUTPUT', '-P OUTPUT ACCEPT').map((a) => a.join(' '))).to.deep.equal([`-t filter -I OUTPUT 1 -j ${C}`]);
    // A rule that merely mentions the chain with extra matches is not the jump.
    expect(jumpFirst(C, 'FORWARD', `-A FORWARD -j ${C}\n-A FORWARD -s 10.0.0.0/8 -j ${C}`)).to.deep.equal([]);
  });

  it('finds the rules of the node chain that target one IP (and only that IP)', () => {
    const listing = [
      `-N ${C}`,
      `-A PREROUTING -j ${C}`,
      `-A ${C} -d ${A}/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination ${A}:80`,
      `-A ${C} -d 10.244.1.50/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.244.1.50:80`,
      `-A OTHER -d ${A}/32 -j ACCEPT`,
    ].join('\n');
    expect(rulesForIp(C, 'nat', listing, A).map((a) => a.join(' '))).to.deep.equal([
      `-t nat -D ${C} -d ${A}/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination ${A}:80`,
    ]);
    expect(rulesForIp(C, 'nat', listing, '10.244.1.9')).to.deep.equal([]);
  });
});
