#!/usr/bin/env node
// `npm run fuzz -- --runs N [--seed S]`: the decoder properties of test/fuzz (all but the live-edge
// test, whose size is fixed) with N runs each instead of the 50,000 of `npm test`, through the same
// runner. Each test's deadline and the run's timeout grow with N.
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '50000' }, seed: { type: 'string' } } });
const runs = Number(values.runs);
if (!Number.isSafeInteger(runs) || runs <= 0) {
  process.stderr.write('usage: npm run fuzz -- --runs N [--seed S]\n');
  process.exit(2);
}
const env = { ...process.env, JETTY_FUZZ_RUNS: String(runs), JETTY_RUN_TIMEOUT_MS: String(Math.max(10, Math.ceil(runs / 50_000) * 2) * 60_000) };
if (values.seed) env.JETTY_FUZZ_SEED = values.seed;
const started = Date.now();
const child = spawn(process.execPath, [new URL('./run.js', import.meta.url).pathname, 'fuzz/(?!live-edge)'], { stdio: 'inherit', env });
child.on('exit', (code) => {
  process.stdout.write(`fuzz: ${runs} runs per property, seed ${values.seed ?? 'default'}, ${((Date.now() - started) / 1000).toFixed(1)} s, ${code === 0 ? 'passed' : 'FAILED'}\n`);
  process.exit(code ?? 1);
});
