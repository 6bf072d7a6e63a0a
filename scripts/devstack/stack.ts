// The local Annex stack on top of running emulators: the lease table (from serverless.yml), the
// instance role, profile, image and network the handlers launch into (seeded in moto), the real
// handlers behind the local SigV4 gateway, and the `default` pool registered by the admin user.
// Used by `npm run dev`, the integration tests and the benchmarks alike.
import { randomBytes } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DescribeImagesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import {
  AddRoleToInstanceProfileCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  GetInstanceProfileCommand,
  GetRoleCommand,
  IAMClient,
} from '@aws-sdk/client-iam';
import { CreateScheduleGroupCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { readFileSync } from 'node:fs';
import { defaultDevUsers, defaultDevUserName, type DevUser } from './dev-users.ts';
import {
  moduleHandlerLoader,
  signedFetch,
  startGateway,
  type Gateway,
  type HandlerLoader,
} from './gateway.ts';
import { repoRoot } from './serverless-config.ts';
import { createLeaseTable } from './table.ts';

export const REGION = 'us-east-1';

/** Credentials the handlers themselves use against the emulators (the "Lambda role"). */
const EMULATOR_CREDENTIALS = { accessKeyId: 'testing', secretAccessKey: 'testing' };

export interface LocalStackOptions {
  dynamoEndpoint: string;
  motoEndpoint: string;
  stage?: string;
  tableName?: string;
  port?: number;
  users?: DevUser[];
  /** SDK attempts for the handlers' clients; 1 in tests so an emulator gap fails fast. */
  maxAttempts?: number;
  /** Register the `default` pool as the admin (default true). */
  seedPool?: boolean;
  /** Loads the routes' handlers (default: the modules themselves); the benchmark meters them. */
  loadHandler?: HandlerLoader;
  log?: (line: string) => void;
}

export interface ApiResult<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

export interface ApiClient {
  request<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<ApiResult<T>>;
}

export interface LocalStack {
  apiUrl: string;
  region: string;
  stage: string;
  tableName: string;
  users: DevUser[];
  dynamoEndpoint: string;
  motoEndpoint: string;
  imageId: string;
  scheduleGroup: string;
  schedulerRoleArn: string;
  expireFunctionArn: string;
  subnetIds: string[];
  securityGroupIds: string[];
  instanceProfileArn: string;
  /** The role annex instances run with (what instance callers' assumed-role ARNs name). */
  instanceRoleName: string;
  /** A signed API client acting as the named dev user, or as the given caller. */
  as(user: string | DevUser): ApiClient;
  /**
   * Credentials as EC2 gives an instance of the instance profile (temporary keys and a session
   * token; principal `assumed-role/<instance role>/<instance id>`), made known to the gateway.
   */
  instanceCredentials(instanceId: string): DevUser;
  /** SDK client config for talking to the emulators directly. */
  clientConfig(service: 'dynamodb' | 'moto'): {
    endpoint: string;
    region: string;
    credentials: typeof EMULATOR_CREDENTIALS;
    maxAttempts: number;
  };
  stop(): Promise<void>;
}

const ignoreExists = async (p: Promise<unknown>): Promise<void> => {
  try {
    await p;
  } catch (e) {
    if ((e as { name?: string }).name !== 'EntityAlreadyExists') throw e;
  }
};

/** The instance role and profile of this stage, the first image and the default network. */
const seedMoto = async (motoEndpoint: string, stage: string) => {
  const config = {
    endpoint: motoEndpoint,
    region: REGION,
    credentials: EMULATOR_CREDENTIALS,
    maxAttempts: 1,
  };
  const iam = new IAMClient(config);
  const ec2 = new EC2Client(config);
  const roleName = `annex-${stage}-instance`;
  await ignoreExists(
    iam.send(
      new CreateRoleCommand({
        RoleName: roleName,
        AssumeRolePolicyDocument: readFileSync(`${repoRoot}/scripts/iam/ec2-trust.json`, 'utf8'),
      }),
    ),
  );
  await ignoreExists(iam.send(new CreateInstanceProfileCommand({ InstanceProfileName: roleName })));
  const profile = await iam.send(new GetInstanceProfileCommand({ InstanceProfileName: roleName }));
  if ((profile.InstanceProfile?.Roles ?? []).length === 0) {
    await iam.send(
      new AddRoleToInstanceProfileCommand({ InstanceProfileName: roleName, RoleName: roleName }),
    );
  }
  const images = await ec2.send(new DescribeImagesCommand({ Owners: ['amazon'] }));
  const imageId = images.Images?.find((i) => i.ImageId !== undefined)?.ImageId;
  if (imageId === undefined) throw new Error('moto offers no image to launch');
  const subnets = await ec2.send(
    new DescribeSubnetsCommand({ Filters: [{ Name: 'default-for-az', Values: ['true'] }] }),
  );
  const subnetIds = (subnets.Subnets ?? [])
    .flatMap((s) => (s.SubnetId === undefined ? [] : [s.SubnetId]))
    .sort();
  const groups = await ec2.send(
    new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'group-name', Values: ['default'] }] }),
  );
  const securityGroupIds = (groups.SecurityGroups ?? [])
    .slice(0, 1)
    .flatMap((g) => (g.GroupId ? [g.GroupId] : []));
  // Exact expiry: the stage's schedule group and the role EventBridge Scheduler invokes with.
  const schedulerRoleName = `annex-${stage}-scheduler`;
  await ignoreExists(
    iam.send(
      new CreateRoleCommand({
        RoleName: schedulerRoleName,
        AssumeRolePolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            { Effect: 'Allow', Principal: { Service: 'scheduler.amazonaws.com' }, Action: 'sts:AssumeRole' },
          ],
        }),
      }),
    ),
  );
  const schedulerRole = await iam.send(new GetRoleCommand({ RoleName: schedulerRoleName }));
  const scheduler = new SchedulerClient(config);
  const scheduleGroup = `annex-${stage}`;
  try {
    await scheduler.send(new CreateScheduleGroupCommand({ Name: scheduleGroup }));
  } catch (e) {
    if ((e as { name?: string }).name !== 'ConflictException') throw e;
  }
  scheduler.destroy();
  iam.destroy();
  ec2.destroy();
  return {
    scheduleGroup,
    schedulerRoleArn: schedulerRole.Role?.Arn ?? '',
    expireFunctionArn: `arn:aws:lambda:${REGION}:123456789012:function:annex-${stage}-expire`,
    instanceProfileArn: profile.InstanceProfile?.Arn ?? '',
    instanceRoleName: roleName,
    imageId,
    subnetIds: subnetIds.slice(0, 2),
    securityGroupIds,
  };
};

export const apiClient = (apiUrl: string, user: DevUser): ApiClient => ({
  async request(method, path, body, headers = {}) {
    const response = await signedFetch(`${apiUrl}${path}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      accessKeyId: user.accessKeyId,
      secretAccessKey: user.secretAccessKey,
      ...(user.sessionToken === undefined ? {} : { sessionToken: user.sessionToken }),
      region: REGION,
    });
    const text = await response.text();
    return { status: response.status, body: text === '' ? {} : JSON.parse(text), headers: response.headers };
  },
});

/**
 * Starts the stack. The handlers run in this process and read their configuration from
 * process.env, exactly as in Lambda, so this sets it before the first request.
 */
export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  const stage = options.stage ?? 'dev';
  const tableName = options.tableName ?? `annex-${stage}-leases`;
  const users = options.users ?? defaultDevUsers();
  const maxAttempts = options.maxAttempts ?? 3;
  const log = options.log ?? (() => {});
  // Lambda runs Node 22; the local stack may run on Node 20, where the SDK warns at every start.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

  const dynamo = new DynamoDBClient({
    endpoint: options.dynamoEndpoint,
    region: REGION,
    credentials: EMULATOR_CREDENTIALS,
  });
  await createLeaseTable(dynamo, tableName);
  dynamo.destroy();
  const seeded = await seedMoto(options.motoEndpoint, stage);

  Object.assign(process.env, {
    AWS_REGION: REGION,
    AWS_ACCESS_KEY_ID: EMULATOR_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: EMULATOR_CREDENTIALS.secretAccessKey,
    AWS_ENDPOINT_URL: options.motoEndpoint,
    AWS_ENDPOINT_URL_DYNAMODB: options.dynamoEndpoint,
    AWS_MAX_ATTEMPTS: String(maxAttempts),
    ANNEX_STAGE: stage,
    ANNEX_TABLE_NAME: tableName,
    ANNEX_ADMIN_ARNS: users
      .filter((u) => u.admin === true)
      .map((u) => u.principalArn)
      .join(','),
    ANNEX_MAX_DURATION_SECONDS: String(7 * 24 * 3600),
    ANNEX_MAX_INSTANCES_PER_ANNEX: '50',
    ANNEX_INSTANCE_PROFILE_ARN: seeded.instanceProfileArn,
    ANNEX_DEFAULT_IMAGE_ID: seeded.imageId,
    ANNEX_DEFAULT_SUBNET_IDS: seeded.subnetIds.join(','),
    ANNEX_DEFAULT_SECURITY_GROUP_IDS: seeded.securityGroupIds.join(','),
    ANNEX_SCHEDULE_GROUP: seeded.scheduleGroup,
    ANNEX_EXPIRE_FUNCTION_ARN: seeded.expireFunctionArn,
    ANNEX_SCHEDULER_ROLE_ARN: seeded.schedulerRoleArn,
    ANNEX_INSTANCE_ROLE_NAME: seeded.instanceRoleName,
  });
  delete process.env.AWS_PROFILE;

  const gateway: Gateway = await startGateway({
    users,
    region: REGION,
    stage,
    loadHandler: options.loadHandler ?? moduleHandlerLoader(),
    ...(options.port === undefined ? {} : { port: options.port }),
    log,
  });

  const as = (who: string | DevUser): ApiClient => {
    const user = typeof who === 'string' ? users.find((u) => u.name === who) : who;
    if (user === undefined) throw new Error(`no dev user named ${String(who)}`);
    return apiClient(gateway.url, user);
  };

  const instanceCredentials = (instanceId: string): DevUser => {
    const user: DevUser = {
      name: instanceId,
      // Temporary keys look like ASIA…; these are random and known only to this gateway.
      accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`,
      secretAccessKey: randomBytes(30).toString('base64'),
      sessionToken: randomBytes(48).toString('base64'),
      principalArn: `arn:aws:sts::123456789012:assumed-role/${seeded.instanceRoleName}/${instanceId}`,
    };
    gateway.addUser(user);
    return user;
  };

  if (options.seedPool ?? true) {
    const admin = users.find((u) => u.admin === true);
    if (admin === undefined)
      throw new Error('the local stack needs an admin user to register the default pool');
    const put = await as(admin.name).request('PUT', '/v1/pools/default', {
      collectorHost: '127.0.0.1',
      collectorPort: 9618,
      // A throw-away pool password for the local stack: it lives only in the emulator.
      credential: { type: 'password', value: randomBytes(24).toString('base64url') },
    });
    if (put.status !== 200)
      throw new Error(`could not register the default pool: ${JSON.stringify(put.body)}`);
  }

  return {
    apiUrl: gateway.url,
    region: REGION,
    stage,
    tableName,
    users,
    dynamoEndpoint: options.dynamoEndpoint,
    motoEndpoint: options.motoEndpoint,
    ...seeded,
    as,
    instanceCredentials,
    clientConfig: (service) => ({
      endpoint: service === 'dynamodb' ? options.dynamoEndpoint : options.motoEndpoint,
      region: REGION,
      credentials: EMULATOR_CREDENTIALS,
      maxAttempts: 1,
    }),
    stop: () => gateway.stop(),
  };
}

export { defaultDevUserName };
