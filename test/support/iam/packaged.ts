/**
 * The packaged stack's model for the tests: the template from `npm run package`, for account
 * 123456789012 in us-east-1, with the names the local stack gives what CloudFormation would name
 * itself (scripts/lib/stack.ts seeds the instance profile `annex-<stage>-instance` and the
 * scheduler's role `annex-<stage>-scheduler`), so that a call recorded there names them as here.
 */
import { templatePath } from '../package.ts';
import { readTemplate, stackModel, type StackModel } from './template.ts';

/** The HTTP API id the model gives the stack's API. */
export const TEST_API_ID = 'a1b2c3d4e5';

export function packagedStack(path: string = templatePath): StackModel {
  const template = readTemplate(path);
  const stage = Object.values(template.Resources)
    .map(
      (r) =>
        (r.Properties?.Environment as { Variables?: { ANNEX_STAGE?: string } } | undefined)?.Variables
          ?.ANNEX_STAGE,
    )
    .find((s) => s !== undefined);
  if (stage === undefined) throw new Error(`${path}: no function has ANNEX_STAGE`);
  return stackModel(template, {
    physicalNames: {
      InstanceProfile: `annex-${stage}-instance`,
      SchedulerInvokeRole: `annex-${stage}-scheduler`,
      HttpApi: TEST_API_ID,
    },
  });
}
