/**
 * What AWS authorizes for one SDK call: the IAM requests (action, resource ARN, request context)
 * it evaluates against the caller's policies. Most calls are one `service:Command` on one
 * resource; the exceptions are modelled here:
 * - lib-dynamodb commands are the table's actions (GetCommand → dynamodb:GetItem), a transaction
 *   is one request per item (Put/Update/Delete/ConditionCheck → PutItem/UpdateItem/DeleteItem/
 *   ConditionCheckItem), a Query on an index is on the index's ARN, and `dynamodb:LeadingKeys`
 *   is the partition key value(s) the call touches;
 * - RunInstances is authorized once per resource it creates or uses (instance, volume, network
 *   interface: new, with the tags requested for them; subnet, security group, image, key pair,
 *   launch template: existing, with their tags), plus ec2:CreateTags (`ec2:CreateAction`) for each
 *   resource tagged on creation and iam:PassRole for the instance profile's role; the instance
 *   carries `ec2:InstanceProfile` (the profile's ARN) and the network interface `ec2:Subnet`;
 * - an instant CreateFleet is CreateFleet on the fleet and what it uses, and the RunInstances that
 *   EC2 Fleet then makes with the caller's rights, from the launch template's data;
 * - SSM PutParameter with tags also needs ssm:AddTagsToResource; a SecureString under a customer
 *   key needs kms:Encrypt on it (under the account's default key, aws/ssm, no KMS right at all);
 * - Scheduler CreateSchedule passes its target's role (iam:PassRole to scheduler.amazonaws.com).
 *
 * A call is recorded under the stage of the local stack that made it; its names are translated to
 * the packaged template's stage (and its one lease table) before they are evaluated, and the
 * subnets and security groups that stack was configured with to the ones the template is deployed
 * with (LaunchSubnetIds, LaunchSecurityGroupIds): any other id stays as it is, and is refused.
 */
import type { StackModel } from './template.ts';

export interface IamRequest {
  action: string;
  resource: string;
  context: Record<string, string | string[]>;
}

/** Facts about existing resources that AWS knows when it authorizes the call. */
export interface CallFacts {
  /** Tags of the instances the call names, by instance id (absent: no such instance). */
  instanceTags?: Record<string, Record<string, string>>;
  /** The launch template the call names (absent: no such template). */
  launchTemplate?: {
    id: string;
    tags: Record<string, string>;
    data: Record<string, unknown>;
  };
  /** Where a launch went (from EC2's answer): subnets and security groups of its instances. */
  launched?: { subnetIds: string[]; securityGroupIds: string[] };
}

export interface SdkCall {
  /** The function's key in serverless.yml, e.g. `annexCreate`. */
  function: string;
  /** The stage of the (local) stack that made the call. */
  stage: string;
  /** The client's service id: DynamoDB, EC2, SSM, Scheduler, Lambda. */
  service: string;
  /** The command's class name: `PutCommand` (lib-dynamodb), `RunInstancesCommand`, ... */
  command: string;
  input: Record<string, unknown>;
  facts?: CallFacts;
  /** The subnets and security groups the stack that made the call was configured to launch into. */
  network?: { subnetIds: string[]; securityGroupIds: string[] };
}

type Input = Record<string, unknown>;
type Tag = { Key?: string; Value?: string };

const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const obj = (v: unknown): Input => (typeof v === 'object' && v !== null ? (v as Input) : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** A DynamoDB value as lib-dynamodb takes it, or as the low-level client does ({ S: … }). */
const plain = (v: unknown): string | undefined => {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  const o = obj(v);
  return str(o.S) ?? str(o.N) ?? str(o.B);
};

/** Keeps only what the IAM mapping reads: never a value, user data, payload or item body. */
export function projectInput(
  service: string,
  command: string,
  input: Input,
  keyAttributes: ReadonlySet<string>,
): Input {
  const pick = (o: unknown, fields: string[]): Input =>
    Object.fromEntries(fields.filter((f) => obj(o)[f] !== undefined).map((f) => [f, obj(o)[f]]));
  const keysOf = (item: unknown): Input =>
    Object.fromEntries(Object.entries(obj(item)).filter(([k]) => keyAttributes.has(k)));
  const dynamoItem = (i: unknown): Input => {
    const o = obj(i);
    const { ExpressionAttributeValues: values } = o;
    const condition = str(o.KeyConditionExpression) ?? '';
    return {
      ...pick(o, ['TableName', 'IndexName', 'KeyConditionExpression', 'ExpressionAttributeNames']),
      ...(o.Key === undefined ? {} : { Key: keysOf(o.Key) }),
      ...(o.Item === undefined ? {} : { Item: keysOf(o.Item) }),
      ...(values === undefined || condition === ''
        ? {}
        : {
            ExpressionAttributeValues: Object.fromEntries(
              Object.entries(obj(values)).filter(([k]) => condition.includes(k)),
            ),
          }),
    };
  };
  switch (service) {
    case 'DynamoDB':
      if (input.TransactItems !== undefined) {
        return {
          TransactItems: asArray(input.TransactItems as Input[]).map((item) =>
            Object.fromEntries(Object.entries(item).map(([kind, op]) => [kind, dynamoItem(op)])),
          ),
        };
      }
      if (input.RequestItems !== undefined) {
        return {
          RequestItems: Object.fromEntries(
            Object.entries(obj(input.RequestItems)).map(([table, requests]) => [
              table,
              asArray(requests as Input[]).map((r) =>
                Object.fromEntries(Object.entries(r).map(([kind, op]) => [kind, dynamoItem(op)])),
              ),
            ]),
          ),
        };
      }
      return dynamoItem(input);
    case 'EC2': {
      const launchData = (d: unknown): Input =>
        pick(d, [
          'ImageId',
          'KeyName',
          'SecurityGroupIds',
          'IamInstanceProfile',
          'TagSpecifications',
          'InstanceMarketOptions',
        ]);
      return {
        ...pick(input, [
          'ImageId',
          'KeyName',
          'SubnetId',
          'SecurityGroupIds',
          'IamInstanceProfile',
          'InstanceMarketOptions',
          'LaunchTemplate',
          'TagSpecifications',
          'TargetCapacitySpecification',
          'Type',
          'InstanceIds',
          'Resources',
          'Tags',
          'LaunchTemplateName',
          'LaunchTemplateId',
        ]),
        ...(input.LaunchTemplateData === undefined
          ? {}
          : { LaunchTemplateData: launchData(input.LaunchTemplateData) }),
        ...(input.LaunchTemplateConfigs === undefined
          ? {}
          : {
              LaunchTemplateConfigs: asArray(input.LaunchTemplateConfigs as Input[]).map((c) => ({
                LaunchTemplateSpecification: c.LaunchTemplateSpecification,
                Overrides: asArray(c.Overrides as Input[]).map((o) =>
                  pick(o, ['SubnetId', 'AvailabilityZone']),
                ),
              })),
            }),
      };
    }
    case 'SSM':
      return pick(input, ['Name', 'Type', 'KeyId', 'Tags', 'ResourceType', 'ResourceId', 'WithDecryption']);
    case 'Scheduler':
      return {
        ...pick(input, ['Name', 'GroupName']),
        ...(input.Target === undefined ? {} : { Target: pick(input.Target, ['Arn', 'RoleArn']) }),
      };
    case 'Lambda':
      return pick(input, ['FunctionName', 'InvocationType', 'Qualifier']);
    default:
      return {};
  }
}

/** The stage of the packaged template (every function carries it in ANNEX_STAGE). */
export const templateStage = (model: StackModel): string => {
  const stage = [...model.functions.values()][0]?.environment.ANNEX_STAGE;
  if (stage === undefined) throw new Error('template: no function has ANNEX_STAGE');
  return stage;
};

/** Maps one recorded SDK call to the IAM requests AWS would evaluate for it. */
export function iamRequests(call: SdkCall, model: StackModel): IamRequest[] {
  const { account, region, partition } = model;
  const stage = templateStage(model);
  // The local stack names its things as the template does, under its own stage: `annex-<stage>`
  // (schedule group), `annex-<stage>-…` (functions, templates, roles), `/annex/<stage>/…` (SSM).
  const stageInName = new RegExp(`(annex[-/])${call.stage.replace(/[^A-Za-z0-9]/g, '\\$&')}(?=$|[-/])`, 'g');
  const here = (s: string): string => (call.stage === stage ? s : s.replace(stageInName, `$1${stage}`));
  const tagMap = (tags: unknown): Record<string, string> =>
    Object.fromEntries(
      asArray(tags as Tag[]).map((t) => {
        const key = t.Key ?? '';
        const value = t.Value ?? '';
        return [key, key === 'annex:stage' && value === call.stage ? stage : value];
      }),
    );
  const requestTags = (tags: Record<string, string>): Record<string, string | string[]> =>
    Object.keys(tags).length === 0
      ? {}
      : {
          ...Object.fromEntries(Object.entries(tags).map(([k, v]) => [`aws:RequestTag/${k}`, v])),
          'aws:TagKeys': Object.keys(tags),
        };
  const resourceTags = (tags: Record<string, string>, service: string): Record<string, string> =>
    Object.fromEntries(
      Object.entries(tags).flatMap(([k, v]) => {
        const value = k === 'annex:stage' && v === call.stage ? stage : v;
        return [
          [`aws:ResourceTag/${k}`, value],
          [`${service}:ResourceTag/${k}`, value],
        ];
      }),
    );
  const input = call.input;
  const command = call.command.replace(/Command$/, '');
  // The n-th configured subnet (group) of the recording stack is the template's n-th.
  const configured = (recorded: string[] | undefined, parameter: string) => {
    const deployed = asArray(model.parameters.get(parameter));
    return (id: string): string => {
      const n = recorded?.indexOf(id) ?? -1;
      return n < 0 || deployed.length === 0 ? id : (deployed[n % deployed.length] ?? id);
    };
  };

  switch (call.service) {
    case 'DynamoDB':
      return dynamoRequests(command, input, model);
    case 'EC2':
      return ec2Requests(command, input, call.facts ?? {}, {
        ec2Arn: (resource: string, withAccount = true) =>
          `arn:${partition}:ec2:${region}:${withAccount ? account : ''}:${resource}`,
        tagMap,
        requestTags,
        resourceTags: (tags) => resourceTags(tags, 'ec2'),
        passRole: (profileArn: string) => passRoleForProfile(here(profileArn), model),
        profile: (p: Input) => {
          const arn =
            str(p.Arn) ??
            (str(p.Name) === undefined
              ? undefined
              : `arn:${partition}:iam::${account}:instance-profile/${String(p.Name)}`);
          return arn === undefined ? undefined : here(arn);
        },
        subnet: configured(call.network?.subnetIds, 'LaunchSubnetIds'),
        group: configured(call.network?.securityGroupIds, 'LaunchSecurityGroupIds'),
      });
    case 'SSM': {
      const name = here(String(input.Name ?? input.ResourceId ?? ''));
      const arn = `arn:${partition}:ssm:${region}:${account}:parameter${name.startsWith('/') ? '' : '/'}${name}`;
      const tags = tagMap(input.Tags);
      switch (command) {
        case 'PutParameter': {
          const keyId = str(input.KeyId);
          return [
            { action: 'ssm:PutParameter', resource: arn, context: {} },
            ...(Object.keys(tags).length === 0
              ? []
              : [{ action: 'ssm:AddTagsToResource', resource: arn, context: requestTags(tags) }]),
            ...(input.Type === 'SecureString' && keyId !== undefined && keyId !== 'alias/aws/ssm'
              ? [{ action: 'kms:Encrypt', resource: kmsKeyArn(keyId, model), context: {} }]
              : []),
          ];
        }
        case 'AddTagsToResource':
          return [{ action: 'ssm:AddTagsToResource', resource: arn, context: requestTags(tags) }];
        case 'GetParameter':
        case 'DeleteParameter':
          return [{ action: `ssm:${command}`, resource: arn, context: {} }];
        case 'DescribeParameters':
          return [{ action: 'ssm:DescribeParameters', resource: '*', context: {} }];
      }
      break;
    }
    case 'Scheduler': {
      const group = here(String(input.GroupName ?? 'default'));
      const arn = `arn:${partition}:scheduler:${region}:${account}:schedule/${group}/${String(input.Name)}`;
      switch (command) {
        case 'CreateSchedule': {
          const roleArn = here(String(obj(input.Target).RoleArn ?? ''));
          return [
            { action: `scheduler:${command}`, resource: arn, context: {} },
            {
              action: 'iam:PassRole',
              resource: roleArn,
              context: { 'iam:PassedToService': 'scheduler.amazonaws.com' },
            },
          ];
        }
        case 'DeleteSchedule':
          return [{ action: `scheduler:${command}`, resource: arn, context: {} }];
        case 'ListSchedules':
          return [{ action: 'scheduler:ListSchedules', resource: '*', context: {} }];
      }
      break;
    }
    case 'Lambda': {
      if (command === 'Invoke') {
        const name = here(String(input.FunctionName));
        const arn = name.startsWith('arn:')
          ? name
          : `arn:${partition}:lambda:${region}:${account}:function:${name}`;
        return [{ action: 'lambda:InvokeFunction', resource: arn, context: {} }];
      }
      break;
    }
  }
  throw new Error(
    `no IAM mapping for ${call.service} ${call.command}: add it to test/support/iam/requests.ts`,
  );
}

const DYNAMO_ACTIONS: Record<string, string> = {
  Get: 'GetItem',
  GetItem: 'GetItem',
  Put: 'PutItem',
  PutItem: 'PutItem',
  Update: 'UpdateItem',
  UpdateItem: 'UpdateItem',
  Delete: 'DeleteItem',
  DeleteItem: 'DeleteItem',
  ConditionCheck: 'ConditionCheckItem',
  Query: 'Query',
  BatchWrite: 'BatchWriteItem',
  BatchWriteItem: 'BatchWriteItem',
};

function dynamoRequests(command: string, input: Input, model: StackModel): IamRequest[] {
  const tablePk = model.table.partitionKeys.get('') ?? 'PK';
  const leadingKey = (op: Input): string | undefined => {
    const index = str(op.IndexName);
    const attribute = model.table.partitionKeys.get(index ?? '') ?? tablePk;
    const fromItem = plain(obj(op.Key)[attribute]) ?? plain(obj(op.Item)[attribute]);
    if (fromItem !== undefined) return fromItem;
    // Query: `<partition key> = :value` in the key condition (names may be aliased as #n).
    const names = obj(op.ExpressionAttributeNames);
    const alias = Object.entries(names).find(([, v]) => v === attribute)?.[0];
    const condition = str(op.KeyConditionExpression) ?? '';
    for (const name of [attribute, alias].filter((n): n is string => n !== undefined)) {
      const m = new RegExp(`(?:^|[\\s(])${name.replace(/[#]/g, '\\#')}\\s*=\\s*(:[A-Za-z0-9_]+)`).exec(
        condition,
      );
      if (m?.[1] !== undefined) return plain(obj(op.ExpressionAttributeValues)[m[1]]);
    }
    return undefined;
  };
  const resourceOf = (op: Input): string => {
    const index = str(op.IndexName);
    return index === undefined ? model.table.arn : `${model.table.arn}/index/${index}`;
  };
  const one = (action: string, op: Input, keys: (string | undefined)[] = [leadingKey(op)]): IamRequest => {
    const leading = keys.filter((k): k is string => k !== undefined);
    return {
      action: `dynamodb:${action}`,
      resource: resourceOf(op),
      context: leading.length === 0 ? {} : { 'dynamodb:LeadingKeys': [...new Set(leading)] },
    };
  };
  if (command === 'TransactWrite' || command === 'TransactWriteItems') {
    return asArray(input.TransactItems as Input[]).flatMap((item) =>
      Object.entries(item).map(([kind, op]) => {
        const action = DYNAMO_ACTIONS[kind];
        if (action === undefined) throw new Error(`no IAM mapping for DynamoDB transaction item ${kind}`);
        return one(action, obj(op));
      }),
    );
  }
  const action = DYNAMO_ACTIONS[command];
  if (action === undefined)
    throw new Error(`no IAM mapping for DynamoDB ${command}: add it to test/support/iam/requests.ts`);
  if (action === 'BatchWriteItem') {
    const requests = Object.values(obj(input.RequestItems)).flatMap((rs) => asArray(rs as Input[]));
    const ops = requests.flatMap((r) => Object.values(r).map(obj));
    return [one(action, { TableName: Object.keys(obj(input.RequestItems))[0] }, ops.map(leadingKey))];
  }
  return [one(action, input)];
}

interface Ec2Helpers {
  ec2Arn(resource: string, withAccount?: boolean): string;
  tagMap(tags: unknown): Record<string, string>;
  requestTags(tags: Record<string, string>): Record<string, string | string[]>;
  resourceTags(tags: Record<string, string>): Record<string, string>;
  passRole(profileArn: string): IamRequest;
  /** The ARN of an instance profile given by ARN or name, in the template's stage. */
  profile(p: Input): string | undefined;
  /** A subnet (security group) id as the template's deployment names it. */
  subnet(id: string): string;
  group(id: string): string;
}

interface LaunchShape {
  imageId?: string;
  keyName?: string;
  subnetIds: string[];
  securityGroupIds: string[];
  profileArn?: string;
  spot: boolean;
  launchTemplate?: { id: string; tags: Record<string, string> };
  /** Tags requested for each resource type created (instance, volume, network-interface). */
  tags: Record<string, Record<string, string>>;
}

const tagsByType = (specs: unknown, h: Ec2Helpers): Record<string, Record<string, string>> => {
  const out: Record<string, Record<string, string>> = {};
  for (const s of asArray(specs as { ResourceType?: string; Tags?: Tag[] }[])) {
    out[s.ResourceType ?? ''] = { ...out[s.ResourceType ?? ''], ...h.tagMap(s.Tags) };
  }
  return out;
};

/** RunInstances as EC2 authorizes it: each resource it creates or uses, tag-on-create, PassRole. */
function runInstancesRequests(l: LaunchShape, h: Ec2Helpers, createAction: string): IamRequest[] {
  const run = (resource: string, context: Record<string, string | string[]> = {}): IamRequest => ({
    action: 'ec2:RunInstances',
    resource,
    context,
  });
  const created = ['instance', 'volume', 'network-interface'];
  const subnetIds = l.subnetIds.map((id) => h.subnet(id));
  const securityGroupIds = l.securityGroupIds.map((id) => h.group(id));
  // What EC2 knows of each new resource besides its tags: the instance's profile, the subnet of
  // its network interface (one per subnet the launch may use; none known: without it).
  const known: Record<string, Record<string, string>[]> = {
    instance: [l.profileArn === undefined ? {} : { 'ec2:InstanceProfile': l.profileArn }],
    volume: [{}],
    'network-interface':
      subnetIds.length === 0 ? [{}] : subnetIds.map((id) => ({ 'ec2:Subnet': h.ec2Arn(`subnet/${id}`) })),
  };
  const requests: IamRequest[] = [
    ...created.flatMap((type) =>
      (known[type] ?? [{}]).map((facts) =>
        run(h.ec2Arn(`${type}/*`), { ...h.requestTags(l.tags[type] ?? {}), ...facts }),
      ),
    ),
    ...(subnetIds.length > 0 ? subnetIds : ['*']).map((id) => run(h.ec2Arn(`subnet/${id}`))),
    ...(securityGroupIds.length > 0 ? securityGroupIds : ['*']).map((id) =>
      run(h.ec2Arn(`security-group/${id}`)),
    ),
    ...(l.imageId === undefined ? [] : [run(h.ec2Arn(`image/${l.imageId}`, false))]),
    ...(l.keyName === undefined ? [] : [run(h.ec2Arn(`key-pair/${l.keyName}`))]),
    ...(l.launchTemplate === undefined
      ? []
      : [run(h.ec2Arn(`launch-template/${l.launchTemplate.id}`), h.resourceTags(l.launchTemplate.tags))]),
    ...(l.spot ? [run(h.ec2Arn('spot-instances-request/*'))] : []),
    ...created
      .filter((type) => Object.keys(l.tags[type] ?? {}).length > 0)
      .map((type) => ({
        action: 'ec2:CreateTags',
        resource: h.ec2Arn(`${type}/*`),
        context: { ...h.requestTags(l.tags[type] ?? {}), 'ec2:CreateAction': createAction },
      })),
    ...(l.profileArn === undefined ? [] : [h.passRole(l.profileArn)]),
  ];
  return requests;
}

function ec2Requests(command: string, input: Input, facts: CallFacts, h: Ec2Helpers): IamRequest[] {
  const instances = (action: string, ids: unknown, extra: Record<string, string | string[]> = {}) =>
    asArray(ids as string[]).flatMap((id) => {
      const tags = facts.instanceTags?.[id];
      // An instance EC2 does not know is refused as not found, not authorized.
      if (tags === undefined) return [];
      return [
        { action, resource: h.ec2Arn(`instance/${id}`), context: { ...h.resourceTags(tags), ...extra } },
      ];
    });
  switch (command) {
    case 'DescribeInstances':
    case 'DescribeLaunchTemplates':
    case 'DescribeSpotPriceHistory':
      return [{ action: `ec2:${command}`, resource: '*', context: {} }];
    case 'TerminateInstances':
      return instances('ec2:TerminateInstances', input.InstanceIds);
    case 'CreateTags': {
      const tags = h.tagMap(input.Tags);
      return instances('ec2:CreateTags', input.Resources, h.requestTags(tags));
    }
    case 'DeleteLaunchTemplate': {
      const t = facts.launchTemplate;
      if (t === undefined) return [];
      return [
        {
          action: 'ec2:DeleteLaunchTemplate',
          resource: h.ec2Arn(`launch-template/${t.id}`),
          context: h.resourceTags(t.tags),
        },
      ];
    }
    case 'CreateLaunchTemplate': {
      const tags = tagsByType(input.TagSpecifications, h)['launch-template'] ?? {};
      return [
        {
          action: 'ec2:CreateLaunchTemplate',
          resource: h.ec2Arn('launch-template/*'),
          context: h.requestTags(tags),
        },
        ...(Object.keys(tags).length === 0
          ? []
          : [
              {
                action: 'ec2:CreateTags',
                resource: h.ec2Arn('launch-template/*'),
                context: { ...h.requestTags(tags), 'ec2:CreateAction': 'CreateLaunchTemplate' },
              },
            ]),
      ];
    }
    case 'RunInstances': {
      const template = facts.launchTemplate;
      const data = template?.data ?? {};
      const tags = { ...tagsByType(data.TagSpecifications, h), ...tagsByType(input.TagSpecifications, h) };
      const profileArn = h.profile(obj(input.IamInstanceProfile ?? data.IamInstanceProfile));
      return runInstancesRequests(
        {
          imageId: str(input.ImageId) ?? str(data.ImageId),
          keyName: str(input.KeyName) ?? str(data.KeyName),
          subnetIds:
            str(input.SubnetId) !== undefined ? [String(input.SubnetId)] : (facts.launched?.subnetIds ?? []),
          securityGroupIds:
            asArray((input.SecurityGroupIds ?? data.SecurityGroupIds) as string[] | undefined).length > 0
              ? asArray((input.SecurityGroupIds ?? data.SecurityGroupIds) as string[])
              : (facts.launched?.securityGroupIds ?? []),
          ...(profileArn === undefined ? {} : { profileArn }),
          spot: obj(input.InstanceMarketOptions).MarketType === 'spot',
          ...(template === undefined ? {} : { launchTemplate: { id: template.id, tags: template.tags } }),
          tags,
        },
        h,
        'RunInstances',
      );
    }
    case 'CreateFleet': {
      const template = facts.launchTemplate;
      if (template === undefined) {
        throw new Error('CreateFleet recorded without its launch template: the recorder must look it up');
      }
      const data = template.data;
      const fleetTags = tagsByType(input.TagSpecifications, h);
      const overrides = asArray(input.LaunchTemplateConfigs as Input[]).flatMap((c) =>
        asArray(c.Overrides as Input[]),
      );
      const subnetIds = [
        ...new Set([
          ...overrides.flatMap((o) => (str(o.SubnetId) === undefined ? [] : [String(o.SubnetId)])),
          ...(facts.launched?.subnetIds ?? []),
        ]),
      ];
      const securityGroupIds =
        asArray(data.SecurityGroupIds as string[] | undefined).length > 0
          ? asArray(data.SecurityGroupIds as string[])
          : (facts.launched?.securityGroupIds ?? []);
      const spotCapacity = Number(obj(input.TargetCapacitySpecification).SpotTargetCapacity ?? 0);
      const imageId = str(data.ImageId);
      const keyName = str(data.KeyName);
      const profile = h.profile(obj(data.IamInstanceProfile));
      const fleet = (resource: string, context: Record<string, string | string[]> = {}): IamRequest => ({
        action: 'ec2:CreateFleet',
        resource,
        context,
      });
      const instanceTags = fleetTags.instance ?? {};
      const volumeTags = tagsByType(data.TagSpecifications, h).volume ?? {};
      // CreateFleet's own resource types (AWS's service authorization reference): the fleet, its
      // instances and volumes (new, with their tags), the launch template, image and subnets.
      return [
        fleet(h.ec2Arn('fleet/*'), h.requestTags(fleetTags.fleet ?? {})),
        fleet(h.ec2Arn('instance/*'), h.requestTags(instanceTags)),
        fleet(h.ec2Arn('volume/*'), h.requestTags(volumeTags)),
        fleet(h.ec2Arn(`launch-template/${template.id}`), h.resourceTags(template.tags)),
        ...(imageId === undefined ? [] : [fleet(h.ec2Arn(`image/${imageId}`, false))]),
        ...(subnetIds.length > 0 ? subnetIds : ['*']).map((id) => fleet(h.ec2Arn(`subnet/${h.subnet(id)}`))),
        ...(Object.keys(fleetTags.fleet ?? {}).length === 0
          ? []
          : [
              {
                action: 'ec2:CreateTags',
                resource: h.ec2Arn('fleet/*'),
                context: { ...h.requestTags(fleetTags.fleet ?? {}), 'ec2:CreateAction': 'CreateFleet' },
              },
            ]),
        // The instant fleet launches with the caller's rights: RunInstances from the template.
        ...runInstancesRequests(
          {
            ...(imageId === undefined ? {} : { imageId }),
            ...(keyName === undefined ? {} : { keyName }),
            subnetIds,
            securityGroupIds,
            ...(profile === undefined ? {} : { profileArn: profile }),
            spot: spotCapacity > 0,
            launchTemplate: { id: template.id, tags: template.tags },
            tags: { ...tagsByType(data.TagSpecifications, h), instance: instanceTags },
          },
          h,
          'RunInstances',
        ),
      ];
    }
  }
  throw new Error(`no IAM mapping for EC2 ${command}: add it to test/support/iam/requests.ts`);
}

/** iam:PassRole for the role in the named instance profile (a profile the stack lacks: a role of that name). */
function passRoleForProfile(profileArn: string, model: StackModel): IamRequest {
  const name = profileArn.slice(profileArn.lastIndexOf('/') + 1);
  const profileRole = model.instanceProfiles.get(profileArn);
  return {
    action: 'iam:PassRole',
    resource: profileRole ?? `arn:${model.partition}:iam::${model.account}:role/${name}`,
    context: { 'iam:PassedToService': 'ec2.amazonaws.com' },
  };
}

const kmsKeyArn = (keyId: string, model: StackModel): string =>
  keyId.startsWith('arn:')
    ? keyId
    : `arn:${model.partition}:kms:${model.region}:${model.account}:${keyId.startsWith('alias/') ? keyId : `key/${keyId}`}`;
