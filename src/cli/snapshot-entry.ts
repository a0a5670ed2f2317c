// The CLI's start-up snapshot. `npm run build` bundles this file with everything it imports into
// one script and runs it under `node --build-snapshot` (tools/cli-snapshot.ts): the imports
// below are evaluated then, so zod, the YAML reader and every rule's schema are in the snapshot,
// already made. bin/relayguard starts Node from that snapshot for every command but serve, and
// the function below runs the command line as main.ts would (what it saves: bench/RESULTS.md,
// "CLI start-up from a snapshot").
import { readFileSync } from 'node:fs';
import nodeModule from 'node:module';
import { join } from 'node:path';
import v8 from 'node:v8';
import { PACKAGE_ROOT, startedFrom } from './command.js';
import { main } from './main.js';
import { exitWhenDone } from './run-command.js';
// The commands' code, evaluated into the snapshot (main.ts would import each on first use).
import './quarantine.js';
import './validate.js';
import { parsePolicyText } from '../rules/policy-schema.js';

/** The main.js this snapshot was built from: bin/relayguard passes its own as argv[1]. */
const BUILT_FROM = join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');

function runFromSnapshot(): void {
  const [, script = '', ...args] = process.argv;
  // bin/relayguard starts the snapshot only in the checkout it was made in (dist/snapshot/root):
  // the paths inside it (the default policy, the package's modules) are that checkout's.
  if (!startedFrom(script, BUILT_FROM)) {
    process.stderr.write(
      `relayguard: this start-up snapshot was made for ${BUILT_FROM}, not ${script}: ` +
        'start relayguard with bin/relayguard, or run npm run build in this checkout\n',
    );
    process.exitCode = 1;
    return;
  }
  exitWhenDone(main(args));
}

/**
 * Reads the shipped policies once while the snapshot is made, so the code that reads a policy (the
 * YAML parser, zod's checks and the fast paths zod compiles for each schema) is compiled in it.
 * These policies name no file and no regular expression, so no native addon loads. Whatever runs
 * here is frozen into every start: nothing that must differ per run (an ID from randomUUID, the
 * clock, the environment) may be kept.
 */
function warmUp(): void {
  for (const file of ['policies/default.yaml', 'examples/postfix/relayguard.yaml']) {
    const r = parsePolicyText(readFileSync(join(PACKAGE_ROOT, file), 'utf8'), file);
    if (!r.ok) throw new Error(`${file}: ${r.errors.map((e) => e.message).join('; ')}`);
  }
  parsePolicyText('server: {listen: 1}\nrules: {nope: {}}\n', 'wrong.yaml');
  const loaded = Object.keys(nodeModule.createRequire(BUILT_FROM).cache);
  if (loaded.length > 0) throw new Error(`loaded from node_modules while warming up: ${loaded.join(', ')}`);
}

if (v8.startupSnapshot?.isBuildingSnapshot()) {
  warmUp();
  v8.startupSnapshot.setDeserializeMainFunction(runFromSnapshot);
}
