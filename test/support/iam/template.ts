/**
 * The packaged CloudFormation template (`npm run package`) as AWS would deploy it, for a test
 * account and region: intrinsics (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, pseudo parameters)
 * resolved to the names and ARNs CloudFormation would give the resources, each function with its
 * handler, environment and role, and each role with every policy attached to it.
 */
import { readFileSync } from 'node:fs';

export const TEST_ACCOUNT = '123456789012';
export const TEST_REGION = 'us-east-1';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

interface Resource {
  Type: string;
  Properties?: Record<string, Json>;
}

interface Parameter {
  Type: string;
  Default?: string;
}

export interface Template {
  Parameters?: Record<string, Parameter>;
  Resources: Record<string, Resource>;
}

export interface PolicyDocument {
  Version?: string;
  Statement: Statement[];
}

export interface Statement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface NamedPolicy {
  name: string;
  policy: PolicyDocument;
}

export interface RoleModel {
  logicalId: string;
  name: string;
  arn: string;
  policies: NamedPolicy[];
}

export interface FunctionModel {
  /** The key under `functions` in serverless.yml, e.g. `annexCreate`. */
  key: string;
  logicalId: string;
  functionName: string;
  handler: string;
  /** The file name of its zip in the package (`<key>.zip`). */
  zipFile: string;
  runtime: string;
  memorySize: number;
  timeout: number;
  environment: Record<string, string>;
  role: RoleModel;
}

export interface TableModel {
  name: string;
  arn: string;
  /** The partition key attribute of the table ('') and of each index (by index name). */
  partitionKeys: Map<string, string>;
}

export interface StackModel {
  account: string;
  region: string;
  partition: string;
  stackName: string;
  functions: Map<string, FunctionModel>;
  roles: Map<string, RoleModel>;
  table: TableModel;
  /** Each instance profile's ARN → the ARN of its role. */
  instanceProfiles: Map<string, string>;
  /** `Ref` of the HTTP API: its id. */
  httpApiId: string;
  /** Each template parameter's value as deployed (a CommaDelimitedList: its list). */
  parameters: Map<string, string | string[]>;
  /** Resolves any template value (an intrinsic, or a structure containing them). */
  resolve(value: unknown): unknown;
}

export interface StackOptions {
  account?: string;
  region?: string;
  stackName?: string;
  /**
   * Physical names of resources that CloudFormation would name itself (no name property in the
   * template), by logical id: by default `<stack>-<logical id>`. The HTTP API's id is `HttpApi`.
   */
  physicalNames?: Record<string, string>;
  /** Template parameters as a deployment would set them (by default: their Default). */
  parameters?: Record<string, string>;
}

/**
 * AWS managed policies the stack attaches, as AWS publishes them. A role with any other AWS
 * managed policy fails the model: its rights would be unknown to the evaluation.
 */
const AWS_MANAGED_POLICIES: Record<string, PolicyDocument> = {
  'arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole': {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents'],
        Resource: '*',
      },
    ],
  },
};

export const readTemplate = (path: string): Template => JSON.parse(readFileSync(path, 'utf8')) as Template;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** `annexCreate` from `AnnexCreateLambdaFunction` (the framework's naming). */
const functionKey = (logicalId: string, functionName: string, stackName: string): string =>
  functionName.startsWith(`${stackName}-`)
    ? functionName.slice(stackName.length + 1)
    : logicalId.replace(/LambdaFunction$/, '').replace(/^./, (c) => c.toLowerCase());

export function stackModel(template: Template, options: StackOptions = {}): StackModel {
  const account = options.account ?? TEST_ACCOUNT;
  const region = options.region ?? TEST_REGION;
  const partition = 'aws';
  const resources = template.Resources;
  const lambdaNames = Object.values(resources)
    .filter((r) => r.Type === 'AWS::Lambda::Function')
    .map((r) => String(r.Properties?.FunctionName ?? ''));
  // Functions are named <service>-<stage>-<key>: the stack name is <service>-<stage>.
  const stackName = options.stackName ?? (lambdaNames[0] ?? 'stack-fn').split('-').slice(0, -1).join('-');
  const physical = (logicalId: string): string =>
    options.physicalNames?.[logicalId] ?? `${stackName}-${logicalId}`;

  const parameters = new Map<string, string | string[]>(
    Object.entries(template.Parameters ?? {}).map(([name, p]) => {
      const value = options.parameters?.[name] ?? p.Default;
      if (value === undefined) throw new Error(`template: parameter ${name} has no value and no default`);
      return [name, p.Type === 'CommaDelimitedList' ? value.split(',') : value];
    }),
  );

  const resourceOf = (logicalId: string): Resource => {
    const r = resources[logicalId];
    if (r === undefined) throw new Error(`template: no resource ${logicalId}`);
    return r;
  };

  const ref = (name: string): string => {
    switch (name) {
      case 'AWS::AccountId':
        return account;
      case 'AWS::Region':
        return region;
      case 'AWS::Partition':
        return partition;
      case 'AWS::URLSuffix':
        return 'amazonaws.com';
      case 'AWS::StackName':
        return stackName;
    }
    const r = resourceOf(name);
    const p = r.Properties ?? {};
    switch (r.Type) {
      case 'AWS::DynamoDB::Table':
        return String(resolve(p.TableName ?? physical(name)));
      case 'AWS::IAM::Role':
        return String(resolve(p.RoleName ?? physical(name)));
      case 'AWS::IAM::InstanceProfile':
        return String(resolve(p.InstanceProfileName ?? physical(name)));
      case 'AWS::Lambda::Function':
        return String(resolve(p.FunctionName ?? physical(name)));
      case 'AWS::Scheduler::ScheduleGroup':
        return String(resolve(p.Name ?? physical(name)));
      case 'AWS::S3::Bucket':
        return String(resolve(p.BucketName ?? physical(name).toLowerCase()));
      case 'AWS::ApiGatewayV2::Api':
        return physical(name);
      case 'AWS::IAM::ManagedPolicy':
        return `arn:${partition}:iam::${account}:policy/${String(resolve(p.ManagedPolicyName ?? physical(name)))}`;
      case 'AWS::ImageBuilder::Component':
        // Ref of an Image Builder component is its ARN (name lower-cased, version, build 1).
        return `arn:${partition}:imagebuilder:${region}:${account}:component/${String(resolve(p.Name)).toLowerCase()}/${String(resolve(p.Version))}/1`;
      default:
        throw new Error(`template: Ref of ${name} (${r.Type}) is not modelled`);
    }
  };

  const getAtt = (name: string, attribute: string): string => {
    const r = resourceOf(name);
    const id = ref(name);
    const arns: Record<string, string> = {
      'AWS::DynamoDB::Table': `arn:${partition}:dynamodb:${region}:${account}:table/${id}`,
      'AWS::IAM::Role': `arn:${partition}:iam::${account}:role/${id}`,
      'AWS::IAM::InstanceProfile': `arn:${partition}:iam::${account}:instance-profile/${id}`,
      'AWS::Lambda::Function': `arn:${partition}:lambda:${region}:${account}:function:${id}`,
      'AWS::Scheduler::ScheduleGroup': `arn:${partition}:scheduler:${region}:${account}:schedule-group/${id}`,
      'AWS::S3::Bucket': `arn:${partition}:s3:::${id}`,
    };
    const arn = arns[r.Type];
    if (attribute === 'Arn' && arn !== undefined) return arn;
    throw new Error(`template: Fn::GetAtt ${name}.${attribute} (${r.Type}) is not modelled`);
  };

  const sub = (text: string, variables: Record<string, unknown>): string =>
    text.replace(/\$\{([^}!][^}]*)\}/g, (_, name: string) => {
      if (name in variables) return String(resolve(variables[name]));
      const dot = name.indexOf('.');
      return dot > 0 && !name.startsWith('AWS::')
        ? getAtt(name.slice(0, dot), name.slice(dot + 1))
        : String(parameters.get(name) ?? ref(name));
    });

  function resolve(value: unknown): unknown {
    if (Array.isArray(value)) return value.map(resolve);
    if (!isObject(value)) return value;
    const keys = Object.keys(value);
    if (keys.length === 1) {
      const [key] = keys as [string];
      const arg = value[key];
      if (key === 'Ref') return parameters.get(String(arg)) ?? ref(String(arg));
      if (key === 'Fn::GetAtt') {
        const [name, attribute] = Array.isArray(arg) ? arg : String(arg).split('.');
        return getAtt(String(name), String(attribute));
      }
      if (key === 'Fn::Sub') {
        if (typeof arg === 'string') return sub(arg, {});
        const [text, variables] = arg as [string, Record<string, unknown>];
        return sub(text, variables);
      }
      if (key === 'Fn::Join') {
        const [separator, parts] = arg as [string, unknown];
        return (resolve(parts) as unknown[]).map(String).join(separator);
      }
      if (key === 'Fn::Split') {
        const [separator, text] = arg as [string, unknown];
        return String(resolve(text)).split(separator);
      }
      if (key.startsWith('Fn::')) throw new Error(`template: ${key} is not modelled`);
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v)]));
  }

  // Policies attached to a role: its inline ones, its managed ones (AWS's, or the template's own),
  // and the template's AWS::IAM::Policy / AWS::IAM::ManagedPolicy resources that name it.
  const rolePolicies = (logicalId: string): NamedPolicy[] => {
    const p = resourceOf(logicalId).Properties ?? {};
    const inline = ((p.Policies ?? []) as { PolicyName: Json; PolicyDocument: Json }[]).map((x) => ({
      name: String(resolve(x.PolicyName)),
      policy: resolve(x.PolicyDocument) as PolicyDocument,
    }));
    const own = Object.entries(resources).filter(
      ([, r]) => r.Type === 'AWS::IAM::ManagedPolicy' || r.Type === 'AWS::IAM::Policy',
    );
    const document = (id: string): NamedPolicy => ({
      name: id,
      policy: resolve(resourceOf(id).Properties?.PolicyDocument) as PolicyDocument,
    });
    const attached = new Set<string>();
    const managed = (resolve(p.ManagedPolicyArns ?? []) as string[]).map((arn) => {
      const aws = AWS_MANAGED_POLICIES[arn];
      if (aws !== undefined) return { name: arn, policy: aws };
      const ownId = own.find(([id, r]) => r.Type === 'AWS::IAM::ManagedPolicy' && ref(id) === arn)?.[0];
      if (ownId === undefined) {
        throw new Error(`template: ${logicalId} has managed policy ${arn}, whose document this model lacks`);
      }
      attached.add(ownId);
      return document(ownId);
    });
    const naming = own
      .filter(([id]) => !attached.has(id))
      .filter(([, r]) =>
        ((r.Properties?.Roles ?? []) as Json[]).some(
          (x) => JSON.stringify(x) === JSON.stringify({ Ref: logicalId }),
        ),
      )
      .map(([id]) => document(id));
    return [...inline, ...managed, ...naming];
  };

  const roles = new Map<string, RoleModel>();
  const role = (logicalId: string): RoleModel => {
    let model = roles.get(logicalId);
    if (model === undefined) {
      model = {
        logicalId,
        name: ref(logicalId),
        arn: getAtt(logicalId, 'Arn'),
        policies: rolePolicies(logicalId),
      };
      roles.set(logicalId, model);
    }
    return model;
  };
  for (const [id, r] of Object.entries(resources)) if (r.Type === 'AWS::IAM::Role') role(id);

  const functions = new Map<string, FunctionModel>();
  for (const [logicalId, r] of Object.entries(resources)) {
    if (r.Type !== 'AWS::Lambda::Function') continue;
    const p = r.Properties ?? {};
    const roleRef = p.Role as { 'Fn::GetAtt'?: [string, string] } | undefined;
    const roleId = roleRef?.['Fn::GetAtt']?.[0];
    if (roleId === undefined) throw new Error(`template: ${logicalId} has no role of the stack`);
    const functionName = String(resolve(p.FunctionName));
    const variables = ((p.Environment as { Variables?: Json } | undefined)?.Variables ?? {}) as Record<
      string,
      Json
    >;
    functions.set(functionKey(logicalId, functionName, stackName), {
      key: functionKey(logicalId, functionName, stackName),
      logicalId,
      functionName,
      handler: String(p.Handler),
      zipFile:
        String((p.Code as { S3Key?: string } | undefined)?.S3Key ?? '')
          .split('/')
          .pop() ?? '',
      runtime: String(p.Runtime),
      memorySize: Number(p.MemorySize ?? 128),
      timeout: Number(p.Timeout ?? 3),
      environment: Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, String(resolve(v))])),
      role: role(roleId),
    });
  }

  const tables = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::DynamoDB::Table');
  if (tables.length !== 1) throw new Error(`template: expected one DynamoDB table, found ${tables.length}`);
  const [tableId, tableResource] = tables[0] as [string, Resource];
  const hashKey = (schema: Json): string =>
    String(
      (schema as { AttributeName: string; KeyType: string }[]).find((k) => k.KeyType === 'HASH')
        ?.AttributeName,
    );
  const tp = tableResource.Properties ?? {};
  const partitionKeys = new Map<string, string>([['', hashKey(tp.KeySchema ?? [])]]);
  for (const index of (tp.GlobalSecondaryIndexes ?? []) as { IndexName: string; KeySchema: Json }[]) {
    partitionKeys.set(index.IndexName, hashKey(index.KeySchema));
  }

  const instanceProfiles = new Map<string, string>();
  for (const [id, r] of Object.entries(resources)) {
    if (r.Type !== 'AWS::IAM::InstanceProfile') continue;
    const [first] = (resolve(r.Properties?.Roles ?? []) as string[]).map((name) =>
      [...roles.values()].find((x) => x.name === name),
    );
    if (first !== undefined) instanceProfiles.set(getAtt(id, 'Arn'), first.arn);
  }

  return {
    account,
    region,
    partition,
    stackName,
    functions,
    roles,
    instanceProfiles,
    table: { name: ref(tableId), arn: getAtt(tableId, 'Arn'), partitionKeys },
    httpApiId: resources.HttpApi === undefined ? '' : ref('HttpApi'),
    parameters,
    resolve,
  };
}
