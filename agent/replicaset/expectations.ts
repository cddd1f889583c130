import type { Action } from './reconcile.js';
import type { ReplicaSetView } from './view.js';

/**
 * What this controller has written and not seen yet, as Kubernetes
 * controllers keep "expectations": the view follows etcd through watches,
 * which lag behind a commit by a little, and a round must not decide on a
 * view that misses its own last writes. Each expectation ends when the view
 * shows the write, or after `ttlMs` (the clock is passed in).
 */
export class Expectations {
  private readonly created = new Map<string, number>();
  private readonly deleted = new Map<string, number>();
  private readonly listWritten = new Map<string, { revision: number; until: number }>();
  private readonly statusWritten = new Map<string, { revision: number; until: number }>();
  private readonly historyWritten = new Map<string, { revision: number; until: number }>();

  constructor(private readonly ttlMs: number) {}

  get outstanding(): number {
    return this.created.size + this.deleted.size + this.listWritten.size + this.statusWritten.size + this.historyWritten.size;
  }

  /** Records one step of a replica change that committed at `revision`. */
  stepCommitted(replicaSet: string, step: { created: string[]; removed: string[] }, revision: number, now: number): void {
    const until = now + this.ttlMs;
    this.listWritten.set(replicaSet, { revision, until });
    for (const name of step.created) this.created.set(name, until);
    for (const name of step.removed) this.deleted.set(name, until);
  }

  /** Records an action other than a replica change that committed at `revision`. */
  committed(action: Exclude<Action, { kind: 'replicas' }>, revision: number, now: number): void {
    const until = now + this.ttlMs;
    switch (action.kind) {
      case 'delete':
        this.deleted.set(action.pod.name, until);
        break;
      case 'status':
        this.statusWritten.set(action.replicaSet, { revision, until });
        break;
      case 'history':
        this.historyWritten.set(action.replicaSet, { revision, until });
        break;
      case 'drop-list':
      case 'drop-history':
        break;
    }
  }

  /** A pod event arrived: its creation or deletion is seen. */
  podSeen(name: string, type: 'put' | 'delete'): void {
    if (type === 'put') this.created.delete(name);
    else {
      this.created.delete(name);
      this.deleted.delete(name);
    }
  }

  /** Drops expectations the view now meets, and those past their time. */
  settle(view: ReplicaSetView, now: number): void {
    for (const m of [this.created, this.deleted]) for (const [k, until] of m) if (until < now) m.delete(k);
    for (const [rs, w] of this.listWritten) {
      if (w.until < now || (view.lists.get(rs)?.modRevision ?? 0) >= w.revision) this.listWritten.delete(rs);
    }
    for (const [rs, w] of this.statusWritten) {
      if (w.until < now || (view.replicaSets.get(rs)?.modRevision ?? 0) >= w.revision) this.statusWritten.delete(rs);
    }
    for (const [rs, w] of this.historyWritten) {
      if (w.until < now || (view.histories.get(rs)?.modRevision ?? 0) >= w.revision) this.historyWritten.delete(rs);
    }
  }

  /** The parts of reconcile's input that come from expectations. */
  snapshot(): {
    created: Set<string>;
    deleted: Set<string>;
    listWritten: Map<string, number>;
    statusWritten: Map<string, number>;
    historyWritten: Map<string, number>;
  } {
    const revisions = (m: Map<string, { revision: number }>) => new Map([...m].map(([k, w]) => [k, w.revision]));
    return {
      created: new Set(this.created.keys()),
      deleted: new Set(this.deleted.keys()),
      listWritten: revisions(this.listWritten),
      statusWritten: revisions(this.statusWritten),
      historyWritten: revisions(this.historyWritten),
    };
  }
}
