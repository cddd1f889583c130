import type { Compare, Op } from '../../../agent/state.js';

/**
 * A model of etcd's multi-version store and transaction compares, for the
 * race simulations of the reconcile unit tests: every version is kept, so a
 * controller's view can be taken at any past revision, per prefix. The real
 * etcd is exercised by the integration tests.
 */
interface Version {
  revision: number;
  value: string | undefined;
  createRevision: number;
}

export interface ModelKv {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
}

export class KvModel {
  revision = 1;
  private readonly history = new Map<string, Version[]>();

  private at(key: string, revision = this.revision): ModelKv | undefined {
    const versions = this.history.get(key) ?? [];
    for (let i = versions.length - 1; i >= 0; i--) {
      const v = versions[i]!;
      if (v.revision <= revision) return v.value === undefined ? undefined : { key, value: v.value, createRevision: v.createRevision, modRevision: v.revision };
    }
    return undefined;
  }

  get(key: string): ModelKv | undefined {
    return this.at(key);
  }

  /** Every key under `prefix` as it was at `revision`. */
  list(prefix: string, revision = this.revision): ModelKv[] {
    const out: ModelKv[] = [];
    for (const key of this.history.keys()) {
      if (!key.startsWith(prefix)) continue;
      const kv = this.at(key, revision);
      if (kv) out.push(kv);
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  txn(t: { if: Compare[]; then: Op[]; else?: Op[] }): { succeeded: boolean; revision: number } {
    const ok = t.if.every((c) => {
      const kv = this.get(c.key);
      let actual: number | string;
      let expected: number | string;
      if ('createRevision' in c) [actual, expected] = [kv?.createRevision ?? 0, c.createRevision];
      else if ('modRevision' in c) [actual, expected] = [kv?.modRevision ?? 0, c.modRevision];
      // The model keeps no leases: the controller never compares them.
      else if ('lease' in c) return false;
      else {
        if (!kv) return false;
        [actual, expected] = [kv.value, c.value];
      }
      switch (c.op ?? '==') {
        case '==': return actual === expected;
        case '!=': return actual !== expected;
        case '>': return actual > expected;
        case '<': return actual < expected;
      }
    });
    const ops = ok ? t.then : (t.else ?? []);
    if (ops.some((op) => 'put' in op || ('delete' in op && this.get(op.delete)))) {
      const rev = this.revision + 1;
      let changed = false;
      for (const op of ops) {
        if ('put' in op) {
          const prev = this.get(op.put);
          this.push(op.put, { revision: rev, value: op.value, createRevision: prev?.createRevision ?? rev });
          changed = true;
        } else if ('delete' in op && this.get(op.delete)) {
          this.push(op.delete, { revision: rev, value: undefined, createRevision: 0 });
          changed = true;
        }
      }
      if (changed) this.revision = rev;
    }
    return { succeeded: ok, revision: this.revision };
  }

  put(key: string, value: string): number {
    return this.txn({ if: [], then: [{ put: key, value }] }).revision;
  }

  delete(key: string): number {
    return this.txn({ if: [], then: [{ delete: key }] }).revision;
  }

  private push(key: string, v: Version): void {
    let versions = this.history.get(key);
    if (!versions) this.history.set(key, (versions = []));
    versions.push(v);
  }
}
