import type { ZodError } from 'zod';

/**
 * Problem details (RFC 7807) of the REST API. The first eight are the
 * reference's, with its exact titles; the others name what the reference
 * answered outside problem details (body decoding, routing) or did not do.
 */
export const PROBLEMS = {
  'internal-server-error': [500, 'Something went badly wrong, check the logs.'],
  'resource-already-exists': [409, 'The given resource already exists.'],
  'resource-invalid': [422, 'The given resource is invalid.'],
  'resource-not-found': [404, 'The given resource does not exist.'],
  'modification-not-allowed': [422, 'The given change is not permitted.'],
  'invalid-dns-namespace': [422, 'The given DNS namespace is invalid'],
  'invalid-dns-label': [422, 'The given DNS label is invalid'],
  'dns-alias-not-found': [404, 'The given DNS alias does not exist.'],
  'malformed-request': [400, 'The request could not be decoded.'],
  'unsupported-media-type': [415, 'The request body must be JSON.'],
  'payload-too-large': [413, 'The request body is too large.'],
  'route-not-found': [404, 'There is no such route.'],
  'method-not-allowed': [405, 'The method is not allowed on this route.'],
  'resource-conflict': [409, 'The resource was changed concurrently.'],
  'precondition-failed': [412, 'The resource has changed since it was read.'],
  'not-ready': [503, 'The API is not ready to serve requests.'],
  'etcd-unavailable': [503, 'The cluster state (etcd) is unavailable; try again shortly.'],
  unauthorized: [401, 'A valid API token is needed.'],
  forbidden: [403, "The token's role does not allow this."],
  'token-already-exists': [409, 'The given token already exists.'],
  'token-not-found': [404, 'The given token does not exist.'],
  'container-not-found': [404, 'The pod has no such container.'],
  'logs-not-found': [404, 'The log asked for is not kept.'],
  'pod-not-placed': [409, 'The pod has not been placed on a worker.'],
  'worker-unavailable': [503, "The pod's worker cannot serve its logs now."],
} as const satisfies Record<string, readonly [number, string]>;

export type ProblemType = keyof typeof PROBLEMS;

export interface ProblemBody {
  type: ProblemType;
  title: string;
  detail: string;
  status: number;
}

/** An error that reaches the client as a problem detail. */
export class Problem extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(
    readonly type: ProblemType,
    readonly detail: string,
    headers: Record<string, string> = {},
  ) {
    super(detail);
    this.status = PROBLEMS[type][0];
    this.headers = headers;
  }

  body(): ProblemBody {
    return { type: this.type, title: PROBLEMS[this.type][1], detail: this.detail, status: this.status };
  }
}

// ---- the reference's details, to the byte ---------------------------------------

export const alreadyExists = (type: string, name: string) =>
  new Problem('resource-already-exists', `The resource '${name}' of type '${type}' already exists.  If you want to replace it, delete it first.`);

export const notFound = (type: string, name: string) =>
  new Problem('resource-not-found', `The resource '${name}' of type '${type}' does not exist.`);

export const invalidNamespace = (ns: string) =>
  new Problem('invalid-dns-namespace', `'${ns}' is not a valid DNS namespace: a namespace must be a valid DNS label and not clash with any builtins.`);

export const invalidLabel = (label: string) =>
  new Problem(
    'invalid-dns-label',
    `'${label}' is not a valid DNS label: a label must be lowercase; at most 63 characters long; consist only of ASCII letters, numbers, and hyphens; start with a letter; and not end with a hyphen.`,
  );

export const aliasNotFound = (fromNs: string, fromHost: string, toNs: string, toHost: string) =>
  new Problem('dns-alias-not-found', `The DNS alias '${fromNs}/${fromHost}' -> '${toNs}/${toHost}' does not exist.`);

/** `spec.containers[0].image` for a zod issue path. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out === '' ? 'body' : out;
}

/** A 422 `resource-invalid` naming each failing field. */
export function invalid(err: ZodError, prefix: readonly PropertyKey[] = []): Problem {
  const details = err.issues.slice(0, 5).map((i) => `${fieldPath([...prefix, ...i.path])}: ${i.message}`);
  return new Problem('resource-invalid', details.join('; '));
}
