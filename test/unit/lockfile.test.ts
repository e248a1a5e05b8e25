import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';

interface LockEntry {
  version?: string;
  optional?: boolean;
  os?: string[];
  cpu?: string[];
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

const lock = JSON.parse(readFileSync(new URL('../../package-lock.json', import.meta.url), 'utf8')) as { packages: Record<string, LockEntry> };
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as Record<string, Record<string, string> | undefined>;

/** Where npm would resolve `name` from the package at `from` (nested first, then up to the root). */
function resolve(from: string, name: string): LockEntry | undefined {
  let dir = from;
  for (;;) {
    const found = lock.packages[`${dir ? `${dir}/` : ''}node_modules/${name}`];
    if (found) return found;
    if (!dir) return undefined;
    const cut = dir.lastIndexOf('/node_modules/');
    dir = cut === -1 ? '' : dir.slice(0, cut);
  }
}

/**
 * `npm ci` (what `npm start` and `npm test` install with) refuses a lockfile
 * that lacks an entry for any declared dependency, optional native packages of
 * other platforms included; `npm install` would then rewrite the lockfile.
 */
describe('package-lock.json installs with npm ci on any platform', () => {
  it('every dependency of package.json is locked', () => {
    const declared = { ...pkg.dependencies, ...pkg.devDependencies };
    const missing = Object.keys(declared).filter((name) => !lock.packages[`node_modules/${name}`]);
    expect(missing).toEqual([]);
  });

  it('every dependency and optional dependency of every locked package is locked, optional ones restricted to their platform', () => {
    const missing: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (path === '') continue;
      for (const name of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) {
        if (!resolve(path, name)) missing.push(`${path} -> ${name}`);
      }
      for (const name of Object.keys(entry.optionalDependencies ?? {})) {
        const dep = resolve(path, name);
        if (dep && !dep.optional && !dep.os && !dep.cpu) missing.push(`${name} is optional for ${path} but locked as required`);
      }
    }
    expect(missing).toEqual([]);
  });
});
