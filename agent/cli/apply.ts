import { parseAllDocuments } from 'yaml';
import { podSpec } from '../../api/schemas.js';

/** The pure part of `kith apply`: a file's text to the resources it holds. */

export class DocumentError extends Error {}

export interface Manifest {
  name: string;
  type: string;
  [k: string]: unknown;
}

/**
 * JSON or YAML, one document or several (`---`); a document may also be a
 * list of resources. Every resource needs a string `name` and `type`.
 */
export function manifests(text: string, source: string): Manifest[] {
  const docs = parseAllDocuments(text, { prettyErrors: false });
  const out: Manifest[] = [];
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    const err = doc.errors[0];
    if (err) throw new DocumentError(`${source}: document ${i + 1}: ${err.message.split('\n')[0]}`);
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return;
    const items = Array.isArray(value) ? value : [value];
    items.forEach((item, j) => {
      const where = Array.isArray(value) ? `document ${i + 1}, item ${j + 1}` : `document ${i + 1}`;
      if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new DocumentError(`${source}: ${where}: expected a resource object`);
      const r = item as Record<string, unknown>;
      if (typeof r.name !== 'string' || typeof r.type !== 'string') throw new DocumentError(`${source}: ${where}: expected 'name' and 'type'`);
      // A new pod starts as `created`; a manifest need not say so.
      if (r.type === 'pod' && r.state === undefined) out.push({ ...r, state: 'created' } as unknown as Manifest);
      else out.push(r as Manifest);
    });
  });
  return out;
}

/** JSON with object keys sorted, to compare resources whatever their key order. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Whether a manifest describes the pod already stored: same spec, and its metadata already there. */
export function samePod(m: Manifest, stored: unknown): boolean {
  const s = (stored ?? {}) as { spec?: unknown; metadata?: Record<string, unknown> };
  const mine = podSpec.safeParse(m.spec);
  const theirs = podSpec.safeParse(s.spec);
  if (!mine.success || !theirs.success || canonical(mine.data) !== canonical(theirs.data)) return false;
  // Keys kith writes itself are not what the user asks for: an export of a running pod still matches.
  return Object.entries(withoutSystemKeys(m.metadata)).every(([k, v]) => s.metadata?.[k] === v);
}

/** Metadata without the keys kith writes (an exported pod applied anew starts from scratch). */
export function withoutSystemKeys(metadata: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((metadata ?? {}) as Record<string, string>)) {
    // What kith's own parts write on a pod: the scheduler, the worker (readiness and restarts, SPEC §10) and the reaper.
    if (!['scheduledBy', 'workedBy', 'reapedBy', 'error', 'ready', 'readySince', 'ip', 'restarts'].includes(k) && !k.startsWith('restarts.')) out[k] = v;
  }
  return out;
}
