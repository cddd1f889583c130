import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT } from './support/agent.js';

/**
 * The layout STYLE.md asks for, checked on the source tree: the SPEC §2 key
 * layout is spelled in one module, no plugin folder imports another, the
 * embedded etcd is the core's alone, and no two files import each other
 * through any chain.
 */

const SOURCE_DIRS = ['agent', 'api', 'dns', 'firewall'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return f === 'native' ? [] : sourceFiles(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

const files = SOURCE_DIRS.flatMap((d) => sourceFiles(join(ROOT, d))).map((f) => relative(ROOT, f));
const text = new Map(files.map((f) => [f, readFileSync(join(ROOT, f), 'utf8')]));

/** The source files a file imports (static, dynamic and type imports), relative to the root. */
function importsOf(file: string): string[] {
  const out: string[] = [];
  for (const m of text.get(file)!.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
    const target = relative(ROOT, resolve(ROOT, dirname(file), m[1]!)).replace(/\.js$/, '.ts');
    if (text.has(target)) out.push(target);
  }
  return out;
}

/** The plugin folder a file belongs to, if any. */
function pluginOf(file: string): string | undefined {
  const m = /^(?:agent\/(worker|scheduler|reaper|replicaset)\/|(dns|api)\/)/.exec(file);
  return m ? (m[1] ?? m[2]) : undefined;
}

describe('source layout', () => {
  it('spells the SPEC §2 key prefixes in agent/keys.ts only', () => {
    const prefixes = [
      /['`]resource\//, /['`]pod\/unscheduled\//, /['`]pod\/claimed\//, /node\.worker\/(inbox|limits|subnet)\//,
      /\/heartbeat\//, /['`]replicaset\/replicas\//, /['`]dns\/(?!native)/,
    ];
    const offenders = files.filter((f) => f !== 'agent/keys.ts').flatMap((f) =>
      text.get(f)!.split('\n').flatMap((line, i) => {
        const code = line.replace(/\/\/.*$/, '').replace(/^\s*\*.*$/, '').replace(/\/\*\*.*\*\//, '');
        return prefixes.some((p) => p.test(code)) ? [`${f}:${i + 1}: ${line.trim()}`] : [];
      }),
    );
    expect(offenders).to.deep.equal([]);
  });

  it('has no plugin folder importing another plugin folder', () => {
    const crossings = files.flatMap((f) => {
      const mine = pluginOf(f);
      if (!mine) return [];
      // api/schemas.ts and api/tokens.ts are the leaves every part shares (the schemas with the CLI and the agent; tokens with the worker, which makes pods' own).
      return importsOf(f).filter((t) => pluginOf(t) !== undefined && pluginOf(t) !== mine && t !== 'api/schemas.ts' && t !== 'api/tokens.ts').map((t) => `${f} -> ${t}`);
    });
    expect(crossings).to.deep.equal([]);
  });

  it('imports the embedded etcd from the agent core only', () => {
    const users = files.filter((f) => importsOf(f).includes('agent/embedded-etcd.ts'));
    expect(users.filter((f) => !/^agent\/[^/]+\.ts$/.test(f))).to.deep.equal([]);
  });

  it('has no import circle between files', () => {
    const graph = new Map(files.map((f) => [f, importsOf(f)]));
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (f: string, path: string[]) => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') {
        cycles.push([...path.slice(path.indexOf(f)), f].join(' -> '));
        return;
      }
      state.set(f, 'open');
      for (const t of graph.get(f) ?? []) visit(t, [...path, f]);
      state.set(f, 'done');
    };
    for (const f of files) visit(f, []);
    expect(cycles).to.deep.equal([]);
  });
});
