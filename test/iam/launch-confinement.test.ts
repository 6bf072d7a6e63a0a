// Defence in depth behind a pool's launch policy: whatever a launching function asks EC2 for, its
// role lets it launch only into the subnets and security groups the stack is deployed with
// (LaunchSubnetIds, LaunchSecurityGroupIds) and only instances with the stack's instance profile,
// through RunInstances, through the RunInstances an instant EC2 Fleet makes, and from a launch
// template. Each case names exactly the IAM requests the role must refuse, so a loosened statement
// fails it. Evaluated with the policy simulator on the packaged template.
import { describe, expect, it } from 'vitest';
import { RoleEvaluator } from '../support/iam/evaluate.ts';
import { packagedStack, TEST_SECURITY_GROUP_IDS, TEST_SUBNET_IDS } from '../support/iam/packaged.ts';
import { iamRequests, type CallFacts, type IamRequest, type SdkCall } from '../support/iam/requests.ts';
import type { StackModel } from '../support/iam/template.ts';

const model = packagedStack();
const STAGE = model.functions.get('annexCreate')?.environment.ANNEX_STAGE ?? '';
const ACCOUNT = model.account;
const ec2 = (resource: string) => `arn:aws:ec2:${model.region}:${ACCOUNT}:${resource}`;

const [SUBNET, SECOND_SUBNET] = TEST_SUBNET_IDS as [string, string];
const [GROUP] = TEST_SECURITY_GROUP_IDS as [string];
const FOREIGN_SUBNET = 'subnet-0fedcba9876543210';
const FOREIGN_GROUP = 'sg-0fedcba9876543210';
const PROFILE = `arn:aws:iam::${ACCOUNT}:instance-profile/annex-${STAGE}-instance`;
// A profile made by hand around the stack's own instance role: PassRole allows its role.
const HANDMADE_PROFILE = `arn:aws:iam::${ACCOUNT}:instance-profile/handmade/annex-${STAGE}-instance`;

type Call = Omit<SdkCall, 'function' | 'stage'>;
type Input = Record<string, unknown>;

const tags = [
  { Key: 'annex:stage', Value: STAGE },
  { Key: 'annex:id', Value: 'ax-0123456789abcdef0123' },
];

const runInstances = (over: Input = {}, facts?: CallFacts): Call => ({
  service: 'EC2',
  command: 'RunInstancesCommand',
  input: {
    ImageId: 'ami-0abcdef0123456789',
    SubnetId: SUBNET,
    SecurityGroupIds: [GROUP],
    IamInstanceProfile: { Arn: PROFILE },
    TagSpecifications: [
      { ResourceType: 'instance', Tags: tags },
      { ResourceType: 'volume', Tags: tags },
    ],
    ...over,
  },
  ...(facts === undefined ? {} : { facts }),
});

const templateData = (over: Input = {}): Input => ({
  ImageId: 'ami-0abcdef0123456789',
  SecurityGroupIds: [GROUP],
  IamInstanceProfile: { Arn: PROFILE },
  TagSpecifications: [{ ResourceType: 'volume', Tags: tags }],
  ...over,
});

const launchTemplate = (data: Input): NonNullable<CallFacts['launchTemplate']> => ({
  id: 'lt-0123456789abcdef0',
  tags: { 'annex:stage': STAGE },
  data,
});

const createFleet = (subnetId: string, data: Input = templateData()): Call => ({
  service: 'EC2',
  command: 'CreateFleetCommand',
  input: {
    Type: 'instant',
    LaunchTemplateConfigs: [
      {
        LaunchTemplateSpecification: { LaunchTemplateName: `annex-${STAGE}-ax-1` },
        Overrides: [{ SubnetId: subnetId }],
      },
    ],
    TargetCapacitySpecification: { TotalTargetCapacity: 1, SpotTargetCapacity: 1 },
    TagSpecifications: [
      { ResourceType: 'fleet', Tags: tags },
      { ResourceType: 'instance', Tags: tags },
    ],
  },
  facts: { launchTemplate: launchTemplate(data) },
});

const defaultEvaluator = new RoleEvaluator(model);

/** The requests of the call that the function's role refuses, as `action resource`. */
const refused = async (fn: string, call: Call, on: StackModel = model, evaluator = defaultEvaluator) => {
  const role = on.functions.get(fn)?.role;
  if (role === undefined) throw new Error(`the package has no function ${fn}`);
  const requests = iamRequests({ ...call, function: fn, stage: STAGE }, on);
  const verdicts = await Promise.all(
    requests.map(async (r) => ({ r, v: await evaluator.evaluate(role, r) })),
  );
  return verdicts.filter(({ v }) => v.decision !== 'Allowed').map(({ r }) => `${r.action} ${r.resource}`);
};
const launchers = [...model.functions.values()]
  .filter((f) =>
    f.role.policies.some((p) => JSON.stringify(p.policy).match(/ec2:(RunInstances|CreateFleet)/) !== null),
  )
  .map((f) => f.key);

describe('the launching functions', () => {
  it('are the create, add-nodes, EC2-events and Slack worker functions', () => {
    expect(launchers.sort()).toEqual(['annexAddNodes', 'annexCreate', 'ec2Events', 'slackWorker']);
  });
});

describe.each(launchers)('%s launches only into the stack network, with the stack profile', (fn) => {
  describe('RunInstances', () => {
    it('into either of the stack subnets, with its group and profile: allowed', async () => {
      expect(await refused(fn, runInstances())).toEqual([]);
      expect(await refused(fn, runInstances({ SubnetId: SECOND_SUBNET }))).toEqual([]);
    });

    it('into another subnet: refused on the subnet and on the network interface there', async () => {
      expect(await refused(fn, runInstances({ SubnetId: FOREIGN_SUBNET }))).toEqual([
        `ec2:RunInstances ${ec2('network-interface/*')}`,
        `ec2:RunInstances ${ec2(`subnet/${FOREIGN_SUBNET}`)}`,
      ]);
    });

    it('with another security group, even beside the stack one: refused on that group', async () => {
      expect(await refused(fn, runInstances({ SecurityGroupIds: [GROUP, FOREIGN_GROUP] }))).toEqual([
        `ec2:RunInstances ${ec2(`security-group/${FOREIGN_GROUP}`)}`,
      ]);
    });

    it('into the default VPC (no subnet, no group configured): refused on its subnet, interface and group', async () => {
      const call = runInstances(
        { SubnetId: undefined, SecurityGroupIds: undefined },
        { launched: { subnetIds: ['subnet-0d0d0d0d0d0d0d0d0'], securityGroupIds: ['sg-0d0d0d0d0d0d0d0d0'] } },
      );
      expect(await refused(fn, call)).toEqual([
        `ec2:RunInstances ${ec2('network-interface/*')}`,
        `ec2:RunInstances ${ec2('subnet/subnet-0d0d0d0d0d0d0d0d0')}`,
        `ec2:RunInstances ${ec2('security-group/sg-0d0d0d0d0d0d0d0d0')}`,
      ]);
    });

    it('without an instance profile: refused on the instance', async () => {
      expect(await refused(fn, runInstances({ IamInstanceProfile: undefined }))).toEqual([
        `ec2:RunInstances ${ec2('instance/*')}`,
      ]);
    });

    it('with another profile around the stack instance role (PassRole allows it): refused on the instance', async () => {
      expect(await refused(fn, runInstances({ IamInstanceProfile: { Arn: HANDMADE_PROFILE } }))).toEqual([
        `ec2:RunInstances ${ec2('instance/*')}`,
      ]);
    });

    it('from a launch template that names another profile: refused on the instance', async () => {
      const call = runInstances(
        {
          IamInstanceProfile: undefined,
          ImageId: undefined,
          SecurityGroupIds: undefined,
          LaunchTemplate: { LaunchTemplateId: 'lt-0123456789abcdef0' },
        },
        { launchTemplate: launchTemplate(templateData({ IamInstanceProfile: { Arn: HANDMADE_PROFILE } })) },
      );
      expect(await refused(fn, call)).toEqual([`ec2:RunInstances ${ec2('instance/*')}`]);
    });

    it('with an existing network interface: only one in a stack subnet', async () => {
      const role = model.functions.get(fn)?.role;
      if (role === undefined) throw new Error(`no function ${fn}`);
      const attach = (subnet: string): IamRequest => ({
        action: 'ec2:RunInstances',
        resource: ec2('network-interface/eni-0123456789abcdef0'),
        context: { 'ec2:Subnet': ec2(`subnet/${subnet}`) },
      });
      expect((await defaultEvaluator.evaluate(role, attach(SUBNET))).decision).toBe('Allowed');
      expect((await defaultEvaluator.evaluate(role, attach(FOREIGN_SUBNET))).decision).toBe(
        'ImplicitlyDenied',
      );
    });
  });

  describe('an instant CreateFleet and the RunInstances it makes', () => {
    it('into a stack subnet from a template with the stack group and profile: allowed', async () => {
      expect(await refused(fn, createFleet(SECOND_SUBNET))).toEqual([]);
    });

    it('into another subnet: refused for the fleet and for its launch (subnet, interface)', async () => {
      expect(await refused(fn, createFleet(FOREIGN_SUBNET))).toEqual([
        `ec2:CreateFleet ${ec2(`subnet/${FOREIGN_SUBNET}`)}`,
        `ec2:RunInstances ${ec2('network-interface/*')}`,
        `ec2:RunInstances ${ec2(`subnet/${FOREIGN_SUBNET}`)}`,
      ]);
    });

    it('from a template with another security group: refused on that group', async () => {
      expect(
        await refused(fn, createFleet(SUBNET, templateData({ SecurityGroupIds: [FOREIGN_GROUP] }))),
      ).toEqual([`ec2:RunInstances ${ec2(`security-group/${FOREIGN_GROUP}`)}`]);
    });

    it('from a template with another profile, or none: refused on the instance', async () => {
      const handmade = templateData({ IamInstanceProfile: { Arn: HANDMADE_PROFILE } });
      expect(await refused(fn, createFleet(SUBNET, handmade))).toEqual([
        `ec2:RunInstances ${ec2('instance/*')}`,
      ]);
      expect(await refused(fn, createFleet(SUBNET, templateData({ IamInstanceProfile: undefined })))).toEqual(
        [`ec2:RunInstances ${ec2('instance/*')}`],
      );
    });
  });
});

describe('a stack deployed without subnets or security groups', () => {
  const unconfigured = packagedStack(undefined, { LaunchSubnetIds: '', LaunchSecurityGroupIds: '' });
  const evaluator = new RoleEvaluator(unconfigured);

  it.each(launchers)('%s launches nowhere: not into the default VPC, not into a named subnet', async (fn) => {
    const defaultVpc = runInstances(
      { SubnetId: undefined, SecurityGroupIds: undefined },
      { launched: { subnetIds: ['subnet-0d0d0d0d0d0d0d0d0'], securityGroupIds: ['sg-0d0d0d0d0d0d0d0d0'] } },
    );
    expect(await refused(fn, defaultVpc, unconfigured, evaluator)).toEqual([
      `ec2:RunInstances ${ec2('network-interface/*')}`,
      `ec2:RunInstances ${ec2('subnet/subnet-0d0d0d0d0d0d0d0d0')}`,
      `ec2:RunInstances ${ec2('security-group/sg-0d0d0d0d0d0d0d0d0')}`,
    ]);
    expect(await refused(fn, runInstances(), unconfigured, evaluator)).toEqual([
      `ec2:RunInstances ${ec2('network-interface/*')}`,
      `ec2:RunInstances ${ec2(`subnet/${SUBNET}`)}`,
      `ec2:RunInstances ${ec2(`security-group/${GROUP}`)}`,
    ]);
  });
});
