import type { z } from 'zod';
import type { NodeState } from '../agent/node.js';
import { invalid, Problem } from './problem.js';
import { EVENT_TYPE } from '../agent/keys.js';
import { clusterEvent, isNodeType, isTerminal, pod, replicaSet, resource, resourceType, dnsLabel, type Resource } from './schemas.js';

/**
 * The pure decisions of the resource routes (SPEC §3, reference §2.2):
 * which schema a type has, what a create or a patch turns into, and the
 * states derived on read.
 */


/** The schema a stored or submitted resource of this type must satisfy. */
export function schemaFor(type: string): z.ZodType<Resource> {
  if (type === 'pod') return pod as unknown as z.ZodType<Resource>;
  if (type === 'replicaset') return replicaSet as unknown as z.ZodType<Resource>;
  if (type === EVENT_TYPE) return clusterEvent as unknown as z.ZodType<Resource>;
  return resource;
}

/** Whether a path's type and name could name a stored resource at all. */
export const addressable = (type: string, name: string | undefined): boolean =>
  resourceType.safeParse(type).success && (name === undefined || dnsLabel.safeParse(name).success);

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validates the body of `POST /resources`; returns the resource to store or throws a Problem. */
export function resourceToCreate(body: unknown): Resource {
  if (!isObject(body)) throw new Problem('resource-invalid', 'body: must be a JSON object with name, type and spec');
  if (typeof body.type === 'string' && isNodeType(body.type)) {
    throw new Problem('resource-invalid', 'Node resources cannot be created via the API.');
  }
  // Events are what the agents saw; a client could forge history with them.
  if (body.type === EVENT_TYPE) throw new Problem('resource-invalid', 'Event resources cannot be created via the API: the agents write them.');
  const typeOk = resourceType.safeParse(body.type);
  if (!typeOk.success) throw invalid(typeOk.error, ['type']);
  const parsed = schemaFor(typeOk.data).safeParse(body);
  if (!parsed.success) throw invalid(parsed.error);
  if (parsed.data.type === 'pod' && parsed.data.state !== 'created') {
    throw new Problem('resource-invalid', `state: a new pod's state must be 'created', not '${parsed.data.state}'`);
  }
  return parsed.data;
}

/** Why a PATCH or DELETE of this type is refused before anything is read, if it is. */
export function refusedChange(type: string, method: 'PATCH' | 'DELETE'): Problem | undefined {
  if (isNodeType(type)) {
    return new Problem('modification-not-allowed', `Node resources cannot be ${method === 'PATCH' ? 'modified' : 'deleted'} via the API.`);
  }
  if (type === EVENT_TYPE && method === 'PATCH') return new Problem('modification-not-allowed', 'Event resources cannot be modified via the API.');
  return undefined;
}

/**
 * What a PATCH body is refused for before the resource is read, in the
 * reference's order: not an object (the reference panicked), then a string
 * `type` or `name`, which is 422 even for a missing resource. Pods are judged
 * after the read: a missing pod is 404 (the reference's 422 was a gap), an
 * existing one is 422 with the pod message.
 */
export function checkPatchBody(type: string, body: unknown): asserts body is Record<string, unknown> {
  if (!isObject(body)) throw new Problem('resource-invalid', 'body: a PATCH body must be a JSON object');
  if (type !== 'pod' && (typeof body.type === 'string' || typeof body.name === 'string')) {
    throw new Problem('modification-not-allowed', "The 'type' and 'name' fields of a resource cannot be modified after creation.");
  }
}

/**
 * The reference's shallow merge: the patch body, with name and type forced to
 * the old ones and state, metadata and spec taken from the old resource when
 * null or missing. A given metadata or spec replaces the old one whole.
 * Throws a Problem when the patch is not allowed or the result is invalid.
 */
export function patched(old: Resource & Record<string, unknown>, body: unknown): Resource {
  checkPatchBody(old.type, body);
  if (old.type === 'pod') throw new Problem('modification-not-allowed', 'Pod resources cannot be modified via the API.');
  const merged: Record<string, unknown> = { ...body, name: old.name, type: old.type };
  // state, metadata, spec (and a ReplicaSet's status) are kept when null or missing.
  for (const [k, v] of Object.entries(old)) {
    if (merged[k] === null || merged[k] === undefined) merged[k] = v;
  }
  for (const k of Object.keys(merged)) if (merged[k] === undefined || merged[k] === null) delete merged[k];
  const parsed = schemaFor(old.type).safeParse(merged);
  if (!parsed.success) throw invalid(parsed.error);
  return parsed.data;
}

/** A pod's state as read (reference §2.2 fix-ups): a live pod of a degraded worker is unhealthy, of a dead one dead. */
export function podStateOnRead(state: string | undefined, worker: NodeState | undefined): string | undefined {
  if (worker === undefined || isTerminal(state)) return state;
  if (worker === 'degraded') return 'unhealthy';
  if (worker === 'dead') return 'dead';
  return state;
}
