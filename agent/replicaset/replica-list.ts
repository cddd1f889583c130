import { z } from 'zod';

/**
 * The controller's own record of a ReplicaSet's replicas, at
 * `replicaset/replicas/<rs>` (README, "Several controllers at once").
 */
export const replicaList = z.object({
  /** The create revision of the ReplicaSet the list belongs to. */
  owner: z.number(),
  replicas: z.array(z.string()),
});
export type StoredReplicaList = z.output<typeof replicaList>;
