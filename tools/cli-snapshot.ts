// Builds the CLI's start-up snapshot for the Node that runs this script (`npm run build` runs it
// after tsc; .ci/node-line.sh's trees through test/run-all.sh on each Node line):
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
import { mkdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';

/** The checkout, as bin/relayguard sees it (`readlink -f`): symbolic links resolved. */
const ROOT = realpathSync(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'));
const DIST_SRC = join(ROOT, 'dist', 'src');
const MAIN = join(DIST_SRC, 'cli', 'main.js');
const OUT_DIR = join(ROOT, 'dist', 'snapshot');
const BUNDLE = join(OUT_DIR, 'cli.cjs');
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

async function buildSnapshot(): Promise<string> {
  rmSync(OUT_DIR, { recursive: true, force: true });
  mkdirSync(OUT_DIR, { recursive: true });
  await build({
    entryPoints: [join(DIST_SRC, 'cli', 'snapshot-entry.js')],
    outfile: BUNDLE,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    plugins: [ownModuleUrls, zodEnglishOnly],
    // No comments and no indentation: the script's source is kept in the snapshot, and one
    // character outside Latin-1 in a comment would store all of it as UTF-16, twice the size.
    minifyWhitespace: true,
    logLevel: 'warning',
  });
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
    renameSync(partial, blob);
  } finally {
    rmSync(partial, { force: true });
  }
  // Which checkout it belongs to: bin/relayguard does not use it from a copy elsewhere.
  writeFileSync(BUILT_FOR, `${ROOT}\n`);
  return blob;
}

async function cli(argv: string[]): Promise<number> {
  const optional = argv.includes('--optional');
  try {
    const blob = await buildSnapshot();
    const mib = (statSync(blob).size / 1048576).toFixed(1);
    process.stdout.write(`cli-snapshot: ${blob} (${mib} MiB) for ${process.execPath} ${process.version}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(
      `cli-snapshot: no start-up snapshot for ${process.execPath} ${process.version}: ${(err as Error).message}\n` +
        (optional ? 'cli-snapshot: relayguard works without it; its commands start more slowly\n' : ''),
    );
    return optional ? 0 : 1;
  }
}

if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) {
  process.exitCode = await cli(process.argv.slice(2));
}
