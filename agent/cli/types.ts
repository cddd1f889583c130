import { NODE_TYPES } from '../../api/schemas.js';
import { UsageError } from './run.js';

/** How the client commands spell resource types: `pods` → `pod`, `rs` → `replicaset`; `node`/`nodes` stands for every node type. */
export function resourceTypes(t: string): string[] {
  if (t === 'node' || t === 'nodes') return [...NODE_TYPES];
  if (t === 'pods') return ['pod'];
  if (t === 'rs' || t === 'replicasets') return ['replicaset'];
  if (t === 'events') return ['event'];
  return [t];
}

export function oneType(t: string): string {
  const ts = resourceTypes(t);
  if (ts.length !== 1) throw new UsageError(`'${t}' names several types; give one of ${ts.join(', ')}`);
  return ts[0]!;
}
