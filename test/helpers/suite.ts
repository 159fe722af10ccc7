import { suite as uvuSuite, type Callback, type Test } from 'uvu';

/** Longest a test (or a hook) may run before it fails with its own name, instead of hanging the run. */
export const TEST_DEADLINE_MS = 60_000;

type Handler<T> = Callback<T>;

function withDeadline<T>(what: string, handler: Handler<T>, deadlineMs: number): Handler<T> {
  return async (ctx) => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${deadlineMs} ms`)), deadlineMs);
    });
    try {
      await Promise.race([Promise.resolve().then(() => handler(ctx)), late]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * uvu's `suite`, with a deadline on every test and hook: a hung test fails alone, named, and the run
 * goes on (uvu itself has no timeouts).
 */
export function suite<T = Record<string, unknown>>(name: string, context?: T, deadlineMs = TEST_DEADLINE_MS): Test<T> {
  const inner = uvuSuite<T>(name, context);
  const test = ((testName: string, handler: Handler<T>) => inner(testName, withDeadline(`test "${testName}"`, handler, deadlineMs))) as Test<T>;
  Object.assign(test, inner);
  test.only = (testName: string, handler: Handler<T>) => inner.only(testName, withDeadline(`test "${testName}"`, handler, deadlineMs));
  for (const kind of ['before', 'after'] as const) {
    const hook = ((handler: Handler<T>) => inner[kind](withDeadline(`${kind} hook`, handler, deadlineMs))) as Test<T>['before'];
    hook.each = (handler: Handler<T>) => inner[kind].each(withDeadline(`${kind}.each hook`, handler, deadlineMs));
    test[kind] = hook;
  }
  return test;
}
