import { expect } from 'chai';
import { reapActions, type Observed } from '../../../agent/reaper/reap.js';

const view = (v: Partial<Observed>): Observed => ({ alive: new Set(), pods: new Map(), claims: new Map(), inboxes: new Map(), ...v });

describe('reaper decisions', () => {
  it('marks non-terminal pods of a dead worker dead, with their claim', () => {
    const a = reapActions(view({
      alive: new Set(['w2']),
      pods: new Map([
        ['p1', { state: 'running', workedBy: 'w1', modRevision: 10 }],
        ['p2', { state: 'accepted', workedBy: 'w2', modRevision: 11 }],
        ['p3', { state: 'exitSuccess', workedBy: 'w1', modRevision: 12 }],
        ['p4', { state: 'created', modRevision: 13 }],
        ['p5', { state: 'dead', workedBy: 'w1', reapedBy: 'r', modRevision: 14 }],
      ]),
      claims: new Map([['p1', { worker: 'w1', modRevision: 9 }]]),
    }));
    expect(a).to.deep.equal([{ kind: 'markDead', pod: 'p1', worker: 'w1', modRevision: 10, claimRevision: 9 }]);
  });

  it('finds a pod by its claim when its resource does not name the worker', () => {
    const a = reapActions(view({
      pods: new Map([['p1', { state: 'accepted', modRevision: 10 }]]),
      claims: new Map([['p1', { worker: 'w1', modRevision: 9 }]]),
    }));
    expect(a).to.deep.equal([{ kind: 'markDead', pod: 'p1', worker: 'w1', modRevision: 10, claimRevision: 9 }]);
  });

  it('empties the inbox of a dead worker and marks its scheduled pods dead', () => {
    const a = reapActions(view({
      alive: new Set(['w2']),
      pods: new Map([
        ['p1', { state: 'scheduled', workedBy: 'w1', modRevision: 10 }],
        ['p2', { state: 'scheduled', workedBy: 'w2', modRevision: 11 }],
      ]),
      inboxes: new Map([
        ['w1', new Map([['p1', 10], ['gone', 7]])],
        ['w2', new Map([['p2', 11]])],
      ]),
    }));
    expect(a).to.deep.equal([
      { kind: 'emptyInbox', worker: 'w1', pod: 'p1', inboxRevision: 10, podRevision: 10 },
      { kind: 'emptyInbox', worker: 'w1', pod: 'gone', inboxRevision: 7 },
    ]);
  });

  it('does nothing while every worker lives', () => {
    expect(reapActions(view({
      alive: new Set(['w1']),
      pods: new Map([['p1', { state: 'running', workedBy: 'w1', modRevision: 10 }]]),
      claims: new Map([['p1', { worker: 'w1', modRevision: 9 }]]),
      inboxes: new Map([['w1', new Map([['p2', 3]])]]),
    }))).to.deep.equal([]);
  });
});
