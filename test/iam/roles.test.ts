// The roles of the packaged template on explicit call lists: the calls the integration suites never
// make (failure paths, key pairs, the sweep's repairs, Slack's notices), which each function's role
// must allow; and what each role must NOT allow: read-only functions cannot launch, terminate or
// read pool secrets; enforcers cannot touch instances of another stage or untagged ones; the
// instance role can call only the instance routes.
import { describe, expect, it } from 'vitest';
import { RoleEvaluator } from '../support/iam/evaluate.ts';
import { packagedStack, TEST_API_ID } from '../support/iam/packaged.ts';
import { iamRequests, type IamRequest, type SdkCall } from '../support/iam/requests.ts';
import { readTemplate, type RoleModel } from '../support/iam/template.ts';
import { templatePath } from '../support/package.ts';

const model = packagedStack();
const evaluator = new RoleEvaluator(model);
const ACCOUNT = model.account;
const STAGE = model.functions.get('annexCreate')?.environment.ANNEX_STAGE ?? '';
const OTHER = `${STAGE}other`;

type Call = Omit<SdkCall, 'function' | 'stage'>;

const annexTags = (stage: string | undefined) => [
  ...(stage === undefined ? [] : [{ Key: 'annex:stage', Value: stage }]),
  { Key: 'annex:id', Value: 'ax-0123456789abcdef0123' },
];
const tagObject = (stage: string | undefined): Record<string, string> =>
  Object.fromEntries(annexTags(stage).map((t) => [t.Key, t.Value]));

const profileArn = `arn:aws:iam::${ACCOUNT}:instance-profile/annex-${STAGE}-instance`;
const schedulerRoleArn = model.roles.get('SchedulerInvokeRole')?.arn ?? '';

const calls = {
  runInstances: (stage: string | undefined, over: Record<string, unknown> = {}): Call => ({
    service: 'EC2',
    command: 'RunInstancesCommand',
    input: {
      ImageId: 'ami-0abcdef0123456789',
      SubnetId: 'subnet-0123456789abcdef0',
      SecurityGroupIds: ['sg-0123456789abcdef0'],
      IamInstanceProfile: { Arn: profileArn },
      TagSpecifications: [
        { ResourceType: 'instance', Tags: annexTags(stage) },
        { ResourceType: 'volume', Tags: annexTags(stage) },
      ],
      ...over,
    },
  }),
  createFleet: (stage: string | undefined): Call => ({
    service: 'EC2',
    command: 'CreateFleetCommand',
    input: {
      Type: 'instant',
      LaunchTemplateConfigs: [
        {
          LaunchTemplateSpecification: { LaunchTemplateName: `annex-${STAGE}-ax-1` },
          Overrides: [{ SubnetId: 'subnet-0123456789abcdef0' }],
        },
      ],
      TargetCapacitySpecification: { TotalTargetCapacity: 1, SpotTargetCapacity: 1 },
      TagSpecifications: [
        { ResourceType: 'fleet', Tags: annexTags(stage) },
        { ResourceType: 'instance', Tags: annexTags(stage) },
      ],
    },
    facts: {
      launchTemplate: {
        id: 'lt-0123456789abcdef0',
        tags: tagObject(stage),
        data: {
          ImageId: 'ami-0abcdef0123456789',
          SecurityGroupIds: ['sg-0123456789abcdef0'],
          IamInstanceProfile: { Arn: profileArn },
          TagSpecifications: [{ ResourceType: 'volume', Tags: annexTags(stage) }],
        },
      },
    },
  }),
  terminate: (stage: string | undefined): Call => ({
    service: 'EC2',
    command: 'TerminateInstancesCommand',
    input: { InstanceIds: ['i-0123456789abcdef0'] },
    facts: { instanceTags: { 'i-0123456789abcdef0': stage === undefined ? {} : tagObject(stage) } },
  }),
  retag: (stage: string | undefined): Call => ({
    service: 'EC2',
    command: 'CreateTagsCommand',
    input: {
      Resources: ['i-0123456789abcdef0'],
      Tags: [{ Key: 'annex:expires-at', Value: '2026-12-02T23:00:00.000Z' }],
    },
    facts: { instanceTags: { 'i-0123456789abcdef0': stage === undefined ? {} : tagObject(stage) } },
  }),
  deleteTemplate: (stage: string | undefined): Call => ({
    service: 'EC2',
    command: 'DeleteLaunchTemplateCommand',
    input: { LaunchTemplateName: `annex-${STAGE}-ax-1` },
    facts: {
      launchTemplate: {
        id: 'lt-0123456789abcdef0',
        tags: stage === undefined ? {} : tagObject(stage),
        data: {},
      },
    },
  }),
  parameter: (command: 'GetParameter' | 'DeleteParameter', name: string): Call => ({
    service: 'SSM',
    command: `${command}Command`,
    input: { Name: name, ...(command === 'GetParameter' ? { WithDecryption: true } : {}) },
  }),
  item: (command: string, pk: string, sk = 'META'): Call => ({
    service: 'DynamoDB',
    command,
    input:
      command === 'PutCommand'
        ? { TableName: model.table.name, Item: { PK: pk, SK: sk } }
        : { TableName: model.table.name, Key: { PK: pk, SK: sk } },
  }),
  query: (pk: string): Call => ({
    service: 'DynamoDB',
    command: 'QueryCommand',
    input: {
      TableName: model.table.name,
      KeyConditionExpression: 'PK = :pk',
      ExpressionAttributeValues: { ':pk': pk },
    },
  }),
  schedule: (
    command: 'CreateSchedule' | 'DeleteSchedule',
    group: string,
    roleArn = schedulerRoleArn,
  ): Call => ({
    service: 'Scheduler',
    command: `${command}Command`,
    input: {
      Name: 'ax-0123456789abcdef0123-1796250421',
      GroupName: group,
      ...(command === 'CreateSchedule'
        ? {
            Target: {
              Arn: `arn:aws:lambda:us-east-1:${ACCOUNT}:function:annex-${STAGE}-expire`,
              RoleArn: roleArn,
            },
          }
        : {}),
    },
  }),
  invoke: (functionName: string): Call => ({
    service: 'Lambda',
    command: 'InvokeCommand',
    input: { FunctionName: functionName, InvocationType: 'Event' },
  }),
};

const poolCredential = `/annex/${STAGE}/pools/shared/default/credential`;
const annexCredential = `/annex/${STAGE}/annexes/ax-0123456789abcdef0123/pool-credentials`;
const group = `annex-${STAGE}`;

const requestsOf = (fn: string, call: Call): IamRequest[] =>
  iamRequests({ ...call, function: fn, stage: STAGE }, model);

const roleOf = (fn: string): RoleModel => {
  const role = model.functions.get(fn)?.role;
  if (role === undefined) throw new Error(`the package has no function ${fn}`);
  return role;
};

/** Every request the call makes, with the role's verdict on it. */
const verdicts = async (role: RoleModel, requests: IamRequest[]) =>
  Promise.all(requests.map(async (r) => ({ request: r, ...(await evaluator.evaluate(role, r)) })));

const expectAllowed = async (fn: string, call: Call) => {
  const denied = (await verdicts(roleOf(fn), requestsOf(fn, call))).filter((v) => v.decision !== 'Allowed');
  expect(denied.map((d) => `${d.request.action} on ${d.request.resource}: ${d.explanation}`)).toEqual([]);
};

const expectDenied = async (role: RoleModel, requests: IamRequest[]) => {
  const results = await verdicts(role, requests);
  expect(
    results.some((v) => v.decision !== 'Allowed'),
    JSON.stringify(requests),
  ).toBe(true);
};

const functionsWith = (...roles: string[]): string[] =>
  [...model.functions.values()].filter((f) => roles.includes(f.role.logicalId)).map((f) => f.key);

describe('calls the suites never make are allowed by their own role', () => {
  const cases: [string, string, Call][] = [
    ['annexCreate', 'launches with a key pair', calls.runInstances(STAGE, { KeyName: 'my-key' })],
    ['annexCreate', 'ends a failed launch: terminates', calls.terminate(STAGE)],
    ['annexCreate', 'ends a failed launch: deletes the template', calls.deleteTemplate(STAGE)],
    [
      'annexCreate',
      'ends a failed launch: deletes the credential copy',
      calls.parameter('DeleteParameter', annexCredential),
    ],
    ['annexCreate', 'ends a failed launch: deletes the schedule', calls.schedule('DeleteSchedule', group)],
    ['ec2Events', 'replaces on demand through RunInstances', calls.runInstances(STAGE)],
    ['ec2Events', 'terminates what a batch launched after its annex ended', calls.terminate(STAGE)],
    ['expire', 'schedules an extended lease again', calls.schedule('CreateSchedule', group)],
    ['expire', "deletes an ended fleet annex's template", calls.deleteTemplate(STAGE)],
    ['reaper', 'retags a lease it repaired', calls.retag(STAGE)],
    ['reaper', 'deletes a leaked template', calls.deleteTemplate(STAGE)],
    ['reaper', 'recreates a missing schedule', calls.schedule('CreateSchedule', group)],
    ['reaper', 'deletes a leaked schedule', calls.schedule('DeleteSchedule', group)],
    ['reaper', 'deletes a leaked credential copy', calls.parameter('DeleteParameter', annexCredential)],
    [
      'reaper',
      'ends a lease in one transaction (lease, event, name claim)',
      {
        service: 'DynamoDB',
        command: 'TransactWriteCommand',
        input: {
          TransactItems: [
            { Update: { TableName: model.table.name, Key: { PK: 'ANNEX#ax-1', SK: 'META' } } },
            { Put: { TableName: model.table.name, Item: { PK: 'ANNEX#ax-1', SK: 'EVENT#t#1' } } },
            { Delete: { TableName: model.table.name, Key: { PK: 'OWNER#o', SK: 'NAME#n' } } },
          ],
        },
      },
    ],
    [
      'slackNotify',
      'reads the bot token',
      calls.parameter('GetParameter', `/annex/${STAGE}/slack/bot-token`),
    ],
    ['slackNotify', 'reads a watched annex', calls.item('GetCommand', 'ANNEX#ax-1')],
    ['slackNotify', "reads a watched annex's instances", calls.query('ANNEX#ax-1')],
    ['slackNotify', 'marks a watch warned', calls.item('UpdateCommand', 'SLACKWATCH', 'ANNEX#ax-1')],
    ['slackNotify', 'drops a watch', calls.item('DeleteCommand', 'SLACKWATCH', 'ANNEX#ax-1')],
    [
      'slackInteractions',
      'reads the signing secret',
      calls.parameter('GetParameter', `/annex/${STAGE}/slack/signing-secret`),
    ],
    ['slackInteractions', 'hands the click to the worker', calls.invoke(`annex-${STAGE}-slackWorker`)],
  ];
  it.each(cases)('%s %s', async (fn, _what, call) => {
    await expectAllowed(fn, call);
  });
});

describe('read-only functions cannot launch, terminate, write or read secrets', () => {
  const readOnly = functionsWith('ReadOnlyRole');
  it.each(readOnly)('%s', async (fn) => {
    const role = roleOf(fn);
    expect(readOnly.length).toBeGreaterThan(0);
    for (const call of [
      calls.runInstances(STAGE),
      calls.createFleet(STAGE),
      calls.terminate(STAGE),
      calls.retag(STAGE),
      calls.parameter('GetParameter', poolCredential),
      calls.parameter('GetParameter', annexCredential),
      calls.item('PutCommand', 'ANNEX#ax-1'),
      calls.item('UpdateCommand', 'ANNEX#ax-1'),
      calls.item('DeleteCommand', 'ANNEX#ax-1'),
      calls.schedule('DeleteSchedule', group),
    ]) {
      await expectDenied(role, requestsOf(fn, call));
    }
  });
});

describe("only the functions that copy a pool's credential may read it", () => {
  const readers = new Set(['annexCreate', 'annexAddNodes', 'slackWorker']);
  const others = [...model.functions.keys()].filter((f) => !readers.has(f));
  it.each(others)('%s cannot', async (fn) => {
    await expectDenied(roleOf(fn), requestsOf(fn, calls.parameter('GetParameter', poolCredential)));
  });
  it.each([...readers])('%s can', async (fn) => {
    await expectAllowed(fn, calls.parameter('GetParameter', poolCredential));
  });
});

describe("enforcers touch only their own stage's instances and templates", () => {
  const terminators = [...model.functions.values()]
    .filter((f) => f.role.policies.some((p) => JSON.stringify(p.policy).includes('ec2:TerminateInstances')))
    .map((f) => f.key);
  const retaggers = functionsWith('ExtendRole', 'EnforceRole', 'SlackWorkerRole');
  const templateDeleters = [...model.functions.values()]
    .filter((f) => f.role.policies.some((p) => JSON.stringify(p.policy).includes('ec2:DeleteLaunchTemplate')))
    .map((f) => f.key);

  it.each(terminators)('%s terminates its stage, not another stage nor untagged instances', async (fn) => {
    await expectAllowed(fn, calls.terminate(STAGE));
    await expectDenied(roleOf(fn), requestsOf(fn, calls.terminate(OTHER)));
    await expectDenied(roleOf(fn), requestsOf(fn, calls.terminate(undefined)));
  });

  it.each(retaggers)('%s retags its stage, not another stage nor untagged instances', async (fn) => {
    await expectAllowed(fn, calls.retag(STAGE));
    await expectDenied(roleOf(fn), requestsOf(fn, calls.retag(OTHER)));
    await expectDenied(roleOf(fn), requestsOf(fn, calls.retag(undefined)));
  });

  it.each(templateDeleters)("%s deletes its stage's templates only", async (fn) => {
    await expectAllowed(fn, calls.deleteTemplate(STAGE));
    await expectDenied(roleOf(fn), requestsOf(fn, calls.deleteTemplate(OTHER)));
    await expectDenied(roleOf(fn), requestsOf(fn, calls.deleteTemplate(undefined)));
  });

  it('every enforcer is among them', () => {
    for (const fn of ['annexDelete', 'expire', 'reaper', 'ec2Events']) expect(terminators).toContain(fn);
  });
});

describe('launchers launch only tagged for their stage, with the instance role, into their schedule group', () => {
  const launchers = functionsWith('LaunchRole', 'Ec2EventsRole', 'SlackWorkerRole');
  const schedulers = [...model.functions.values()]
    .filter((f) => f.role.policies.some((p) => JSON.stringify(p.policy).includes('scheduler:CreateSchedule')))
    .map((f) => f.key);

  it.each(launchers)('%s', async (fn) => {
    const role = roleOf(fn);
    await expectAllowed(fn, calls.runInstances(STAGE));
    await expectAllowed(fn, calls.createFleet(STAGE));
    await expectDenied(role, requestsOf(fn, calls.runInstances(OTHER)));
    await expectDenied(role, requestsOf(fn, calls.runInstances(undefined)));
    await expectDenied(role, requestsOf(fn, calls.createFleet(OTHER)));
    await expectDenied(role, requestsOf(fn, calls.createFleet(undefined)));
    // Another profile's role, or the instance role passed to anything but EC2.
    await expectDenied(
      role,
      requestsOf(
        fn,
        calls.runInstances(STAGE, {
          IamInstanceProfile: { Arn: `arn:aws:iam::${ACCOUNT}:instance-profile/admin` },
        }),
      ),
    );
    await expectDenied(role, [
      {
        action: 'iam:PassRole',
        resource: model.roles.get('InstanceRole')?.arn ?? '',
        context: { 'iam:PassedToService': 'lambda.amazonaws.com' },
      },
    ]);
  });

  it.each(schedulers)(
    "%s schedules only in its stage's group, passing only the scheduler's role",
    async (fn) => {
      const role = roleOf(fn);
      await expectAllowed(fn, calls.schedule('CreateSchedule', group));
      await expectDenied(role, requestsOf(fn, calls.schedule('CreateSchedule', `annex-${OTHER}`)));
      await expectDenied(
        role,
        requestsOf(fn, calls.schedule('CreateSchedule', group, model.roles.get('LaunchRole')?.arn)),
      );
    },
  );
});

describe('the instance role can call only the instance routes', () => {
  const role = model.roles.get('InstanceRole') as RoleModel;
  const routes = Object.values(readTemplate(templatePath).Resources)
    .filter((r) => r.Type === 'AWS::ApiGatewayV2::Route')
    .map((r) => String(r.Properties?.RouteKey));
  const invoke = (routeKey: string): IamRequest => {
    const [method, path] = routeKey.split(' ') as [string, string];
    return {
      action: 'execute-api:Invoke',
      resource: `arn:aws:execute-api:${model.region}:${ACCOUNT}:${TEST_API_ID}/$default/${method}${path.replace(/\{[^}]+\}/g, 'x')}`,
      context: {},
    };
  };
  const instanceRoutes = routes.filter((r) => r.startsWith('POST /v1/instances/self/'));

  it('the template has the three instance routes and others', () => {
    expect(instanceRoutes.sort()).toEqual([
      'POST /v1/instances/self/bootstrap',
      'POST /v1/instances/self/heartbeat',
      'POST /v1/instances/self/interruption',
    ]);
    expect(routes.length).toBeGreaterThan(instanceRoutes.length);
  });

  it.each(routes)('%s', async (routeKey) => {
    const { decision } = await evaluator.evaluate(role, invoke(routeKey));
    expect(decision).toBe(instanceRoutes.includes(routeKey) ? 'Allowed' : 'ImplicitlyDenied');
  });

  it('has no SSM, EC2 or DynamoDB right of its own', async () => {
    await expectDenied(role, [
      {
        action: 'ssm:GetParameter',
        resource: `arn:aws:ssm:${model.region}:${ACCOUNT}:parameter${annexCredential}`,
        context: {},
      },
    ]);
    for (const action of ['ec2:DescribeInstances', 'ec2:TerminateInstances']) {
      await expectDenied(role, [
        {
          action,
          resource:
            action === 'ec2:DescribeInstances' ? '*' : `arn:aws:ec2:${model.region}:${ACCOUNT}:instance/i-1`,
          context: {},
        },
      ]);
    }
    await expectDenied(role, [{ action: 'dynamodb:GetItem', resource: model.table.arn, context: {} }]);
  });
});

describe('the narrow roles stay narrow', () => {
  it("the scheduler's role invokes the expire function only", async () => {
    const role = model.roles.get('SchedulerInvokeRole') as RoleModel;
    const fn = (key: string): IamRequest => ({
      action: 'lambda:InvokeFunction',
      resource: `arn:aws:lambda:${model.region}:${ACCOUNT}:function:annex-${STAGE}-${key}`,
      context: {},
    });
    expect((await evaluator.evaluate(role, fn('expire'))).decision).toBe('Allowed');
    await expectDenied(role, [fn('reaper')]);
    await expectDenied(role, [fn('annexCreate')]);
  });

  it('the Slack routes read only Slack items, the signing secret, and invoke only the worker', async () => {
    for (const fn of ['slackCommands', 'slackInteractions']) {
      const role = roleOf(fn);
      await expectDenied(role, requestsOf(fn, calls.item('GetCommand', 'ANNEX#ax-1')));
      await expectDenied(role, requestsOf(fn, calls.item('PutCommand', 'ANNEX#ax-1')));
      await expectDenied(
        role,
        requestsOf(fn, calls.parameter('GetParameter', `/annex/${STAGE}/slack/bot-token`)),
      );
      await expectDenied(role, requestsOf(fn, calls.invoke(`annex-${STAGE}-annexCreate`)));
    }
  });

  it('Slack user mappings touch only mapping items; notices write only their watch items', async () => {
    for (const fn of functionsWith('SlackUsersRole')) {
      await expectAllowed(fn, calls.item('GetCommand', 'SLACKUSER#T0', 'USER#U0'));
      await expectDenied(roleOf(fn), requestsOf(fn, calls.item('GetCommand', 'ANNEX#ax-1')));
      await expectDenied(roleOf(fn), requestsOf(fn, calls.item('PutCommand', 'POOL#p', 'SHARED')));
    }
    await expectDenied(
      roleOf('slackNotify'),
      requestsOf('slackNotify', calls.item('UpdateCommand', 'ANNEX#ax-1')),
    );
    await expectDenied(
      roleOf('slackNotify'),
      requestsOf('slackNotify', calls.item('PutCommand', 'SLACKWATCH', 'ANNEX#ax-1')),
    );
  });

  it("the instance functions read only the annex's copy of a credential (bootstrap, and heartbeat to renew an IDTOKEN) or none", async () => {
    for (const fn of ['instanceBootstrap', 'instanceHeartbeat']) {
      await expectAllowed(fn, calls.parameter('GetParameter', annexCredential));
      await expectDenied(roleOf(fn), requestsOf(fn, calls.parameter('GetParameter', poolCredential)));
    }
    await expectDenied(
      roleOf('instanceInterruption'),
      requestsOf('instanceInterruption', calls.parameter('GetParameter', annexCredential)),
    );
  });

  it('extension events go to annex partitions only', async () => {
    await expectAllowed('annexExtend', calls.item('PutCommand', 'ANNEX#ax-1', 'EVENT#t#1'));
    await expectDenied(
      roleOf('annexExtend'),
      requestsOf('annexExtend', calls.item('PutCommand', 'POOL#p', 'SHARED')),
    );
  });
});
