/**
 * The packaged stack's model for the tests: the template from `npm run package`, for account
 * 123456789012 in us-east-1, with the names the local stack gives what CloudFormation would name
 * itself (scripts/devstack/stack.ts seeds the instance profile `annex-<stage>-instance` and the
 * scheduler's role `annex-<stage>-scheduler`), so that a call recorded there names them as here,
 * deployed with the subnets and security groups below as the only ones it may launch into (a call
 * recorded on the local stack names its own configured ones: requests.ts translates them).
 */
import { templatePath } from '../package.ts';
import { readTemplate, stackModel, type StackModel } from './template.ts';

/** The HTTP API id the model gives the stack's API. */
export const TEST_API_ID = 'a1b2c3d4e5';

/** The subnets and security groups the model's stack is deployed with (LaunchSubnetIds, …). */
export const TEST_SUBNET_IDS = ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'];
export const TEST_SECURITY_GROUP_IDS = ['sg-0123456789abcdef0'];

/** The network the model's stack is deployed with, as its parameters. */
export const TEST_NETWORK = {
  LaunchSubnetIds: TEST_SUBNET_IDS.join(','),
  LaunchSecurityGroupIds: TEST_SECURITY_GROUP_IDS.join(','),
};

export function packagedStack(
  path: string = templatePath,
  parameters: Record<string, string> = TEST_NETWORK,
): StackModel {
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
    parameters,
  });
}
