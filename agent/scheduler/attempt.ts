import { handBacks, type Pod } from '../../api/schemas.js';
import { podRequest, type Amount } from '../capacity.js';
import { choose, type WorkerView } from './choose.js';

export interface AttemptInput {
  pod: Pod;
  /** Counted tries that found no worker so far. */
  tries: number;
  /** A try that uses up one of the pod's tries when it fails (not one woken by a worker's change). */
  counted: boolean;
  maxTries: number;
  /** The workers as the view sees them for this pod's ReplicaSet. */
  workers: readonly WorkerView[];
}

export type Attempt =
  /** Place it on `worker`, counting `request` there until etcd shows it. */
  | { kind: 'place'; worker: string; request: Amount }
  /** Give it up after `tries` tries. */
  | { kind: 'abandon'; reason: string; tries: number }
  /** Try again after the retry interval; `tries` includes this one when it counted. */
  | { kind: 'retry'; reason: string; tries: number }
  /** An early try that found nothing: the pod's counted try is still due. */
  | { kind: 'keep' };

/**
 * One try of one pod. A pod handed back by workers as often as it has tries
 * is abandoned before any choice, so a scheduler and workers that disagree
 * about free room cannot pass it around for ever. A try with no healthy
 * worker at all costs nothing.
 */
export function attempt(a: AttemptInput): Attempt {
  const handedBack = handBacks(a.pod);
  if (handedBack >= a.maxTries) return { kind: 'abandon', reason: `handed back by workers ${handedBack} times`, tries: a.tries };
  const request = podRequest(a.pod.spec);
  const c = a.pod.spec.schedulingConstraints;
  const choice = choose({ request, mayBeScheduledOn: c?.mayBeScheduledOn, cannotBeScheduledOn: c?.cannotBeScheduledOn }, a.workers);
  if ('worker' in choice) return { kind: 'place', worker: choice.worker, request };
  if (!a.counted) return { kind: 'keep' };
  const tries = choice.wait ? a.tries : a.tries + 1;
  if (tries >= a.maxTries) return { kind: 'abandon', reason: choice.reason, tries };
  return { kind: 'retry', reason: choice.reason, tries };
}
