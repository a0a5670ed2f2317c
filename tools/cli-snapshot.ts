// Builds the daemon's bundle and the CLI's start-up snapshot for the Node that runs this script
// (`npm run build` runs it after tsc; .ci/node-line.sh's trees through test/run-all.sh on each
// Node line). The daemon's bundle: esbuild bundles dist/src/cli/serve-entry.js and what serve
// imports into dist/snapshot/serve.cjs with its source map (why: src/cli/serve-entry.ts); it is
// tried (`serve --help`) before it is renamed into place. The CLI's snapshot:
//
//   1. esbuild bundles dist/src/cli/snapshot-entry.js and what it imports into one CommonJS
//      script, dist/snapshot/cli.cjs (Node's snapshot builder takes one script that requires
//      only Node's own modules: native addons and the packages loaded with createRequire stay
//      outside and load from node_modules when first used);
//   2. `node --snapshot-blob dist/snapshot/cli-KEY.blob --build-snapshot dist/snapshot/cli.cjs`.
//
// KEY names the Node binary as bin/relayguard sees it without starting Node: size, modification
// time (seconds) and inode of the file (`stat -L -c %s-%Y-%i`). Node refuses a snapshot made by
// another Node version or with other V8 flags, so the snapshot is made without NODE_OPTIONS and
// bin/relayguard uses it only for the same binary and an empty NODE_OPTIONS. It is tried (a
// `validate` of the default policy) before it is renamed into place, and dist/snapshot/root names
// the checkout it belongs to. Every build removes the snapshots of earlier builds: they hold
// earlier code.
//
//   node dist/tools/cli-snapshot.js [--optional]
//
// --optional (npm's prepare step): a failure is a warning and exit 0; the CLI works without a
// snapshot, only slower to start.
import { spawnSync } from 'node:child_process';
import {
  mkdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type BuildOptions, type Plugin } from 'esbuild';

/** The checkout, as bin/relayguard sees it (`readlink -f`): symbolic links resolved. */
const ROOT = realpathSync(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'));
const DIST_SRC = join(ROOT, 'dist', 'src');
const MAIN = join(DIST_SRC, 'cli', 'main.js');
const OUT_DIR = join(ROOT, 'dist', 'snapshot');
const BUNDLE = join(OUT_DIR, 'cli.cjs');
/** The daemon's bundle (bin/relayguard starts serve from it). */
export const SERVE_BUNDLE = join(OUT_DIR, 'serve.cjs');
const BUILT_FOR = join(OUT_DIR, 'root');

/** The name bin/relayguard computes for this Node binary (see above). */
export function snapshotKey(nodeBinary: string): string {
  const st = statSync(nodeBinary, { bigint: true });
  return `${st.size}-${st.mtimeNs / 1_000_000_000n}-${st.ino}`;
}

export function snapshotPath(nodeBinary: string): string {
  return join(OUT_DIR, `cli-${snapshotKey(nodeBinary)}.blob`);
}

/** Each of our modules keeps its own import.meta.url (one script has none of its own). */
const ownModuleUrls: Plugin = {
  name: 'own-module-urls',
  setup(b) {
    b.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(DIST_SRC + '/')) return undefined;
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const url = JSON.stringify(pathToFileURL(args.path).href);
      return { contents: text.replaceAll('import.meta.url', url), loader: 'js' };
    });
  },
};

const zodEnglishOnly: Plugin = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      args.importer.includes('/node_modules/zod/') ? { path: 'zod-locales', namespace: 'zod-en' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'zod-en' }, () => ({
      contents: `export { default as en } from ${JSON.stringify(join(ROOT, 'node_modules/zod/v4/locales/en.js'))};`,
      loader: 'js',
      resolveDir: ROOT,
    }));
  },
};

/**
 * Dates `file` to when the build began reading its inputs: bin/relayguard compares dist/src with
 * it (`find -newer`), and a module rewritten while the build ran (tsc --watch) must count as newer.
 */
function stampAsOf(file: string, inputsRead: Date): void {
  utimesSync(file, inputsRead, inputsRead);
}

/** How both scripts are bundled. */
const BUNDLING: BuildOptions = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  plugins: [ownModuleUrls, zodEnglishOnly],
  // No comments and no indentation: a script's source stays in the heap (in the snapshot, in the
  // daemon) for as long as it runs, and one character outside Latin-1 in a comment would store
  // all of it as UTF-16, twice the size.
  minifyWhitespace: true,
  logLevel: 'warning',
};

/** dist/snapshot/serve.cjs and its map, built next to it, tried, then renamed into place. */
async function buildServeBundle(): Promise<string> {
  const tmp = join(OUT_DIR, 'serve.partial');
  rmSync(tmp, { recursive: true, force: true });
  try {
    const script = join(tmp, 'serve.cjs');
    const inputsRead = new Date();
    await build({
      ...BUNDLING,
      entryPoints: [join(DIST_SRC, 'cli', 'serve-entry.js')],
      outfile: script,
      sourcemap: 'linked',
    });
    const trial = spawnSync(process.execPath, [script, 'serve', '--help'], { encoding: 'utf8', timeout: 60_000 });
    if (trial.status !== 0 || !trial.stdout.startsWith('usage: relayguard serve '))
      throw new Error(
        `the daemon's bundle does not run serve --help (exit ${trial.status ?? trial.signal}): ${trial.stderr.trim()}`,
      );
    renameSync(`${script}.map`, `${SERVE_BUNDLE}.map`);
    stampAsOf(script, inputsRead);
    renameSync(script, SERVE_BUNDLE);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return SERVE_BUNDLE;
}

async function buildSnapshot(): Promise<string> {
  const inputsRead = new Date();
  await build({ ...BUNDLING, entryPoints: [join(DIST_SRC, 'cli', 'snapshot-entry.js')], outfile: BUNDLE });
  const blob = snapshotPath(process.execPath);
  // Made and tried without NODE_OPTIONS, as bin/relayguard runs it: V8 flags there (an
  // --max-old-space-size in a build environment) would make a snapshot Node refuses at run time.
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const partial = `${blob}.partial`;
  try {
    const r = spawnSync(process.execPath, ['--snapshot-blob', partial, '--build-snapshot', BUNDLE], {
      encoding: 'utf8',
      timeout: 120_000,
      env,
    });
    if (r.status !== 0)
      throw new Error(`node --build-snapshot exited ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim()}`);
    const trial = spawnSync(
      process.execPath,
      ['--snapshot-blob', partial, MAIN, 'validate', '-c', join(ROOT, 'policies', 'default.yaml')],
      { encoding: 'utf8', timeout: 60_000, env },
    );
    if (trial.status !== 0 || !/: ok$/m.test(trial.stdout))
      throw new Error(
        `the new snapshot does not run validate (exit ${trial.status ?? trial.signal}): ${trial.stderr.trim()}`,
      );
    // Renamed into place whole: a command started meanwhile never reads half a file.
    stampAsOf(partial, inputsRead);
    renameSync(partial, blob);
  } finally {
    rmSync(partial, { force: true });
  }
  return blob;
}

async function cli(argv: string[]): Promise<number> {
  const optional = argv.includes('--optional');
  rmSync(OUT_DIR, { recursive: true, force: true });
  mkdirSync(OUT_DIR, { recursive: true });
  // Which checkout they belong to: bin/relayguard does not use them from a copy elsewhere.
  writeFileSync(BUILT_FOR, `${ROOT}\n`);
  let failed = false;
  const steps = [
    {
      what: "the daemon's bundle",
      make: buildServeBundle,
      without: 'serve runs on dist/src instead, with more memory',
    },
    { what: 'a start-up snapshot', make: buildSnapshot, without: 'its commands start more slowly' },
  ];
  for (const step of steps) {
    try {
      const file = await step.make();
      const mib = (statSync(file).size / 1048576).toFixed(1);
      process.stdout.write(`cli-snapshot: ${file} (${mib} MiB) for ${process.execPath} ${process.version}\n`);
    } catch (err) {
      failed = true;
      process.stderr.write(
        `cli-snapshot: no ${step.what.replace(/^(the|a) /, '')} for ${process.execPath} ${process.version}: ${(err as Error).message}\n` +
          (optional ? `cli-snapshot: relayguard works without it; ${step.without}\n` : ''),
      );
    }
  }
  return failed && !optional ? 1 : 0;
}

if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) {
  process.exitCode = await cli(process.argv.slice(2));
}
