// The IAM evaluation itself, on fixed calls: what AWS authorizes for each kind of SDK call
// (test/support/iam/requests.ts), and what the simulator says about a request and why
// (test/support/iam/evaluate.ts).
import { describe, expect, it } from 'vitest';
import { RoleEvaluator } from '../support/iam/evaluate.ts';
import { packagedStack, TEST_SECURITY_GROUP_IDS, TEST_SUBNET_IDS } from '../support/iam/packaged.ts';
import { iamRequests, type IamRequest, type SdkCall } from '../support/iam/requests.ts';
import type { RoleModel } from '../support/iam/template.ts';

const model = packagedStack();
const table = model.table.arn;
const ec2 = (resource: string) => `arn:aws:ec2:us-east-1:123456789012:${resource}`;

const call = (over: Partial<SdkCall> & Pick<SdkCall, 'service' | 'command' | 'input'>): SdkCall => ({
  function: 'annexCreate',
  stage: 'dev',
  ...over,
});

const find = (requests: IamRequest[], action: string, resource: string): IamRequest | undefined =>
  requests.find((r) => r.action === action && r.resource === resource);

describe('the IAM requests of an SDK call', () => {
  it('a lib-dynamodb transaction is one request per item, with its own action and leading key', () => {
    const requests = iamRequests(
      call({
        service: 'DynamoDB',
        command: 'TransactWriteCommand',
        input: {
          TransactItems: [
            { Put: { TableName: 'any', Item: { PK: 'ANNEX#ax-1', SK: 'META' } } },
            { Update: { TableName: 'any', Key: { PK: 'ANNEX#ax-1', SK: 'INSTANCE#i-1' } } },
            { Delete: { TableName: 'any', Key: { PK: 'OWNER#o', SK: 'NAME#n' } } },
            { ConditionCheck: { TableName: 'any', Key: { PK: 'POOL#p', SK: 'SHARED' } } },
          ],
        },
      }),
      model,
    );
    expect(requests).toEqual([
      { action: 'dynamodb:PutItem', resource: table, context: { 'dynamodb:LeadingKeys': ['ANNEX#ax-1'] } },
      { action: 'dynamodb:UpdateItem', resource: table, context: { 'dynamodb:LeadingKeys': ['ANNEX#ax-1'] } },
      { action: 'dynamodb:DeleteItem', resource: table, context: { 'dynamodb:LeadingKeys': ['OWNER#o'] } },
      {
        action: 'dynamodb:ConditionCheckItem',
        resource: table,
        context: { 'dynamodb:LeadingKeys': ['POOL#p'] },
      },
    ]);
  });

  it("a Query on an index is on the index's ARN, keyed by the index's partition key (low-level values too)", () => {
    const [request] = iamRequests(
      call({
        service: 'DynamoDB',
        command: 'QueryCommand',
        input: {
          TableName: 'any',
          IndexName: 'byOwner',
          KeyConditionExpression: '#o = :pk AND begins_with(ownerSk, :prefix)',
          ExpressionAttributeNames: { '#o': 'ownerPk' },
          ExpressionAttributeValues: { ':pk': { S: 'OWNER#alice' }, ':prefix': { S: 'ANNEX#' } },
        },
      }),
      model,
    );
    expect(request).toEqual({
      action: 'dynamodb:Query',
      resource: `${table}/index/byOwner`,
      context: { 'dynamodb:LeadingKeys': ['OWNER#alice'] },
    });
  });

  it("RunInstances is authorized on each resource it creates or uses, with tag-on-create and PassRole, the instance's profile and the interface's subnet", () => {
    const tags = [
      { Key: 'annex:stage', Value: 't1' },
      { Key: 'annex:id', Value: 'ax-1' },
    ];
    const requests = iamRequests(
      call({
        stage: 't1',
        service: 'EC2',
        command: 'RunInstancesCommand',
        input: {
          ImageId: 'ami-1',
          KeyName: 'mine',
          SubnetId: 'subnet-1',
          SecurityGroupIds: ['sg-1'],
          IamInstanceProfile: { Arn: 'arn:aws:iam::123456789012:instance-profile/annex-t1-instance' },
          TagSpecifications: [
            { ResourceType: 'instance', Tags: tags },
            { ResourceType: 'volume', Tags: tags },
          ],
        },
      }),
      model,
    );
    const onCreate = {
      'aws:RequestTag/annex:stage': 'dev',
      'aws:RequestTag/annex:id': 'ax-1',
      'aws:TagKeys': ['annex:stage', 'annex:id'],
    };
    expect(find(requests, 'ec2:RunInstances', ec2('instance/*'))?.context).toEqual({
      ...onCreate,
      'ec2:InstanceProfile': 'arn:aws:iam::123456789012:instance-profile/annex-dev-instance',
    });
    expect(find(requests, 'ec2:RunInstances', ec2('volume/*'))?.context).toEqual(onCreate);
    expect(find(requests, 'ec2:RunInstances', ec2('network-interface/*'))?.context).toEqual({
      'ec2:Subnet': ec2('subnet/subnet-1'),
    });
    for (const used of [ec2('subnet/subnet-1'), ec2('security-group/sg-1'), ec2('key-pair/mine')]) {
      expect(find(requests, 'ec2:RunInstances', used)).toBeDefined();
    }
    expect(find(requests, 'ec2:RunInstances', 'arn:aws:ec2:us-east-1::image/ami-1')).toBeDefined();
    expect(find(requests, 'ec2:CreateTags', ec2('instance/*'))?.context).toEqual({
      ...onCreate,
      'ec2:CreateAction': 'RunInstances',
    });
    expect(requests.find((r) => r.action === 'iam:PassRole')).toEqual({
      action: 'iam:PassRole',
      resource: model.roles.get('InstanceRole')?.arn,
      context: { 'iam:PassedToService': 'ec2.amazonaws.com' },
    });
  });

  it("a recording stack's configured subnets and groups are the deployed template's; any other id stays itself", () => {
    const requests = iamRequests(
      call({
        service: 'EC2',
        command: 'RunInstancesCommand',
        input: {
          SubnetId: 'subnet-local2',
          SecurityGroupIds: ['sg-local', 'sg-foreign'],
          IamInstanceProfile: { Name: 'annex-dev-instance' },
        },
        network: { subnetIds: ['subnet-local1', 'subnet-local2'], securityGroupIds: ['sg-local'] },
      }),
      model,
    );
    const [first, second] = TEST_SUBNET_IDS;
    expect(find(requests, 'ec2:RunInstances', ec2(`subnet/${String(second)}`))).toBeDefined();
    expect(find(requests, 'ec2:RunInstances', ec2(`subnet/${String(first)}`))).toBeUndefined();
    expect(
      find(requests, 'ec2:RunInstances', ec2(`security-group/${String(TEST_SECURITY_GROUP_IDS[0])}`)),
    ).toBeDefined();
    expect(find(requests, 'ec2:RunInstances', ec2('security-group/sg-foreign'))).toBeDefined();
    expect(find(requests, 'ec2:RunInstances', ec2('network-interface/*'))?.context).toEqual({
      'ec2:Subnet': ec2(`subnet/${String(second)}`),
    });
    expect(find(requests, 'ec2:RunInstances', ec2('instance/*'))?.context).toEqual({
      'ec2:InstanceProfile': 'arn:aws:iam::123456789012:instance-profile/annex-dev-instance',
    });
  });

  it('an instant CreateFleet is CreateFleet, and the RunInstances EC2 Fleet makes from the template (spot included)', () => {
    const template = {
      id: 'lt-1',
      tags: { 'annex:stage': 'dev', 'annex:id': 'ax-1' },
      data: {
        ImageId: 'ami-1',
        SecurityGroupIds: ['sg-1'],
        IamInstanceProfile: { Arn: 'arn:aws:iam::123456789012:instance-profile/annex-dev-instance' },
        TagSpecifications: [{ ResourceType: 'volume', Tags: [{ Key: 'annex:stage', Value: 'dev' }] }],
      },
    };
    const requests = iamRequests(
      call({
        service: 'EC2',
        command: 'CreateFleetCommand',
        input: {
          Type: 'instant',
          LaunchTemplateConfigs: [
            {
              LaunchTemplateSpecification: { LaunchTemplateName: 'annex-dev-ax-1' },
              Overrides: [{ SubnetId: 'subnet-1' }],
            },
          ],
          TargetCapacitySpecification: { TotalTargetCapacity: 2, SpotTargetCapacity: 2 },
          TagSpecifications: [
            { ResourceType: 'fleet', Tags: [{ Key: 'annex:stage', Value: 'dev' }] },
            { ResourceType: 'instance', Tags: [{ Key: 'annex:stage', Value: 'dev' }] },
          ],
        },
        facts: { launchTemplate: template },
      }),
      model,
    );
    expect(find(requests, 'ec2:CreateFleet', ec2('fleet/*'))?.context).toMatchObject({
      'aws:RequestTag/annex:stage': 'dev',
    });
    expect(find(requests, 'ec2:CreateFleet', ec2('launch-template/lt-1'))?.context).toMatchObject({
      'aws:ResourceTag/annex:stage': 'dev',
    });
    expect(find(requests, 'ec2:RunInstances', ec2('launch-template/lt-1'))).toBeDefined();
    expect(find(requests, 'ec2:RunInstances', ec2('volume/*'))?.context).toMatchObject({
      'aws:RequestTag/annex:stage': 'dev',
    });
    expect(find(requests, 'ec2:RunInstances', ec2('spot-instances-request/*'))).toBeDefined();
    expect(find(requests, 'ec2:CreateTags', ec2('fleet/*'))?.context).toMatchObject({
      'ec2:CreateAction': 'CreateFleet',
    });
    expect(requests.filter((r) => r.action === 'iam:PassRole')).toHaveLength(1);
  });

  it('terminating and retagging are on each instance, with the tags it has (unknown instances: not authorized at all)', () => {
    const requests = iamRequests(
      call({
        function: 'reaper',
        service: 'EC2',
        command: 'CreateTagsCommand',
        input: { Resources: ['i-1', 'i-gone'], Tags: [{ Key: 'annex:expires-at', Value: 'x' }] },
        facts: { instanceTags: { 'i-1': { 'annex:stage': 'dev' } } },
      }),
      model,
    );
    expect(requests).toEqual([
      {
        action: 'ec2:CreateTags',
        resource: ec2('instance/i-1'),
        context: {
          'aws:ResourceTag/annex:stage': 'dev',
          'ec2:ResourceTag/annex:stage': 'dev',
          'aws:RequestTag/annex:expires-at': 'x',
          'aws:TagKeys': ['annex:expires-at'],
        },
      },
    ]);
  });

  it('PutParameter with tags also tags; under a customer key it encrypts with it; names move to the template stage', () => {
    const requests = iamRequests(
      call({
        stage: 'it9',
        service: 'SSM',
        command: 'PutParameterCommand',
        input: {
          Name: '/annex/it9/annexes/ax-1/pool-credentials',
          Type: 'SecureString',
          KeyId: 'alias/annex',
          Tags: [{ Key: 'annex:id', Value: 'ax-1' }],
        },
      }),
      model,
    );
    const arn = 'arn:aws:ssm:us-east-1:123456789012:parameter/annex/dev/annexes/ax-1/pool-credentials';
    expect(requests.map((r) => [r.action, r.resource])).toEqual([
      ['ssm:PutParameter', arn],
      ['ssm:AddTagsToResource', arn],
      ['kms:Encrypt', 'arn:aws:kms:us-east-1:123456789012:alias/annex'],
    ]);
  });

  it("CreateSchedule passes the target's role to the Scheduler", () => {
    const requests = iamRequests(
      call({
        stage: 'it9',
        service: 'Scheduler',
        command: 'CreateScheduleCommand',
        input: {
          Name: 'ax-1-100',
          GroupName: 'annex-it9',
          Target: {
            Arn: 'arn:aws:lambda:us-east-1:123456789012:function:annex-it9-expire',
            RoleArn: 'arn:aws:iam::123456789012:role/annex-it9-scheduler',
          },
        },
      }),
      model,
    );
    expect(requests).toEqual([
      {
        action: 'scheduler:CreateSchedule',
        resource: 'arn:aws:scheduler:us-east-1:123456789012:schedule/annex-dev/ax-1-100',
        context: {},
      },
      {
        action: 'iam:PassRole',
        resource: model.roles.get('SchedulerInvokeRole')?.arn,
        context: { 'iam:PassedToService': 'scheduler.amazonaws.com' },
      },
    ]);
  });

  it('a call the mapping does not know fails loudly, naming it', () => {
    expect(() =>
      iamRequests(call({ service: 'EC2', command: 'StopInstancesCommand', input: {} }), model),
    ).toThrow(/no IAM mapping for EC2 StopInstances/);
  });
});

describe('the simulator on a fixed role', () => {
  const role: RoleModel = {
    logicalId: 'FixedRole',
    name: 'fixed',
    arn: 'arn:aws:iam::123456789012:role/fixed',
    policies: [
      {
        name: 'fixed',
        policy: {
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Action: 'ec2:TerminateInstances',
              Resource: '*',
              Condition: { StringEquals: { 'aws:ResourceTag/annex:stage': 'dev' } },
            },
            {
              Effect: 'Allow',
              Action: 'ssm:GetParameter',
              Resource: 'arn:aws:ssm:us-east-1:123456789012:parameter/a/*',
            },
          ],
        },
      },
    ],
  };
  const evaluator = new RoleEvaluator(model);
  const terminate = (stage?: string): IamRequest => ({
    action: 'ec2:TerminateInstances',
    resource: ec2('instance/i-1'),
    context: stage === undefined ? {} : { 'aws:ResourceTag/annex:stage': stage },
  });

  it('allows what a statement allows, under its condition', async () => {
    expect((await evaluator.evaluate(role, terminate('dev'))).decision).toBe('Allowed');
  });

  it('denies when the condition fails or its key is absent, and says which statement and why', async () => {
    const other = await evaluator.evaluate(role, terminate('prod'));
    expect(other.decision).toBe('ImplicitlyDenied');
    expect(other.explanation).toContain('missing statement in FixedRole');
    expect(other.explanation).toMatch(/StringEquals aws:ResourceTag\/annex:stage does not hold/);
    const untagged = await evaluator.evaluate(role, terminate());
    expect(untagged.decision).toBe('ImplicitlyDenied');
    expect(untagged.explanation).toContain('aws:ResourceTag/annex:stage is absent from the request');
  });

  it('denies another resource or action, naming the statement that covers other resources', async () => {
    const elsewhere = await evaluator.evaluate(role, {
      action: 'ssm:GetParameter',
      resource: 'arn:aws:ssm:us-east-1:123456789012:parameter/b/secret',
      context: {},
    });
    expect(elsewhere.decision).toBe('ImplicitlyDenied');
    expect(elsewhere.explanation).toContain('parameter/a/*');
    const unknown = await evaluator.evaluate(role, {
      action: 'ec2:RunInstances',
      resource: ec2('instance/*'),
      context: {},
    });
    expect(unknown.explanation).toContain('no statement of FixedRole allows ec2:RunInstances');
  });
});
