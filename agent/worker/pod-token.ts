import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashSecret, newSecret, podTokenName, storedToken, type StoredToken } from '../../api/tokens.js';
import { tokenKey } from '../keys.js';
import type { KeyValue, StateLayer } from '../state.js';

/**
 * A pod's own API token (SPEC §9): made by its worker when the pod's spec
 * asks (`apiAccess: view|edit`), named `pod.<pod>`, kept in etcd only as its
 * hash and on the worker's alive lease (a worker that dies takes its pods'
 * tokens with it), its secret in a file under the data dir that each
 * container mounts read-only at `/run/secrets/kith/token`. Deleted when the
 * pod ends.
 */

export const POD_TOKEN_PATH = '/run/secrets/kith/token';

/** The creator a worker writes on its pods' tokens: only those are its to delete. */
export const podTokenCreator = (worker: string): string => `worker:${worker}`;

/** Where the secret of a pod's token lives on the host. */
export const podTokenDir = (dataDir: string, runtimeName: string): string => join(dataDir, 'pod-tokens', runtimeName);

/** The stored value of a new pod token (pure, given the secret). */
export function podTokenValue(pod: string, role: 'view' | 'edit', worker: string, secret: string, now: Date): StoredToken {
  return storedToken.parse({ name: podTokenName(pod), role, hash: hashSecret(secret), createdBy: podTokenCreator(worker), createdAt: now.toISOString() });
}

/** Makes the pod's token: the secret in its file first, then its hash in etcd. Returns the file. */
export async function issuePodToken(state: StateLayer, o: { pod: string; role: 'view' | 'edit'; worker: string; dataDir: string; runtimeName: string }): Promise<string> {
  const secret = newSecret();
  const dir = podTokenDir(o.dataDir, o.runtimeName);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'token');
  writeFileSync(file, secret, { mode: 0o444 });
  const value = JSON.stringify(podTokenValue(o.pod, o.role, o.worker, secret, new Date()));
  await state.txn({ if: [], then: [{ put: tokenKey(podTokenName(o.pod)), value, lease: 'alive' }] });
  return file;
}

/** Whether a stored token is one this worker made for a pod. */
export function isOwnPodToken(kv: Pick<KeyValue, 'value'>, worker: string): boolean {
  try {
    return (JSON.parse(kv.value) as { createdBy?: unknown }).createdBy === podTokenCreator(worker);
  } catch {
    return false;
  }
}

/** Deletes the pod's token if it is this worker's (guarded on the value read), and its file. */
export async function revokePodToken(state: StateLayer, o: { pod: string; worker: string; dataDir: string; runtimeName: string }): Promise<void> {
  rmSync(podTokenDir(o.dataDir, o.runtimeName), { recursive: true, force: true });
  const key = tokenKey(podTokenName(o.pod));
  const kv = await state.get(key);
  if (kv && isOwnPodToken(kv, o.worker)) await state.txn({ if: [{ key, modRevision: kv.modRevision }], then: [{ delete: key }] });
}
