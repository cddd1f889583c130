/**
 * Errors that stop `kith agent` from starting, each printed as one line on
 * stderr (exit 2). Their messages name what was wrong and what to do.
 */

/** Start-up failed for a reason the message explains (a port in use, etcd unreachable, a subnet taken). */
export class StartupError extends Error {}

/** A flag or environment variable has a bad value; the message names the flag. */
export class ConfigError extends StartupError {}

/** etcd did not answer in time (or cannot be reached): a state the caller may retry, not a defect. */
export class EtcdUnavailableError extends Error {}

/** Another live node holds this node's name. */
export class NameTakenError extends StartupError {}
