import { DNS_LABEL } from './schemas.js';

/**
 * DNS namespaces of the cluster zone (SPEC §4, reference §6.2): a name is
 * `<host>.<namespace>.<domain>.`. Built-in namespaces are filled by kith
 * itself; any other valid label is a custom namespace of REST-made aliases.
 */
export const BUILTIN_NAMESPACES = ['api.node', 'worker.node', 'scheduler.node', 'reaper.node', 'pod', 'special', 'replicaset'] as const;

export type Namespace = { name: string; builtin: boolean };

export const isDnsLabel = (s: string): boolean => DNS_LABEL.test(s);

/** Parses a namespace string, or undefined when it is neither built-in nor a valid custom one. */
export function parseNamespace(ns: string): Namespace | undefined {
  if ((BUILTIN_NAMESPACES as readonly string[]).includes(ns)) return { name: ns, builtin: true };
  if (ns === 'node' || !isDnsLabel(ns)) return undefined;
  return { name: ns, builtin: false };
}


export type DomainParse = { host: string; namespace: string } | { error: string };

/**
 * Splits `HOST.NAMESPACE.<domain>[.]` (the CLI's alias arguments) as the
 * reference client does: everything before the last `.<domain>`, split at its
 * first dot.
 */
export function parseDomainName(s: string, domain: string): DomainParse {
  const form = `could not parse domain '${s}': should be in the form 'HOST.NAMESPACE.${domain}'`;
  const bare = s.endsWith('.') ? s.slice(0, -1) : s;
  const suffix = `.${domain}`;
  const at = bare.lastIndexOf(suffix);
  if (at < 0 || at + suffix.length !== bare.length) return { error: form };
  const inner = bare.slice(0, at);
  const dot = inner.indexOf('.');
  if (dot < 0) return { error: form };
  const host = inner.slice(0, dot);
  const namespace = inner.slice(dot + 1);
  if (!isDnsLabel(host)) return { error: `could not parse domain '${s}': '${host}' is not a valid DNS label` };
  if (!parseNamespace(namespace)) return { error: `could not parse domain '${s}': '${namespace}' is not a valid namespace` };
  return { host, namespace };
}
