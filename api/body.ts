import type { Context } from 'koa';
import { Problem } from './problem.js';

/** Largest accepted body; a pod is stored twice in one etcd request (limit 1.5 MiB). */
export const BODY_LIMIT = 256 * 1024;
/** Deepest accepted nesting of a JSON body, so nothing downstream recurses without bound. */
export const MAX_DEPTH = 64;

const JSON_TYPE = /^application\/([a-z0-9.+-]+\+)?json$/;

/** Reads and decodes a JSON request body; every failure is a Problem (415, 413, 400, 422). */
export async function readJson(ctx: Context, limit = BODY_LIMIT): Promise<unknown> {
  const contentType = ctx.get('content-type');
  const media = contentType.split(';')[0]!.trim().toLowerCase();
  if (!JSON_TYPE.test(media)) {
    throw new Problem('unsupported-media-type', contentType === '' ? 'Content-Type must be application/json; none was given' : `Content-Type must be application/json, not '${contentType.slice(0, 100)}'`);
  }
  const encoding = ctx.get('content-encoding').trim().toLowerCase();
  if (encoding !== '' && encoding !== 'identity') {
    throw new Problem('unsupported-media-type', `Content-Encoding '${encoding.slice(0, 100)}' is not supported; send the body uncompressed`);
  }
  const tooLarge = () => {
    ctx.set('Connection', 'close');
    return new Problem('payload-too-large', `the body must be at most ${limit} bytes`);
  };
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of ctx.req) {
      size += (chunk as Buffer).length;
      if (size > limit) throw tooLarge();
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof Problem) throw err;
    throw new Problem('malformed-request', `the body could not be read: ${(err as Error).message}`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new Problem('malformed-request', 'the body is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Problem('malformed-request', `the body is not valid JSON: ${(err as Error).message.slice(0, 200)}`);
  }
  if (depth(value) > MAX_DEPTH) throw new Problem('resource-invalid', `body: nests deeper than ${MAX_DEPTH} levels`);
  return value;
}

/** Nesting depth of a JSON value, without recursion. */
export function depth(value: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (d > max) max = d;
    if (d > MAX_DEPTH) return d;
    if (typeof v === 'object' && v !== null) for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}
