import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { parseDomainName } from '../../api/namespace.js';
import { generateName } from '../names.js';
import { logsQueryString } from '../pod-logs.js';
import { DocumentError, manifests, samePod, withoutSystemKeys } from './apply.js';
import { DESCRIBE_ARGS, EVENTS_ARGS, EVENTS_OPTIONS, runDescribe, runEvents } from './describe.js';
import { ApiClient, ApiError } from './http.js';
import { findToken } from './token-source.js';
import { ROLLOUT_ARGS, ROLLOUT_OPTIONS, runRollout } from './rollout.js';
import { runToken, TOKEN_ARGS, TOKEN_OPTIONS } from './token.js';
import { podFromRun, UsageError, waitOutcome } from './run.js';
import { data, resourceTable, table } from './table.js';
import { oneType, resourceTypes } from './types.js';
import { Progress, type Io, type Values } from './io.js';
import { watchResources } from './watch.js';

type Options = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

interface Command {
  args: string;
  options?: Options;
  run(io: Io, values: Values, positionals: string[]): Promise<number>;
}

const GLOBAL: Options = {
  api: { type: 'string' },
  token: { type: 'string' },
  output: { type: 'string', short: 'o' },
  'cluster-domain': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};
const GLOBAL_WITH_VALUE = new Set(['--api', '--token', '--output', '-o', '--cluster-domain']);

/** Longest `run --wait` waits by default, in seconds. */
const WAIT_TIMEOUT_S = 600;
/**
 * How long `run --wait` watches a pod that runs before it calls it running: a
 * program that fails at once is reported as ended (the worker notices an end
 * within its poll interval, a second by default).
 */
const RUN_SETTLE_MS = 2000;
const SCALE_ATTEMPTS = 5;
/** How often the waiting commands ask again. */
const WAIT_POLL_MS = 250;

const seg = ApiClient.path;
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

function exactly(positionals: string[], names: string[]): string[] {
  if (positionals.length !== names.length) {
    throw new UsageError(`expected ${names.join(' ')}, got ${positionals.length === 0 ? 'nothing' : `'${positionals.join(' ')}'`}`);
  }
  return positionals;
}

function show(io: Io, type: string, value: unknown[]): void {
  if (io.format === 'table') {
    if (value.length === 0) io.err('No resources found.\n');
    else io.out(resourceTable(type, value));
  } else {
    io.out(data(value, io.format));
  }
}

function alias(io: Io, fqdn: string): { ns: string; host: string } {
  const p = parseDomainName(fqdn, io.domain);
  if ('error' in p) throw new UsageError(p.error);
  return { ns: p.namespace, host: p.host };
}

async function waitForPod(io: Io, name: string, timeoutS: number): Promise<number> {
  const deadline = Date.now() + timeoutS * 1000;
  let delay = 200;
  let last: string | undefined;
  let runningSince: number | undefined;
  for (;;) {
    const { body } = await io.api.request('GET', seg('resources', 'pod', name));
    const { state, metadata } = body as { state?: string; metadata?: Record<string, string> };
    if (state !== last) io.err(`${name}: ${state}\n`);
    last = state;
    const o = waitOutcome(state);
    if (o.done && (state === 'running' || state === 'unhealthy')) {
      runningSince ??= Date.now();
      if (Date.now() - runningSince < RUN_SETTLE_MS) {
        await sleep(250);
        continue;
      }
    }
    if (o.done) {
      if (o.code !== 0) io.err(`kith: pod ${name} ended ${state}${metadata?.error ? `: ${metadata.error}` : ''}\n`);
      return o.code;
    }
    if (Date.now() >= deadline) {
      io.err(`kith: pod ${name} is still ${state} after ${timeoutS} s\n`);
      return 1;
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 1000);
  }
}

/** `--timeout S` of the commands that wait. */
function timeoutOf(v: Values): number {
  const timeout = v.timeout === undefined ? WAIT_TIMEOUT_S : Number(v.timeout);
  if (!Number.isInteger(timeout) || timeout < 1) throw new UsageError(`--timeout '${v.timeout}': must be a whole number of seconds`);
  return timeout;
}

/** Polls (bounded by `timeoutS`) until `check` says done, showing its progress line; 0 when done, 1 after the timeout. */
async function waitShowing(io: Io, timeoutS: number, what: string, check: () => Promise<{ line: string; done: boolean }>): Promise<number> {
  const deadline = Date.now() + timeoutS * 1000;
  const progress = new Progress(io, io.err);
  for (;;) {
    const { line, done } = await check();
    progress.show(line);
    if (done) {
      progress.done();
      return 0;
    }
    if (Date.now() >= deadline) {
      progress.done();
      io.err(`kith: ${what} after ${timeoutS} s\n`);
      return 1;
    }
    await sleep(Math.min(WAIT_POLL_MS, Math.max(0, deadline - Date.now())));
  }
}

/** `scale --wait`: until the ReplicaSet has exactly N replicas, all of them running. */
function waitScaled(io: Io, name: string, n: number, timeoutS: number): Promise<number> {
  return waitShowing(io, timeoutS, `replicaset ${name} does not have ${n} running replicas`, async () => {
    const { body } = await io.api.request('GET', seg('resources', 'replicaset', name));
    const s = ((body as { status?: { desired?: number; live?: number; running?: number } }).status ?? {});
    const live = s.live ?? 0;
    const running = s.running ?? 0;
    const extra = live > n ? `, ${live - n} to remove` : '';
    return { line: `replicaset ${name}: ${running} of ${n} running${extra}`, done: s.desired === n && live === n && running === n };
  });
}

/** `delete replicaset NAME --wait`: until no pod of it is left. */
function waitReplicasGone(io: Io, name: string, timeoutS: number): Promise<number> {
  return waitShowing(io, timeoutS, `replicaset ${name} still has pods`, async () => {
    const { body } = await io.api.request('GET', seg('resources', 'pod'));
    const left = (body as { metadata?: Record<string, string> }[]).filter((p) => p.metadata?.replicaSet === name).length;
    return { line: `replicaset ${name}: ${left} ${left === 1 ? 'pod' : 'pods'} left`, done: left === 0 };
  });
}

const COMMANDS: Record<string, Command> = {
  run: {
    args: '[--name N] [-p PORT|CLUSTER:CONTAINER[/NAME]]... [-e K=V]... [--entrypoint S] [--cpu-request D] [--cpu-limit D] [--memory-request MiB] [--memory-limit MiB] [--may-be-scheduled-on NODE]... [--cannot-be-scheduled-on NODE]... [--readiness-http PORT/PATH|--readiness-tcp PORT|--readiness-exec CMD] [--liveness-http ...|--liveness-tcp ...|--liveness-exec ...] [--restart Never|OnFailure|Always] [--wait [--timeout S]] [--] IMAGE [CMD...]',
    options: {
      name: { type: 'string' },
      publish: { type: 'string', short: 'p', multiple: true },
      env: { type: 'string', short: 'e', multiple: true },
      entrypoint: { type: 'string' },
      'cpu-request': { type: 'string' },
      'cpu-limit': { type: 'string' },
      'memory-request': { type: 'string' },
      'memory-limit': { type: 'string' },
      'may-be-scheduled-on': { type: 'string', multiple: true },
      'cannot-be-scheduled-on': { type: 'string', multiple: true },
      'readiness-http': { type: 'string' },
      'readiness-tcp': { type: 'string' },
      'readiness-exec': { type: 'string' },
      'liveness-http': { type: 'string' },
      'liveness-tcp': { type: 'string' },
      'liveness-exec': { type: 'string' },
      restart: { type: 'string' },
      wait: { type: 'boolean' },
      timeout: { type: 'string' },
    },
    async run(io, v, pos) {
      const [image, ...cmd] = pos;
      if (image === undefined) throw new UsageError('run needs an IMAGE');
      const timeout = timeoutOf(v);
      const pod = podFromRun({
        name: (v.name as string | undefined) ?? generateName(),
        image,
        cmd,
        entrypoint: v.entrypoint as string | undefined,
        env: strings(v.env),
        publish: strings(v.publish),
        cpuRequest: v['cpu-request'] as string | undefined,
        cpuLimit: v['cpu-limit'] as string | undefined,
        memoryRequest: v['memory-request'] as string | undefined,
        memoryLimit: v['memory-limit'] as string | undefined,
        mayBeScheduledOn: strings(v['may-be-scheduled-on']),
        cannotBeScheduledOn: strings(v['cannot-be-scheduled-on']),
        readiness: { http: v['readiness-http'] as string | undefined, tcp: v['readiness-tcp'] as string | undefined, exec: v['readiness-exec'] as string | undefined },
        liveness: { http: v['liveness-http'] as string | undefined, tcp: v['liveness-tcp'] as string | undefined, exec: v['liveness-exec'] as string | undefined },
        restart: v.restart as string | undefined,
      });
      const { body } = await io.api.request('POST', '/resources', pod);
      io.out(io.format === 'table' ? `${pod.name}\n` : data(body, io.format));
      return v.wait ? waitForPod(io, pod.name as string, timeout) : 0;
    },
  },

  apply: {
    args: '[-f] FILE|- (default: stdin)',
    options: { filename: { type: 'string', short: 'f' } },
    async run(io, v, pos) {
      // As the reference client: no file means stdin, unless stdin is a terminal nobody is typing a manifest into.
      const file = (v.filename as string | undefined) ?? pos[0] ?? (process.stdin.isTTY ? undefined : '-');
      if (file === undefined || pos.length > (v.filename ? 0 : 1)) throw new UsageError('apply needs one -f FILE (or - for stdin)');
      let text: string;
      try {
        text = readFileSync(file === '-' ? 0 : file, 'utf8');
      } catch (err) {
        io.err(`kith: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`);
        return 1;
      }
      const source = file === '-' ? 'stdin' : file;
      const items = manifests(text, source);
      if (items.length === 0) throw new DocumentError(`${source}: no resources in it`);
      let failed = 0;
      const results: unknown[] = [];
      for (const m of items) {
        const id = `${m.type}/${m.name}`;
        try {
          if (m.type === 'pod' && m.state !== undefined && m.state !== 'created') {
            // A pod as `kith get -o yaml` shows it: unchanged if it still runs as written, else created anew.
            const existing = await io.api.request('GET', seg('resources', 'pod', m.name)).catch((err: unknown) => {
              if (err instanceof ApiError && err.status === 404) return undefined;
              throw err;
            });
            if (existing && samePod(m, existing.body)) {
              results.push(existing.body);
              if (io.format === 'table') io.out(`${id} unchanged\n`);
              continue;
            }
            // Absent: created anew; different: the usual path answers that pods cannot be modified.
            Object.assign(m, { state: 'created', metadata: withoutSystemKeys(m.metadata) });
          }
          try {
            const { body } = await io.api.request('POST', '/resources', m);
            results.push(body);
            if (io.format === 'table') io.out(`${id} created\n`);
            continue;
          } catch (err) {
            if (!(err instanceof ApiError && err.status === 409)) throw err;
          }
          const path = seg('resources', m.type, m.name);
          if (m.type === 'pod') {
            const { body } = await io.api.request('GET', path);
            if (samePod(m, body)) {
              results.push(body);
              if (io.format === 'table') io.out(`${id} unchanged\n`);
              continue;
            }
          }
          const { name: _n, type: _t, ...patch } = m;
          const { body } = await io.api.request('PATCH', path, patch);
          results.push(body);
          if (io.format === 'table') io.out(`${id} configured\n`);
        } catch (err) {
          if (!(err instanceof ApiError)) throw err;
          io.err(`kith: ${id}: ${err.message}\n`);
          failed++;
        }
      }
      if (io.format !== 'table') io.out(data(results, io.format));
      return failed > 0 ? 1 : 0;
    },
  },

  list: {
    args: 'TYPE [-w]',
    options: { watch: { type: 'boolean', short: 'w' } },
    async run(io, v, pos) {
      const [t] = exactly(pos, ['TYPE']);
      if (v.watch) return watchResources(io, oneType(t!));
      const all: unknown[] = [];
      for (const type of resourceTypes(t!)) {
        const { body } = await io.api.request('GET', seg('resources', type));
        all.push(...(body as unknown[]));
      }
      const types = resourceTypes(t!);
      show(io, types.length === 1 ? types[0]! : t!, all);
      return 0;
    },
  },

  get: {
    args: 'TYPE NAME [-w]',
    options: { watch: { type: 'boolean', short: 'w' } },
    async run(io, v, pos) {
      const [t, name] = exactly(pos, ['TYPE', 'NAME']);
      const type = oneType(t!);
      if (v.watch) return watchResources(io, type, name!);
      const { body } = await io.api.request('GET', seg('resources', type, name!));
      if (io.format === 'table') show(io, type, [body]);
      else io.out(data(body, io.format));
      return 0;
    },
  },

  delete: {
    args: 'TYPE NAME [--now] [--wait [--timeout S]]',
    options: { now: { type: 'boolean' }, wait: { type: 'boolean' }, timeout: { type: 'string' } },
    async run(io, v, pos) {
      const [t, name] = exactly(pos, ['TYPE', 'NAME']);
      const type = oneType(t!);
      const timeout = timeoutOf(v);
      if (v.wait && type !== 'replicaset') throw new UsageError('--wait waits for the replicas of a replicaset to go; a pod is gone from the API at once');
      // A deleted pod leaves DNS at once and is stopped after its grace (SPEC §11); --now skips the grace.
      await io.api.request('DELETE', `${seg('resources', type, name!)}${v.now ? '?now=1' : ''}`);
      io.out(io.format === 'table' ? `${type}/${name} deleted\n` : data({ deleted: { type, name } }, io.format));
      return v.wait ? waitReplicasGone(io, name!, timeout) : 0;
    },
  },

  aliases: {
    args: 'FQDN',
    async run(io, _v, pos) {
      const [from] = exactly(pos, ['FQDN']);
      const a = alias(io, from!);
      const { body } = await io.api.request('GET', seg('dns_aliases', a.ns, a.host));
      const targets = body as string[];
      if (io.format !== 'table') io.out(data(targets, io.format));
      else if (targets.length === 0) io.err(`No aliases of ${from}.\n`);
      else io.out(table(['FROM', 'TO'], targets.map((t) => [from!, t])));
      return 0;
    },
  },

  'create-alias': {
    args: 'FROM TO',
    async run(io, _v, pos) {
      const [from, to] = exactly(pos, ['FROM', 'TO']);
      const a = alias(io, from!);
      const b = alias(io, to!);
      await io.api.request('PUT', seg('dns_aliases', a.ns, a.host, b.ns, b.host));
      io.out(io.format === 'table' ? `alias ${from} -> ${to} created\n` : data({ created: { from, to } }, io.format));
      return 0;
    },
  },

  'delete-alias': {
    args: 'FROM TO',
    async run(io, _v, pos) {
      const [from, to] = exactly(pos, ['FROM', 'TO']);
      const a = alias(io, from!);
      const b = alias(io, to!);
      await io.api.request('DELETE', seg('dns_aliases', a.ns, a.host, b.ns, b.host));
      io.out(io.format === 'table' ? `alias ${from} -> ${to} deleted\n` : data({ deleted: { from, to } }, io.format));
      return 0;
    },
  },

  scale: {
    args: 'replicaset NAME N [--wait [--timeout S]]',
    options: { wait: { type: 'boolean' }, timeout: { type: 'string' } },
    async run(io, v, pos) {
      const [t, name, n] = exactly(pos, ['replicaset', 'NAME', 'N']);
      if (oneType(t!) !== 'replicaset') throw new UsageError(`only replicasets can be scaled, not '${t}'`);
      if (!/^\d{1,6}$/.test(n!)) throw new UsageError(`N '${n}': must be a whole number of replicas`);
      const path = seg('resources', 'replicaset', name!);
      // Read, change replicas, write back only if nothing changed in between (If-Match).
      for (let attempt = 0; ; attempt++) {
        const got = await io.api.request('GET', path);
        const spec = (got.body as { spec?: Record<string, unknown> }).spec ?? {};
        const etag = got.headers.get('etag');
        try {
          const { body } = await io.api.request('PATCH', path, { spec: { ...spec, replicas: Number(n) } }, etag ? { 'if-match': etag } : {});
          io.out(io.format === 'table' ? `replicaset/${name} scaled to ${n}\n` : data(body, io.format));
          return v.wait ? waitScaled(io, name!, Number(n), timeoutOf(v)) : 0;
        } catch (err) {
          if (!(err instanceof ApiError && err.status === 412) || attempt + 1 >= SCALE_ATTEMPTS) throw err;
        }
      }
    },
  },

  logs: {
    args: 'POD [-c CONTAINER] [-f] [--tail N] [--previous]',
    options: { container: { type: 'string', short: 'c' }, follow: { type: 'boolean', short: 'f' }, tail: { type: 'string' }, previous: { type: 'boolean' } },
    async run(io, v, pos) {
      const [pod] = exactly(pos, ['POD']);
      const tail = v.tail as string | undefined;
      if (tail !== undefined && !/^\d{1,9}$/.test(tail)) throw new UsageError(`--tail '${tail}': must be a whole number of lines`);
      const query = logsQueryString({ container: v.container as string | undefined, follow: v.follow === true, tail: tail === undefined ? undefined : Number(tail), previous: v.previous === true });
      // -f runs until the pod ends or Ctrl-C; then it ends quietly.
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const res = await io.api.open(`${seg('resources', 'pod', pod!, 'logs')}${query}`, {}, stop.signal);
        const decoder = new TextDecoder();
        for await (const chunk of res.body ?? []) io.out(decoder.decode(chunk as Uint8Array, { stream: true }));
        io.out(decoder.decode());
        return 0;
      } catch (err) {
        if (stop.signal.aborted) return 0;
        if (err instanceof ApiError) throw err;
        throw new ApiError(`the log of pod '${pod}' broke off: ${(err as Error).message}`, 0);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    },
  },

  events: { args: EVENTS_ARGS, options: EVENTS_OPTIONS, run: runEvents },
  describe: { args: DESCRIBE_ARGS, run: runDescribe },
  rollout: { args: ROLLOUT_ARGS, options: ROLLOUT_OPTIONS, run: runRollout },
  token: { args: TOKEN_ARGS, options: TOKEN_OPTIONS, run: runToken },

  'gen-name': {
    args: '',
    async run(io, _v, pos) {
      exactly(pos, []);
      io.out(`${generateName()}\n`);
      return 0;
    },
  },
};

export const CLIENT_USAGE = `client commands (global flags: --api URL or KITH_API, -o table|json|yaml, --cluster-domain D or KITH_CLUSTER_DOMAIN):
${Object.entries(COMMANDS)
  .map(([name, c]) => `  kith ${name} ${c.args}`.trimEnd())
  .join('\n')}
`;

/** The `kith` client commands of SPEC §1.2. Returns the exit code: 0, 1 for an API error, 2 for a usage error. */
export async function runClient(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const out = (s: string) => void process.stdout.write(s);
  const err = (s: string) => void process.stderr.write(s);
  try {
    // Global flags may come before the command; the command's own flags after it.
    const pre: string[] = [];
    let i = 0;
    for (; i < argv.length; i++) {
      const t = argv[i]!;
      if (GLOBAL_WITH_VALUE.has(t)) pre.push(t, argv[++i] ?? '');
      else if (t.startsWith('-')) pre.push(t);
      else break;
    }
    const name = argv[i];
    if (name === undefined) {
      out(CLIENT_USAGE);
      return pre.some((p) => p === '-h' || p === '--help') ? 0 : 2;
    }
    const command = COMMANDS[name];
    if (!command) throw new UsageError(`unknown command '${name}'; run 'kith help'`);
    let values: Values;
    let positionals: string[];
    try {
      const parsed = parseArgs({
        args: [...pre, ...argv.slice(i + 1)],
        options: { ...GLOBAL, ...command.options },
        allowPositionals: true,
        strict: true,
      });
      values = parsed.values as Values;
      positionals = parsed.positionals;
    } catch (e) {
      throw new UsageError(`${name}: ${(e as Error).message.split('\n')[0]}`);
    }
    if (values.help) {
      out(`usage: kith ${name} ${command.args}\n`);
      return 0;
    }
    const format = (values.output as string | undefined) ?? 'table';
    if (format !== 'table' && format !== 'json' && format !== 'yaml') throw new UsageError(`-o '${format}': must be table, json or yaml`);
    const base = (values.api as string | undefined) ?? env.KITH_API ?? 'http://127.0.0.1:8080';
    let api: ApiClient;
    try {
      api = new ApiClient(base, findToken(values.token as string | undefined, env));
      if (api.base.protocol !== 'http:' && api.base.protocol !== 'https:') throw new Error('not http');
    } catch {
      throw new UsageError(`--api '${base}': must be an http:// or https:// URL`);
    }
    const domain = ((values['cluster-domain'] as string | undefined) ?? env.KITH_CLUSTER_DOMAIN ?? 'cluster.local').replace(/\.$/, '');
    return await command.run({ api, format, domain, out, err, tty: process.stdout.isTTY === true && format === 'table' }, values, positionals);
  } catch (e) {
    if (e instanceof UsageError) {
      err(`kith: ${e.message}\n`);
      return 2;
    }
    if (e instanceof ApiError || e instanceof DocumentError) {
      err(`kith: ${e.message.split('\n')[0]}\n`);
      return 1;
    }
    throw e;
  }
}
