import { stringify } from 'yaml';
import { EVENT_TYPE } from '../keys.js';
import { ApiClient, ApiError } from './http.js';
import type { Io, Values } from './io.js';
import { UsageError } from './run.js';
import { data, str, table } from './table.js';
import { resourceTypes } from './types.js';
import { watchResources } from './watch.js';

/**
 * `kith events [TYPE/NAME] [-w]` and `kith describe TYPE NAME` (SPEC §12):
 * the events the agents recorded (agent/events.ts) from `GET
 * /resources/event`, oldest first, and one resource as a person reads it, in
 * the manner of `kubectl describe`: what it is, its state and the events
 * that explain it.
 */

const seg = ApiClient.path;

interface EventRow {
  name?: string;
  spec?: { time?: string; type?: string; object?: string; reason?: string; message?: string; node?: string; count?: number; firstTime?: string };
}

type Res = { name?: string; type?: string; state?: string; metadata?: Record<string, string>; spec?: Record<string, unknown>; status?: Record<string, unknown> };


/** `12s`, `5m`, `3h`, `2d`: how long ago an ISO time was. */
export function age(iso: string | undefined, now = Date.now()): string {
  const t = iso === undefined ? NaN : Date.parse(iso);
  if (Number.isNaN(t)) return '?';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

const byTime = (a: EventRow, b: EventRow): number => str(a.spec?.time).localeCompare(str(b.spec?.time)) || str(a.name).localeCompare(str(b.name));

/**
 * What `TYPE/NAME` of `kith events` matches: the object of an event. `node/NAME`
 * (or `nodes/NAME`) matches the node of every role.
 */
export function objectMatcher(target: string | undefined): (object: string | undefined) => boolean {
  if (target === undefined) return () => true;
  const slash = target.indexOf('/');
  if (slash <= 0 || slash === target.length - 1) throw new UsageError(`'${target}': expected TYPE/NAME, e.g. pod/web-1`);
  const name = target.slice(slash + 1);
  const objects = new Set(resourceTypes(target.slice(0, slash)).map((t) => `${t}/${name}`));
  return (o) => o !== undefined && objects.has(o);
}

export function eventTable(events: EventRow[], withObject = true, now = Date.now()): string {
  const head = ['LAST SEEN', 'TYPE', 'REASON', ...(withObject ? ['OBJECT'] : []), 'COUNT', 'FROM', 'MESSAGE'];
  return table(
    head,
    events.map((e) => [age(e.spec?.time, now), str(e.spec?.type), str(e.spec?.reason), ...(withObject ? [str(e.spec?.object)] : []), str(e.spec?.count ?? 1), str(e.spec?.node), str(e.spec?.message)]),
  );
}

async function listEvents(io: Io, match: (object: string | undefined) => boolean): Promise<EventRow[]> {
  const { body } = await io.api.request('GET', seg('resources', EVENT_TYPE));
  return (body as EventRow[]).filter((e) => match(e.spec?.object)).sort(byTime);
}

export const EVENTS_ARGS = '[TYPE/NAME] [-w]';
export const EVENTS_OPTIONS = { watch: { type: 'boolean', short: 'w' } } as const;

export async function runEvents(io: Io, v: Values, pos: string[]): Promise<number> {
  if (pos.length > 1) throw new UsageError(`events takes at most one TYPE/NAME, got '${pos.join(' ')}'`);
  const match = objectMatcher(pos[0]);
  if (v.watch) {
    return watchResources(io, EVENT_TYPE, undefined, {
      filter: (r) => match((r as EventRow).spec?.object),
      sort: (a, b) => byTime(a as EventRow, b as EventRow),
      table: (list) => eventTable(list as EventRow[]),
      // A line per event as it comes: the same columns, no header.
      line: (r) => eventTable([r as EventRow]).split('\n')[1]! + '\n',
    });
  }
  const events = await listEvents(io, match);
  if (io.format !== 'table') io.out(data(events, io.format));
  else if (events.length === 0) io.err(pos[0] ? `No events of ${pos[0]}.\n` : 'No events.\n');
  else io.out(eventTable(events));
  return 0;
}

// ---- describe --------------------------------------------------------------------------

export const DESCRIBE_ARGS = 'TYPE NAME';

/** `Label:  value` lines, aligned. */
function fields(rows: [string, string | undefined][]): string {
  const shown = rows.filter(([, v]) => v !== undefined && v !== '');
  const w = Math.max(0, ...shown.map(([k]) => k.length + 1));
  return shown.map(([k, v]) => `${`${k}:`.padEnd(w)}  ${v}\n`).join('');
}

const indent = (text: string, by = '  '): string => text.split('\n').filter((l) => l !== '').map((l) => `${by}${l}\n`).join('');

/** The lines of what a resource is: the fields that matter for its type, then its metadata and spec. */
export function describeResource(r: Res): string {
  const md = r.metadata ?? {};
  const rows: [string, string | undefined][] = [
    ['Name', r.name],
    ['Type', r.type],
    ['State', r.state],
  ];
  if (r.type === 'pod') {
    const containers = (r.spec?.containers as { name?: string; image?: string }[] | undefined) ?? [];
    rows.push(
      ['Ready', r.state === 'running' ? (md.ready === 'false' ? 'no' : 'yes') + (md.readySince ? ` (since ${md.readySince})` : '') : undefined],
      ['Restarts', md.restarts ?? '0'],
      ['Worker', md.workedBy],
      ['IP', md.ip],
      ['ReplicaSet', md.replicaSet],
      ['Error', md.error],
      ['Containers', containers.map((c) => `${str(c.name)} (${str(c.image)})${md[`restarts.${c.name}`] ? `, ${md[`restarts.${c.name}`]} restarts` : ''}`).join('; ')],
    );
  } else if (r.type === 'replicaset') {
    const s = r.status ?? {};
    rows.push(
      ['Replicas', `${str(r.spec?.replicas)} desired, ${str(s.live ?? 0)} live, ${str(s.running ?? 0)} running, ${str(s.ready ?? 0)} ready, ${str(s.updated ?? 0)} updated, ${str(s.available ?? 0)} available`],
      ['Rollout', s.rollout === undefined ? undefined : `${str(s.rollout)}${s.progressAt ? ` (last progress ${str(s.progressAt)})` : ''}`],
    );
  } else if (r.type?.startsWith('node.')) {
    const limits = r.spec?.limits as { cpu?: unknown; memory?: unknown } | undefined;
    rows.push(
      ['Address', str(r.spec?.address)],
      ['Host address', str(r.spec?.hostAddress)],
      ['Subnet', str(r.spec?.subnet)],
      ['Capacity', limits ? `cpu ${str(limits.cpu)}, memory ${str(limits.memory)} MiB` : undefined],
    );
  }
  let out = fields(rows);
  const shownMeta = Object.entries(md).filter(([k]) => !['ready', 'readySince', 'restarts', 'workedBy', 'ip', 'replicaSet', 'error'].includes(k) && !k.startsWith('restarts.'));
  if (shownMeta.length) out += `Metadata:\n${indent(shownMeta.map(([k, v]) => `${k}: ${v}`).join('\n'))}`;
  if (r.spec && Object.keys(r.spec).length) out += `Spec:\n${indent(stringify(r.spec))}`;
  return out;
}

export async function runDescribe(io: Io, _v: Values, pos: string[]): Promise<number> {
  if (pos.length !== 2) throw new UsageError(`expected TYPE NAME, got ${pos.length === 0 ? 'nothing' : `'${pos.join(' ')}'`}`);
  const [t, name] = pos as [string, string];
  // `node` is every node type: the node of each role this host runs.
  const types = resourceTypes(t);
  const found: Res[] = [];
  for (const type of types) {
    try {
      const { body } = await io.api.request('GET', seg('resources', type, name));
      found.push(body as Res);
    } catch (err) {
      // One missing node role is not a failure; a missing resource of the one type asked is.
      if (!(err instanceof ApiError && err.status === 404 && types.length > 1)) throw err;
    }
  }
  if (found.length === 0) throw new ApiError(`there is no node named '${name}'`, 404);
  const objects = new Set(found.map((r) => `${r.type}/${r.name}`));
  const events = await listEvents(io, (o) => o !== undefined && objects.has(o));
  if (io.format !== 'table') {
    io.out(data(found.length === 1 ? { resource: found[0], events } : { resources: found, events }, io.format));
    return 0;
  }
  io.out(found.map(describeResource).join('\n'));
  io.out(`Events:${events.length === 0 ? ' <none>\n' : `\n${indent(eventTable(events, found.length > 1))}`}`);
  return 0;
}
