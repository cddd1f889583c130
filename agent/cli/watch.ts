import { setTimeout as sleep } from 'node:timers/promises';
import { SseReader, type SseMessage } from '../../api/sse.js';
import { ApiClient, ApiError } from './http.js';
import type { Io } from './io.js';
import { data, resourceTable } from './table.js';

/**
 * `kith list TYPE -w` and `kith get TYPE NAME -w` (SPEC §12): the table once,
 * then a line per change, from the API's watch stream (api/README.md,
 * "Watch"), resumed with Last-Event-ID when the stream drops, until Ctrl-C.
 */

/** Attempts in a row that get no event before the command gives up. */
const MAX_ATTEMPTS = 10;
const backoff = (attempt: number): number => Math.min(200 * 2 ** attempt, 5000);

type Shown = { name?: string; type?: string };

/** How a watch shows what it follows; the default is the type's table, by name, with a line per put and delete. */
export interface WatchView {
  /** Only what passes is shown. */
  filter?(r: Shown): boolean;
  /** The initial list's order. */
  sort?(a: Shown, b: Shown): number;
  /** The table of a list (the header and a row each). */
  table?(list: Shown[]): string;
  /** A line for a put (deletes are not shown when this is given: events expire, they are not news). */
  line?(r: Shown): string;
}

const byName = (a: Shown, b: Shown): number => String(a.name ?? '').localeCompare(String(b.name ?? ''));

/** One change as a line: the event, then the resource's row of its table. */
function changeLine(io: Io, type: string, event: 'put' | 'delete', r: Shown): string {
  if (io.format !== 'table') {
    const doc = event === 'put' ? { event, resource: r } : { event, deleted: r };
    return io.format === 'json' ? `${JSON.stringify(doc)}\n` : `---\n${data(doc, 'yaml')}`;
  }
  const row = event === 'put' ? resourceTable(type, [r]).split('\n')[1]! : String(r.name ?? '');
  return `${event.toUpperCase().padEnd(8)}${row}\n`;
}

function showList(io: Io, type: string, list: Shown[], view: WatchView): void {
  list.sort(view.sort ?? byName);
  if (io.format === 'json') io.out(`${JSON.stringify(list)}\n`);
  else if (io.format === 'yaml') io.out(`---\n${data(list, 'yaml')}`);
  else if (list.length === 0) io.err('No resources found.\n');
  else io.out(view.table ? view.table(list) : resourceTable(type, list));
}

/** Follows a type, or one resource of it, until SIGINT or SIGTERM (exit 0) or the stream cannot be had again (exit 1). */
export async function watchResources(io: Io, type: string, name?: string, view: WatchView = {}): Promise<number> {
  const path = `${name === undefined ? ApiClient.path('resources', type) : ApiClient.path('resources', type, name)}?watch=1`;
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let lastId: string | undefined;
  /** The resources of an initial list until its `synced`; undefined while changes are followed. */
  let listing: Map<string, Shown> | undefined;
  let failures = 0;
  let why = '';
  /** Names that passed the filter, while they exist. */
  const passed = new Set<string>();

  const handle = (m: SseMessage): void => {
    if (m.id !== undefined) lastId = m.id;
    if (m.event === 'reset') {
      io.err(`kith: the changes since revision ${lastId ?? '?'} are gone from etcd; listing again\n`);
      listing = new Map();
      return;
    }
    if (m.event === 'synced') {
      if (listing) showList(io, type, [...listing.values()], view);
      listing = undefined;
      return;
    }
    if (m.event !== 'put' && m.event !== 'delete') return;
    const r = JSON.parse(m.data) as Shown;
    if (view.filter) {
      // A delete is shown only of what was shown: the filter sees puts only.
      if (m.event === 'put' ? !view.filter(r) : !passed.has(String(r.name))) return;
      if (m.event === 'put') passed.add(String(r.name));
      else passed.delete(String(r.name));
    }
    // A list cut short is completed by the changes after its last id.
    if (listing && m.event === 'put') listing.set(String(r.name), r);
    else if (listing) listing.delete(String(r.name));
    else if (view.line && io.format === 'table') {
      if (m.event === 'put') io.out(view.line(r));
    } else io.out(changeLine(io, type, m.event, r));
  };

  try {
    while (!stop.signal.aborted) {
      if (failures >= MAX_ATTEMPTS) {
        io.err(`kith: lost the watch stream and could not resume it after ${MAX_ATTEMPTS} attempts: ${why}\n`);
        return 1;
      }
      if (failures > 0) {
        try {
          await sleep(backoff(failures - 1), undefined, { signal: stop.signal });
        } catch {
          break;
        }
      }
      if (lastId === undefined) listing = new Map();
      try {
        const res = await io.api.open(path, { accept: 'text/event-stream', ...(lastId === undefined ? {} : { 'last-event-id': lastId }) }, stop.signal);
        const reader = new SseReader();
        const decoder = new TextDecoder();
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          const got = reader.push(decoder.decode(chunk, { stream: true }));
          if (got.length > 0) failures = 0;
          for (const m of got) handle(m);
        }
        why = 'the API ended it';
      } catch (err) {
        if (stop.signal.aborted) break;
        // A refused token or a missing route does not get better by asking again.
        if (err instanceof ApiError && err.status >= 400 && err.status < 500) throw err;
        why = (err as Error).message.split('\n')[0]!;
      }
      if (stop.signal.aborted) break;
      failures++;
      io.err(`kith: watch stream lost (${why}); resuming${lastId === undefined ? '' : ` after revision ${lastId}`}\n`);
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
