// Every AWS call a function made while this run's integration and e2e suites ran (recorded by
// test/support/iam/recorder.ts), evaluated against that function's role in the packaged template
// with a real IAM policy simulator. Any denial fails and names the call, the function and the
// missing statement.
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../scripts/devstack/serverless-config.ts';
import { RoleEvaluator } from '../support/iam/evaluate.ts';
import { packagedStack } from '../support/iam/packaged.ts';
import { currentRun, readRecording } from '../support/iam/recording.ts';
import { iamRequests } from '../support/iam/requests.ts';

const model = packagedStack();
const run = currentRun();
const recording = run === undefined ? undefined : readRecording(run);

/** Every test file of the projects that record (integration and e2e). */
const recordingSuites = (): string[] =>
  ['test/integration', 'test/e2e'].flatMap((dir) =>
    readdirSync(join(repoRoot, dir), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.test.ts'))
      .map((f) => relative(repoRoot, join(repoRoot, dir, f))),
  );

describe.skipIf(recording === undefined)('the AWS calls the integration and e2e suites recorded', () => {
  const calls = recording?.calls ?? [];

  it('were recorded at all, each from a function of the packaged template', () => {
    expect(calls.length).toBeGreaterThan(0);
    const unknown = [...new Set(calls.map((c) => c.function))].filter((f) => !model.functions.has(f));
    expect(unknown, 'functions the template does not have').toEqual([]);
    const failedLookups = calls
      .filter((c) => c.lookupError !== undefined)
      .map((c) => `${c.function} ${c.command}: ${c.lookupError}`);
    expect(failedLookups).toEqual([]);
  });

  it("are each allowed by the calling function's own role", async () => {
    const evaluator = new RoleEvaluator(model);
    const denials = new Map<string, { count: number; example: string }>();
    let evaluated = 0;
    for (const call of calls) {
      const fn = model.functions.get(call.function);
      if (fn === undefined) continue;
      for (const request of iamRequests(call, model)) {
        evaluated++;
        const verdict = await evaluator.evaluate(fn.role, request);
        if (verdict.decision === 'Allowed') continue;
        const key = `${verdict.decision}: ${call.function} ${call.service} ${call.command} → ${request.action}\n    ${verdict.explanation}`;
        const seen = denials.get(key);
        if (seen !== undefined) seen.count++;
        else {
          denials.set(key, {
            count: 1,
            example: `e.g. ${request.action} on ${request.resource} (${call.testFile ?? 'unknown test'})`,
          });
        }
      }
    }
    console.info(
      `IAM: ${calls.length} distinct calls of ${new Set(calls.map((c) => c.function)).size} functions, ` +
        `${evaluated} IAM requests (${evaluator.simulations} simulated), ${denials.size} kinds of denial`,
    );
    const report = [...denials].map(([key, { count, example }]) => `×${count} ${key}\n    ${example}`);
    expect(report, `denied:\n${report.join('\n\n')}`).toEqual([]);
  });

  // What they never call is covered by the explicit call lists in roles.test.ts.
  it('reach every function of the package (when every suite ran)', () => {
    const ran = recording?.testFiles ?? new Set<string>();
    const full = recordingSuites().every((f) => ran.has(f));
    if (!full) return;
    const reached = new Set(calls.map((c) => c.function));
    const missing = [...model.functions.keys()].filter((f) => !reached.has(f));
    expect(missing, 'functions no suite invoked').toEqual([]);
  });
});
