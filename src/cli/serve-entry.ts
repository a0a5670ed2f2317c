// The daemon's entry when it runs from its bundle: `npm run build` bundles this file with what
// serve imports into one script, dist/snapshot/serve.cjs (tools/cli-snapshot.ts), and
// bin/relayguard starts serve from it while it is as new as dist/src. Why: the modules' comments
// and indentation, zod's translations of its messages into forty languages and the module
// loader's records per module stay in the daemon's memory for as long as it runs
// (bench/RESULTS.md, "Issue 22, fourth pass"). The code is the same; stack traces name the
// bundle (NODE_OPTIONS=--enable-source-maps maps them back to src/ through serve.cjs.map).
import { join } from 'node:path';
import { writeError } from '../ops/journal-stream.js';
import { PACKAGE_ROOT, startedFrom } from './command.js';
import { about } from './command-list.js';
import { loadServe } from './load-serve.js';
import { exitWhenDone, runCommand } from './run-command.js';

/** Where the build writes this bundle (and tries it first, in a directory below). */
const BUILT_IN = join(PACKAGE_ROOT, 'dist', 'snapshot');
const [, script = '', name, ...args] = process.argv;
if (!startedFrom(script, BUILT_IN, { directory: true })) {
  // Copied elsewhere after its build, it would serve with the build checkout's policy and packages.
  writeError(
    `relayguard: this bundle was made in ${BUILT_IN}, not for ${script}: ` +
      'start relayguard with bin/relayguard, or run npm run build in this checkout\n',
  );
  process.exitCode = 1;
} else if (name !== 'serve') {
  writeError(`relayguard: ${script} runs serve only: start relayguard with bin/relayguard\n`);
  process.exitCode = 2;
} else {
  exitWhenDone(runCommand(about('serve'), loadServe, args));
}
