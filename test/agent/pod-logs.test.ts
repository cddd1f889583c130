import { createPublicKey } from 'node:crypto';
import { expect } from 'chai';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { logsQueryString, missedByFollow, parseLogsEndpoint, parseLogsQuery, plainLines, checkSignature, LogsSigner, tailLines, TerminalLines } from '../../agent/pod-logs.js';
import { chooseContainer } from '../../api/logs.js';
import { decideLogs } from '../../agent/worker/logs.js';
import { Problem } from '../../api/problem.js';

describe('pod logs (pure)', () => {
  it('reads the query of a logs request and writes it back', () => {
    expect(parseLogsQuery({})).to.deep.equal({ container: undefined, follow: false, tail: undefined, previous: false });
    const q = parseLogsQuery({ container: 'main', follow: '1', tail: '3', previous: 'true' });
    expect(q).to.deep.equal({ container: 'main', follow: true, tail: 3, previous: true });
    expect(parseLogsQuery(Object.fromEntries(new URLSearchParams(logsQueryString(q as never).slice(1))))).to.deep.equal(q);
    expect(parseLogsQuery({ tail: '-1' })).to.have.property('error').that.match(/tail '-1'/);
    expect(parseLogsQuery({ tail: 'x' })).to.have.property('error');
    expect(parseLogsQuery({ container: 'A/../b' })).to.have.property('error').that.match(/container/);
    expect(logsQueryString({ follow: false, previous: false })).to.equal('');
  });

  it('finds what a follow that ended missed: the log after the last text it sent, never twice', () => {
    const whole = 'a\nb\nc\nd\n';
    expect(missedByFollow('a\nb\n', whole, undefined)).to.equal('c\nd\n');
    expect(missedByFollow('c\nd\n', whole, 2)).to.equal('');
    // With a tail, what was sent starts anywhere: matched by its end.
    expect(missedByFollow('b\nc\n', whole, 2)).to.equal('d\n');
    // A line sent only in part.
    expect(missedByFollow('a\nb', whole, undefined)).to.equal('\nc\nd\n');
    // Repeated text is matched at its last place: lines may go unsent, none is sent twice.
    expect(missedByFollow('x\n', 'x\ny\nx\n', undefined)).to.equal('');
    // Nothing sent: all of it without a tail, nothing with one; sent text not in the log: nothing.
    expect(missedByFollow('', whole, undefined)).to.equal(whole);
    expect(missedByFollow('', whole, 0)).to.equal('');
    expect(missedByFollow('zzz', whole, undefined)).to.equal('');
  });

  it('takes the last lines of a log', () => {
    expect(tailLines('a\nb\nc\n', 2)).to.equal('b\nc\n');
    expect(tailLines('a\nb\nc', 2)).to.equal('b\nc\n');
    expect(tailLines('a\nb\n', 5)).to.equal('a\nb\n');
    expect(tailLines('a\nb\n', 0)).to.equal('');
    expect(tailLines('a\nb\n', undefined)).to.equal('a\nb\n');
    expect(tailLines('', 3)).to.equal('');
  });

  it('serves a terminal\'s CR LF line ends as LF, also across chunks', async () => {
    const out = await text(Readable.from([Buffer.from('a\r'), Buffer.from('\nb\r\nc\r')]).pipe(new TerminalLines()));
    expect(out).to.equal('a\nb\nc\r');
    expect(plainLines('x\r\ny\r\n')).to.equal('x\ny\n');
  });

  it('accepts a request signed by a known API node\'s key, for that method and path, within a minute; nothing else', () => {
    const a = new LogsSigner('api-a');
    const b = new LogsSigner('api-b');
    const keys = new Map([['api-a', createPublicKey(a.publicKeyPem)]]);
    const now = 1_800_000_000_000;
    const auth = a.authorization('GET', '/pods/web/logs?tail=3', now);
    expect(checkSignature(auth, 'GET', '/pods/web/logs?tail=3', keys, now)).to.equal(true);
    expect(checkSignature(auth, 'GET', '/pods/web/logs?tail=3', keys, now + 59_000)).to.equal(true);
    // Another path, method or time, a node whose key is unknown, a forged signature, a bearer token: refused.
    expect(checkSignature(auth, 'GET', '/pods/db/logs?tail=3', keys, now)).to.equal(false);
    expect(checkSignature(auth, 'POST', '/pods/web/logs?tail=3', keys, now)).to.equal(false);
    expect(checkSignature(auth, 'GET', '/pods/web/logs?tail=3', keys, now + 61_000)).to.equal(false);
    expect(checkSignature(b.authorization('GET', '/pods/web/logs', now), 'GET', '/pods/web/logs', keys, now)).to.equal(false);
    const forged = auth.replace('api-a', 'api-b');
    expect(checkSignature(forged, 'GET', '/pods/web/logs?tail=3', new Map([['api-b', createPublicKey(b.publicKeyPem)]]), now)).to.equal(false);
    expect(checkSignature('Bearer kith_x', 'GET', '/pods/web/logs', keys, now)).to.equal(false);
    expect(checkSignature(undefined, 'GET', '/pods/web/logs', keys, now)).to.equal(false);
    expect(checkSignature(`KithSig api-a ${now} ${'A'.repeat(86)}`, 'GET', '/x', keys, now)).to.equal(false);
  });

  it('reads a log endpoint', () => {
    expect(parseLogsEndpoint('10.0.0.1:10250')).to.deep.equal({ host: '10.0.0.1', port: 10250 });
    expect(parseLogsEndpoint('10.0.0.1')).to.equal(undefined);
    expect(parseLogsEndpoint('10.0.0.1:0')).to.equal(undefined);
  });

  it('chooses the container a request means, naming the pod\'s when it cannot', () => {
    expect(chooseContainer('web', ['main'], undefined)).to.equal('main');
    expect(chooseContainer('web', ['a', 'b'], 'b')).to.equal('b');
    expect(() => chooseContainer('web', ['a', 'b'], undefined)).to.throw(Problem, /containers a, b/);
    expect(() => chooseContainer('web', ['a'], 'x')).to.throw(Problem, /no container 'x'/);
  });

  it('decides where a worker reads a log: the runtime while the pod runs, the kept copies after', () => {
    const base = { pod: 'web', runtimeName: 'w1-web', dataDir: '/d' };
    const q = { container: 'main', follow: false, previous: false };
    const running = { runtimeName: 'w1-web', containers: ['main'] };
    expect(decideLogs({ ...base, query: q, running }, () => false)).to.deep.equal({ kind: 'stream', runtimeName: 'w1-web', container: 'main' });
    expect(decideLogs({ ...base, query: { ...q, previous: true }, running }, (f) => f === '/d/pod-logs/w1-web/main.previous')).to.deep.equal({ kind: 'file', file: '/d/pod-logs/w1-web/main.previous' });
    expect(decideLogs({ ...base, query: { ...q, previous: true }, running }, () => false)).to.include({ kind: 'problem', status: 404 });
    expect(decideLogs({ ...base, query: q }, (f) => f === '/d/pod-logs/w1-web/main.log')).to.deep.equal({ kind: 'file', file: '/d/pod-logs/w1-web/main.log' });
    expect(decideLogs({ ...base, query: q }, () => false)).to.include({ kind: 'problem', type: 'logs-not-found' });
    expect(decideLogs({ ...base, query: { ...q, container: 'x' }, running }, () => true)).to.include({ kind: 'problem', type: 'container-not-found' });
  });
});
