import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { suite } from './suite.js';

const test = suite('helpers/suite');
const FIXTURE = fileURLToPath(new URL('../fixtures/hung-suite.js', import.meta.url));

test('a hung test fails alone, by name, at its deadline; the next test still runs', async () => {
  const out = await new Promise<string>((resolve) => {
    execFile(process.execPath, [FIXTURE], { timeout: 20_000 }, (_err, stdout) => resolve(stdout));
  });
  assert.match(out, /test "hangs forever" did not finish within 200 ms/);
  assert.match(out, /Passed:\s+1/);
  assert.match(out, /Total:\s+2/);
});

test.run();
