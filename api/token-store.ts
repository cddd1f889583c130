import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { nameUnder, TOKEN_BOOTSTRAP_KEY, TOKEN_PREFIX, tokenKey } from '../agent/keys.js';
import type { StateLayer, Subscription } from '../agent/state.js';
import { Problem } from './problem.js';
import { expired, hashSecret, makeToken, sameHash, storedToken, tokenInfo, type StoredToken, type TokenInfo, type TokenRequest } from './tokens.js';

/** The file the bootstrap admin token is written to, in the data dir. */
export const ADMIN_TOKEN_FILE = 'admin.token';
export const BOOTSTRAP_TOKEN_NAME = 'admin';

/**
 * Every token of the cluster, followed through the state layer into a map
 * hash → token: checking a request is one hash and one map get, never an etcd
 * read. A deleted token leaves the map when its delete event arrives; an
 * expired one is refused on lookup by its expiry.
 */
export class TokenStore {
  private readonly byHash = new Map<string, StoredToken>();
  private readonly byName = new Map<string, StoredToken>();
  private readonly sub: Subscription;

  constructor(
    private readonly state: StateLayer,
    private readonly log: Logger,
  ) {
    this.sub = state.watch(
      [TOKEN_PREFIX],
      (ev) => {
        const name = nameUnder(ev.key, TOKEN_PREFIX);
        if (name === undefined) return;
        this.lastRevision.set(name, ev.modRevision);
        const old = this.byName.get(name);
        if (old) {
          this.byName.delete(name);
          this.byHash.delete(old.hash);
        }
        if (ev.type !== 'put') return;
        let parsed;
        try {
          parsed = storedToken.safeParse(JSON.parse(ev.value));
        } catch {
          parsed = undefined;
        }
        if (!parsed?.success || parsed.data.name !== name) {
          log.warn({ key: ev.key }, 'stored token is invalid; ignored');
          return;
        }
        this.byName.set(name, parsed.data);
        this.byHash.set(parsed.data.hash, parsed.data);
        if (parsed.data.expiresAt) this.scheduleSweep();
      },
      { name: 'api-tokens' },
    );
    void this.sub.synced.then(() => (this.syncedOnce = true));
  }

  /** Per token name, the revision of the last event seen: a token this node wrote is known before its event arrives, unless a later event came first. */
  private readonly lastRevision = new Map<string, number>();

  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepAt = Infinity;
  private closed = false;

  /**
   * Expired tokens are refused at once (on lookup); they also leave etcd, a
   * second after they expire, deleted by any API node (guarded on the revision
   * seen, so the nodes do not race) and so from every `token list`.
   */
  private scheduleSweep(): void {
    if (this.closed) return;
    let next = Infinity;
    for (const t of this.byName.values()) if (t.expiresAt) next = Math.min(next, Date.parse(t.expiresAt));
    if (!Number.isFinite(next) || next >= this.sweepAt) return;
    clearTimeout(this.sweepTimer);
    this.sweepAt = next;
    // At most a day ahead (setTimeout's bound); the sweep reschedules itself.
    const delay = Math.min(Math.max(0, next - Date.now()) + 1000, 86_400_000);
    this.sweepTimer = setTimeout(() => void this.sweep(), delay);
    this.sweepTimer.unref();
  }

  private async sweep(): Promise<void> {
    this.sweepAt = Infinity;
    for (const t of [...this.byName.values()].filter((x) => expired(x))) {
      const key = tokenKey(t.name);
      const rev = this.lastRevision.get(t.name);
      if (rev === undefined) continue;
      const res = await this.state.txn({ if: [{ key, modRevision: rev }], then: [{ delete: key }] }).catch(() => undefined);
      if (res?.succeeded) this.log.info({ token: t.name }, 'deleted an expired token');
    }
    this.scheduleSweep();
  }

  private remember(token: StoredToken, revision: number): void {
    if ((this.lastRevision.get(token.name) ?? 0) >= revision) return;
    this.lastRevision.set(token.name, revision);
    this.byName.set(token.name, token);
    this.byHash.set(token.hash, token);
    if (token.expiresAt) this.scheduleSweep();
  }

  get synced(): Promise<void> {
    return this.sub.synced;
  }

  /**
   * Whether the tokens have been read from etcd at least once. While the state
   * layer resyncs (etcd away) the last view stays in force, as the resources'
   * own answers then are 503 etcd-unavailable, not a refused token.
   */
  get live(): boolean {
    return this.syncedOnce;
  }
  private syncedOnce = false;

  /** The live token of a presented secret, or undefined. */
  lookup(secret: string): StoredToken | undefined {
    const hash = hashSecret(secret);
    const t = this.byHash.get(hash);
    if (!t || !sameHash(t.hash, hash) || expired(t)) return undefined;
    return t;
  }

  list(): TokenInfo[] {
    return [...this.byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1)).map(tokenInfo);
  }

  /** Stores a new token (its name must be free) and returns its secret with what the API shows of it. */
  async create(req: TokenRequest, createdBy: string): Promise<TokenInfo & { token: string }> {
    const { secret, token } = makeToken(req, createdBy);
    const key = tokenKey(token.name);
    const res = await this.state.txn({ if: [{ key, createRevision: 0 }], then: [{ put: key, value: JSON.stringify(token) }] });
    if (!res.succeeded) throw new Problem('token-already-exists', `a token named '${token.name}' already exists; delete it first or choose another name`);
    // Usable here at once: the client may use it before this node's watch has delivered it.
    this.remember(token, res.revision);
    return { ...tokenInfo(token), token: secret };
  }

  async remove(name: string): Promise<void> {
    const key = tokenKey(name);
    const res = await this.state.txn({ if: [{ key, createRevision: 0, op: '>' }], then: [{ delete: key }] });
    if (!res.succeeded) throw new Problem('token-not-found', `there is no token named '${name}'`);
  }

  /**
   * The first API node of an empty cluster makes an admin token and writes its
   * secret to `<dataDir>/admin.token` (0600). One guarded transaction decides
   * it, so two nodes starting together make one. A file whose token still
   * exists is kept as it is.
   */
  async bootstrap(dataDir: string, nodeName: string): Promise<void> {
    await this.sub.synced;
    const file = join(dataDir, ADMIN_TOKEN_FILE);
    let kept: string | undefined;
    try {
      kept = readFileSync(file, 'utf8').trim();
    } catch {
      kept = undefined;
    }
    if (kept && this.lookup(kept)) {
      this.log.info({ file }, 'the admin token file holds a live token; kept');
      return;
    }
    const { secret, token } = makeToken({ name: BOOTSTRAP_TOKEN_NAME, role: 'admin' }, `bootstrap:${nodeName}`);
    const key = tokenKey(token.name);
    const res = await this.state.txn({
      if: [{ key: TOKEN_BOOTSTRAP_KEY, createRevision: 0 }],
      then: [
        { put: TOKEN_BOOTSTRAP_KEY, value: nodeName },
        { put: key, value: JSON.stringify(token) },
      ],
    });
    if (!res.succeeded) {
      if (kept !== undefined) this.log.warn({ file }, 'the admin token file holds no live token, and the cluster was bootstrapped already; make a token with an admin token');
      return;
    }
    this.remember(token, res.revision);
    writeFileSync(file, `${secret}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    this.log.info({ file, token: token.name }, 'made the first admin token of the cluster');
  }

  close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.sweepTimer);
    return this.sub.close();
  }
}
