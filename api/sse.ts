/**
 * The wire format of a watch stream (README.md, "Watch"): server-sent
 * events, one `put`, `delete`, `synced` or `reset` each, as text.
 */

export type WatchEvent = 'put' | 'delete' | 'synced' | 'reset';

/** One event; `data` is JSON on one line, `id` the revision a client resumes after. */
export function sseEvent(event: WatchEvent, data: string, id?: number): string {
  return `${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${data}\n\n`;
}

/** The comment line that keeps a quiet stream (and the proxies on its way) open. */
export const HEARTBEAT = ':\n';

/**
 * Where a stream resumes: `Last-Event-ID` (what a reconnecting EventSource
 * sends) before `?since=`, as a revision; undefined for neither; 'bad' when
 * one is given but is no revision.
 */
export function resumeFrom(lastEventId: string, since: unknown): number | undefined | 'bad' {
  const given = lastEventId.trim() !== '' ? lastEventId.trim() : typeof since === 'string' ? since.trim() : undefined;
  if (given === undefined) return undefined;
  return /^\d{1,15}$/.test(given) ? Number(given) : 'bad';
}

/**
 * The ids of one batch of changes: only the last change of each revision
 * carries it, so a client cut off inside a revision resumes before it,
 * never after a change it has not seen.
 */
export function idsOf(revisions: number[]): (number | undefined)[] {
  return revisions.map((r, i) => (revisions[i + 1] === r ? undefined : r));
}

/** One event as a client reads it; `id` only when the event carried one. */
export interface SseMessage {
  event: string;
  data: string;
  id?: string;
}

/** Reads server-sent events from text as it arrives (the client side of the format, for the CLI). */
export class SseReader {
  private buf = '';
  private event = '';
  private data: string[] = [];
  private id: string | undefined;

  /** The events completed by this piece of text. */
  push(text: string): SseMessage[] {
    this.buf += text;
    const out: SseMessage[] = [];
    for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, i).replace(/\r$/, '');
      this.buf = this.buf.slice(i + 1);
      if (line === '') {
        if (this.data.length > 0 || this.id !== undefined) out.push({ event: this.event || 'message', data: this.data.join('\n'), ...(this.id === undefined ? {} : { id: this.id }) });
        this.event = '';
        this.data = [];
        this.id = undefined;
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') this.event = value;
      else if (field === 'data') this.data.push(value);
      else if (field === 'id') this.id = value;
    }
    return out;
  }
}
