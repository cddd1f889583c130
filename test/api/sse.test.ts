import { expect } from 'chai';
import { idsOf, resumeFrom, sseEvent, SseReader } from '../../api/sse.js';

describe('api: the watch wire format', () => {
  it('writes an event as id, event and one data line, ended by a blank line', () => {
    expect(sseEvent('put', '{"a":1}', 7)).to.equal('id: 7\nevent: put\ndata: {"a":1}\n\n');
    expect(sseEvent('reset', '{}')).to.equal('event: reset\ndata: {}\n\n');
  });

  it('puts the id on the last change of each revision only', () => {
    expect(idsOf([3, 4, 4, 4, 6, 7, 7])).to.deep.equal([3, undefined, undefined, 4, 6, undefined, 7]);
    expect(idsOf([])).to.deep.equal([]);
  });

  it('resumes from Last-Event-ID before ?since=, and refuses what is no revision', () => {
    expect(resumeFrom('12', '5')).to.equal(12);
    expect(resumeFrom('', '5')).to.equal(5);
    expect(resumeFrom(' ', undefined)).to.equal(undefined);
    expect(resumeFrom('x', undefined)).to.equal('bad');
    expect(resumeFrom('', ['1', '2'])).to.equal(undefined);
    expect(resumeFrom('', '-1')).to.equal('bad');
  });

  it('reads events split anywhere, skipping comments, as an EventSource does', () => {
    const text = ':\n' + sseEvent('put', '{"n":1}', 3) + ':\r\n' + sseEvent('synced', '{"revision":3}', 3) + 'event: delete\r\ndata: {}\r\n\r\n';
    const r = new SseReader();
    const got = [];
    for (let i = 0; i < text.length; i += 5) got.push(...r.push(text.slice(i, i + 5)));
    expect(got).to.deep.equal([
      { event: 'put', data: '{"n":1}', id: '3' },
      { event: 'synced', data: '{"revision":3}', id: '3' },
      { event: 'delete', data: '{}' },
    ]);
  });
});
