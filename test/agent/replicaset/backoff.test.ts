import { expect } from 'chai';
import { Backoff } from '../../../agent/replicaset/backoff.js';

describe('replicaset crash-loop back-off', () => {
  it('holds new replicas after a failure, doubling the delay with each failure in a row, up to the maximum', () => {
    const b = new Backoff(250, 2000);
    expect(b.held(0)).to.deep.equal(new Set());
    b.failed('web', 1000);
    expect(b.held(1000)).to.deep.equal(new Set(['web']));
    expect(b.held(1249)).to.deep.equal(new Set(['web']));
    expect(b.held(1250)).to.deep.equal(new Set());
    expect(b.nextRelease(1000)).to.equal(1250);
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      b.failed('web', 10_000);
      delays.push(b.nextRelease(10_000)! - 10_000);
    }
    expect(delays).to.deep.equal([500, 1000, 2000, 2000, 2000, 2000]);
    expect(b.failures('web')).to.equal(7);
  });

  it('starts a new streak when the failed replica had run long enough, and keeps ReplicaSets apart', () => {
    const b = new Backoff(100, 10_000, 5000);
    b.failed('web', 0);
    b.failed('web', 0, 4999);
    b.failed('api', 0);
    expect(b.failures('web')).to.equal(2);
    expect(b.held(150)).to.deep.equal(new Set(['web']));
    expect(b.tracked().sort()).to.deep.equal(['api', 'web']);
    b.failed('web', 0, 5000);
    expect(b.failures('web')).to.equal(1);
    expect(b.nextRelease(0)).to.equal(100);
    expect(b.nextRelease(200)).to.equal(undefined);
    b.forget('web');
    expect(b.tracked()).to.deep.equal(['api']);
  });
});
