import type { Logger } from 'pino';
import { ALIAS_VALUE, aliasKey, aliasPrefix, DNS_PREFIX, nameUnder, parseDnsKey, resourceKey, resourcePrefix, unscheduledKey } from '../agent/keys.js';
import { readNodeStates, type NodeState } from '../agent/node.js';
import type { StateLayer } from '../agent/state.js';
import { alreadyExists, invalid, notFound, Problem } from './problem.js';
import { checkPatchBody, patched, podStateOnRead, schemaFor } from './resources.js';
import { isNodeType, resource, type Resource, type Role } from './schemas.js';

/** Attempts of a PATCH whose guarded write lost to a concurrent change, with a short random back-off between them. */
const PATCH_ATTEMPTS = 32;
const backoff = (attempt: number) => new Promise((r) => setTimeout(r, Math.random() * Math.min(2 + attempt * 2, 25)));

/** What `GET /dns_names` lists: every A record and alias etcd holds, names fully qualified with their trailing dot. */
export interface DnsNames {
  records: { name: string; address: string }[];
  aliases: { from: string; to: string }[];
}

export interface Stored {
  resource: Resource;
  modRevision: number;
}

/** A list as `GET /resources/:type` answers it: derived states applied, sorted by name, the state of etcd at `revision`. */
export interface Listed {
  resources: Resource[];
  revision: number;
}

/**
 * Node states of one request, read from the heartbeats (one range per role),
 * so a list of many pods costs one read per node type.
 */
class Heartbeats {
  private readonly roles = new Map<Role, Promise<(name: string) => NodeState>>();

  constructor(private readonly state: StateLayer) {}

  of(role: Role): Promise<(name: string) => NodeState> {
    let p = this.roles.get(role);
    if (!p) {
      p = readNodeStates(this.state, role);
      this.roles.set(role, p);
    }
    return p;
  }
}

/** The node whose heartbeats a resource's state on read comes from: a node's own, a live pod's worker's. */
function derivedFrom(r: Resource): { role: Role; name: string } | undefined {
  if (isNodeType(r.type)) return { role: r.type.slice('node.'.length) as Role, name: r.name };
  if (r.type === 'pod' && r.metadata.workedBy) return { role: 'worker', name: r.metadata.workedBy };
  return undefined;
}

/** A resource with its state derived on read from that node's state. */
function withDerived(r: Resource, node: NodeState): Resource {
  if (isNodeType(r.type)) return { ...r, state: node };
  const state = podStateOnRead(r.state, node);
  return state === r.state ? r : { ...r, state };
}

/** The resources and aliases of the REST API, in etcd, through the state layer. */
export class ResourceStore {
  /**
   * Creates and PATCHes of one key from this process wait for each other; the
   * revision guards cover other processes. (A create must know that a commit
   * it finds is not another request's of this node: see `create`.)
   */
  private readonly writing = new Map<string, Promise<unknown>>();
  /** The revision of this node's last write of a resource: what a list or a new stream must already show (read-your-writes). */
  private lastWrite = 0;
  /** The revision up to which this node has seen every resource change (its feed); see `create`. */
  private seenUpTo: () => number = () => 0;

  constructor(
    private readonly state: StateLayer,
    private readonly log: Logger,
  ) {}

  /** Tells the store how far this node's view of the resources has come (the feed's revision). */
  follows(seen: () => number): void {
    this.seenUpTo = seen;
  }

  /** Creates a resource if absent (a pod with its unscheduled marker, in one transaction). */
  create(r: Resource): Promise<number> {
    const key = resourceKey(r.type, r.name);
    return this.inLane(key, () => this.createNow(key, r));
  }

  private async createNow(key: string, r: Resource): Promise<number> {
    const value = JSON.stringify(r);
    const then = [{ put: key, value }];
    if (r.type === 'pod') then.push({ put: unscheduledKey(r.name), value });
    // Every resource created at or before this revision was there before this request.
    const before = Math.max(this.lastWrite, this.seenUpTo());
    const res = await this.state.txn({ if: [{ key, createRevision: 0 }], then });
    if (!res.succeeded) {
      // The etcd client retries a call whose answer was lost (a leader change): its first try may have
      // committed, and the retry then fails the guard. That commit is this request's own: made after the
      // request began, never changed since, and exactly what it wrote.
      const kv = await this.state.get(key);
      if (!kv || kv.value !== value || kv.createRevision <= before || kv.modRevision !== kv.createRevision) throw alreadyExists(r.type, r.name);
      this.log.info({ key, revision: kv.createRevision }, 'a retried create found its own first try committed');
      this.wrote(kv.createRevision);
      return kv.createRevision;
    }
    this.wrote(res.revision);
    return res.revision;
  }

  private wrote(revision: number): void {
    this.lastWrite = Math.max(this.lastWrite, revision);
  }

  /** The revision of the last resource this node has created, changed or deleted (0 before any). */
  get written(): number {
    return this.lastWrite;
  }

  /** Decodes a stored resource with its type's schema; undefined (and a warning) for one that does not parse. */
  parseStored(type: string, key: string, value: string): Resource | undefined {
    let json: unknown;
    try {
      json = JSON.parse(value);
    } catch {
      this.log.warn({ key }, 'stored resource is not JSON; skipped');
      return undefined;
    }
    const parsed = schemaFor(type).safeParse(json);
    if (!parsed.success) {
      this.log.warn({ key, issue: invalid(parsed.error).detail }, 'stored resource is invalid; skipped');
      return undefined;
    }
    return parsed.data;
  }

  /** Applies the states derived on read: nodes from their heartbeats, live pods from their worker's. */
  private async onRead(r: Resource, hb: Heartbeats): Promise<Resource> {
    const from = derivedFrom(r);
    return from ? withDerived(r, (await hb.of(from.role))(from.name)) : r;
  }

  /** Applies the states derived on read to decoded resources, with the heartbeats read at most once per role (a watch stream takes one per batch). */
  deriver(): (r: Resource) => Promise<Resource> {
    const hb = new Heartbeats(this.state);
    return (r) => this.onRead(r, hb);
  }

  async get(type: string, name: string): Promise<Stored> {
    const kv = await this.state.get(resourceKey(type, name));
    if (!kv) throw notFound(type, name);
    const r = this.parseStored(type, kv.key, kv.value);
    if (!r) throw new Problem('resource-invalid', `the stored resource '${name}' of type '${type}' is invalid; see the agent's log`);
    return { resource: await this.onRead(r, new Heartbeats(this.state)), modRevision: kv.modRevision };
  }

  /**
   * Every valid resource of a type read from etcd, sorted by name; invalid
   * stored entries are logged and skipped. The lists come from the API's
   * feed (list.ts); this is their way before the feed has synced or caught up.
   */
  async list(type: string): Promise<Listed> {
    const prefix = resourcePrefix(type);
    const { kvs, revision } = await this.state.list(prefix);
    const hb = new Heartbeats(this.state);
    const out: Promise<Resource>[] = [];
    for (const kv of kvs) {
      if (nameUnder(kv.key, prefix) === undefined) continue;
      const r = this.parseStored(type, kv.key, kv.value);
      if (r) out.push(this.onRead(r, hb));
    }
    return { resources: await Promise.all(out), revision };
  }

  /** Resolves once etcd answers a read (of no key); rejects as the read does when etcd is away. */
  async etcdAnswers(): Promise<void> {
    await this.state.revision();
  }

  /** Applies the states derived on read to decoded resources, the heartbeats read once per role. */
  async derive(resources: Resource[]): Promise<Resource[]> {
    const hb = new Heartbeats(this.state);
    const roles = new Set<Role>();
    for (const r of resources) {
      const from = derivedFrom(r);
      if (from) roles.add(from.role);
    }
    const states = new Map(await Promise.all([...roles].map(async (role) => [role, await hb.of(role)] as const)));
    return resources.map((r) => {
      const from = derivedFrom(r);
      return from ? withDerived(r, states.get(from.role)!(from.name)) : r;
    });
  }

  /**
   * Shallow-merges a patch, guarded by the mod revision it read: a concurrent
   * change makes it read again and merge again, so no update is lost.
   * `ifMatch` (a mod revision) makes a change since that read a 412 instead.
   */
  async patch(type: string, name: string, body: unknown, ifMatch?: number | '*'): Promise<Stored> {
    const key = resourceKey(type, name);
    return this.inLane(key, () => this.patchNow(key, type, name, body, ifMatch));
  }

  /** Runs `fn` after every earlier write of `key` from this process has settled. */
  private inLane<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.writing.get(key) ?? Promise.resolve();
    const mine = before.then(fn);
    const settled = mine.catch(() => undefined);
    this.writing.set(key, settled);
    void settled.then(() => {
      if (this.writing.get(key) === settled) this.writing.delete(key);
    });
    return mine;
  }

  private async patchNow(key: string, type: string, name: string, body: unknown, ifMatch?: number | '*'): Promise<Stored> {
    checkPatchBody(type, body);
    for (let attempt = 0; attempt < PATCH_ATTEMPTS; attempt++) {
      const kv = await this.state.get(key);
      if (!kv) throw notFound(type, name);
      if (typeof ifMatch === 'number' && kv.modRevision !== ifMatch) {
        throw new Problem('precondition-failed', `the resource '${name}' of type '${type}' is at revision ${kv.modRevision}, not ${ifMatch}`);
      }
      let old: Resource & Record<string, unknown>;
      try {
        const json = JSON.parse(kv.value) as Record<string, unknown>;
        old = { ...json, ...resource.parse(json) };
      } catch {
        throw new Problem('resource-invalid', `the stored resource '${name}' of type '${type}' is invalid; see the agent's log`);
      }
      const next = patched(old, body);
      const res = await this.state.txn({
        if: [{ key, modRevision: kv.modRevision }],
        then: [{ put: key, value: JSON.stringify(next) }],
      });
      if (res.succeeded) {
        this.wrote(res.revision);
        return { resource: next, modRevision: res.revision };
      }
      await backoff(attempt);
    }
    throw new Problem('resource-conflict', `the resource '${name}' of type '${type}' kept changing while it was patched; try again`);
  }

  /**
   * Deletes a resource if it exists (a pod with its unscheduled marker, in
   * one transaction). A deleted pod's worker takes it out of DNS at once and
   * stops it after its grace (SPEC §11); `now` gives it none: the pod's
   * stored grace is set to 0 first, in a write the delete is guarded on, so
   * its worker has seen it when the delete comes.
   */
  async remove(type: string, name: string, opts: { now?: boolean } = {}): Promise<void> {
    const key = resourceKey(type, name);
    const then = [{ delete: key }];
    if (type === 'pod') then.push({ delete: unscheduledKey(name) });
    let guard: { key: string; createRevision: number; op: '>' } | { key: string; modRevision: number } = { key, createRevision: 0, op: '>' };
    if (type === 'pod' && opts.now) {
      for (let attempt = 0; ; attempt++) {
        const kv = await this.state.get(key);
        if (!kv) throw notFound(type, name);
        let value: { spec?: Record<string, unknown> };
        try {
          value = JSON.parse(kv.value) as typeof value;
        } catch {
          break; // not a pod any worker runs: delete it as it is
        }
        const res = await this.state.txn({
          if: [{ key, modRevision: kv.modRevision }],
          then: [{ put: key, value: JSON.stringify({ ...value, spec: { ...value.spec, terminationGracePeriodSeconds: 0 } }) }],
        });
        if (res.succeeded) {
          this.wrote(res.revision);
          guard = { key, modRevision: res.revision };
          break;
        }
        if (attempt >= PATCH_ATTEMPTS) throw new Problem('resource-conflict', `the pod '${name}' kept changing while it was deleted; try again`);
        await backoff(attempt);
      }
    }
    const res = await this.state.txn({ if: [guard], then });
    // Changed between the two writes (by its worker, say): it goes all the same, with the grace it now has.
    if (!res.succeeded && 'modRevision' in guard) return this.remove(type, name);
    if (!res.succeeded) throw notFound(type, name);
    this.wrote(res.revision);
  }

  // ---- aliases ------------------------------------------------------------------

  /** The alias targets of a name, fully qualified with their trailing dot, sorted. */
  async aliasTargets(from: string): Promise<string[]> {
    const prefix = aliasPrefix(from);
    const { kvs } = await this.state.list(prefix);
    return kvs
      .filter((kv) => kv.value === ALIAS_VALUE)
      .flatMap((kv) => nameUnder(kv.key, prefix) ?? [])
      .sort();
  }

  /** Every A record and alias under `dns/`, sorted by name (the keys' order), at one revision. */
  async dnsNames(): Promise<DnsNames> {
    const { kvs } = await this.state.list(DNS_PREFIX);
    const out: DnsNames = { records: [], aliases: [] };
    for (const kv of kvs) {
      const k = parseDnsKey(kv.key);
      if (k?.kind === 'record') out.records.push({ name: k.name, address: kv.value });
      else if (k?.kind === 'alias' && kv.value === ALIAS_VALUE) out.aliases.push({ from: k.from, to: k.to });
    }
    return out;
  }

  async aliasExists(from: string, to: string): Promise<boolean> {
    return (await this.state.get(aliasKey(from, to))) !== undefined;
  }

  /** Idempotent; an API-made alias has no lease and lasts until deleted. */
  async putAlias(from: string, to: string): Promise<void> {
    await this.state.put(aliasKey(from, to), ALIAS_VALUE);
  }

  async deleteAlias(from: string, to: string): Promise<boolean> {
    const key = aliasKey(from, to);
    const res = await this.state.txn({ if: [{ key, createRevision: 0, op: '>' }], then: [{ delete: key }] });
    return res.succeeded;
  }
}
