// The packaged zips, not the sources: every function of `npm run package` unpacked and invoked
// from its zip in a fresh Node process, as the Lambda runtime would (test/support/packaged-zips.ts),
// through one annex's whole life on the emulators. HTTP functions get their events from the local
// gateway (SigV4 checked, API Gateway's payload 2.0), the Slack worker its job through Lambda's
// Invoke API, the rest the events EventBridge and the Scheduler send. A bundling mistake (an
// external left out, a CJS/ESM mix, a module read at run time) fails here rather than after deploy.
import { DeleteTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startGateway, type Gateway, type GatewayHandler } from '../../scripts/devstack/gateway.ts';
import { startLocalLambda, type LocalLambda } from '../../scripts/devstack/lambda-local.ts';
import { interactionBody, slackHeaders, slashCommandBody } from '../../scripts/devstack/slack-dev.ts';
import { startSlackStandIn, type SlackStandIn } from '../../scripts/devstack/slack-standin.ts';
import { apiClient, startLocalStack, type LocalStack } from '../../scripts/devstack/stack.ts';
import { ec2Event } from '../support/ec2-events.ts';
import { packagedStack } from '../support/iam/packaged.ts';
import type { FunctionModel, StackModel } from '../support/iam/template.ts';
import { ensurePackaged } from '../support/package.ts';
import { startZipRuntime, type ZipInvocation, type ZipRuntime } from '../support/packaged-zips.ts';

const TEAM = 'T0ZIP';
const SLACK_USER = 'U0ZIP';

let model: StackModel;
let stack: LocalStack;
let zips: ZipRuntime;
let gateway: Gateway;
let lambda: LocalLambda;
let slack: SlackStandIn;
let collector: Server;
let ec2: EC2Client;
const signingSecret = randomBytes(16).toString('hex');
const invoked: string[] = [];

const fn = (key: string): FunctionModel => {
  const found = model.functions.get(key);
  if (found === undefined) throw new Error(`the package has no function ${key}`);
  return found;
};

/** Runs the packaged function the Lambda context names (what the gateway and Invoke call). */
const zipHandler =
  (): GatewayHandler =>
  async (event, context): Promise<never> => {
    const key = [...model.functions.values()].find((f) => f.functionName === context.functionName)?.key;
    if (key === undefined) throw new Error(`no packaged function ${context.functionName}`);
    return (await invoke(key, event, context.awsRequestId)) as never;
  };

async function invoke(key: string, event: unknown, awsRequestId?: string): Promise<unknown> {
  invoked.push(key);
  const run: ZipInvocation = await zips.invoke(
    fn(key),
    event,
    awsRequestId === undefined ? {} : { awsRequestId },
  );
  if (!run.ok)
    throw new Error(`${key} failed in its zip: ${run.errorType}: ${run.errorMessage}\n${run.output}`);
  return run.result;
}

beforeAll(async () => {
  ensurePackaged();
  model = packagedStack();
  const stage = fn('annexCreate').environment.ANNEX_STAGE ?? '';
  const dynamoEndpoint = inject('dynamoEndpoint');
  const motoEndpoint = inject('motoEndpoint');
  // The template's names are the stage's (`annex-<stage>-leases`, ...): start from an empty table.
  const dynamo = new DynamoDBClient({
    endpoint: dynamoEndpoint,
    region: model.region,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
  await dynamo.send(new DeleteTableCommand({ TableName: model.table.name })).catch(() => undefined);
  dynamo.destroy();
  stack = await startLocalStack({ dynamoEndpoint, motoEndpoint, stage, maxAttempts: 1, seedPool: false });
  expect(stack.tableName).toBe(model.table.name);
  ec2 = new EC2Client(stack.clientConfig('moto'));
  const ssm = new SSMClient(stack.clientConfig('moto'));
  await ssm.send(
    new PutParameterCommand({
      Name: `/annex/${stage}/slack/signing-secret`,
      Value: signingSecret,
      Type: 'SecureString',
      Overwrite: true,
    }),
  );
  ssm.destroy();
  slack = await startSlackStandIn({ botToken: `xoxb-zip-${randomBytes(6).toString('hex')}` });
  lambda = await startLocalLambda({ stage, loadHandler: async () => zipHandler() });
  collector = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  const admin = stack.users.find((u) => u.admin === true);
  zips = startZipRuntime({
    region: model.region,
    environment: {
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_SESSION_TOKEN: 'testing',
      AWS_ENDPOINT_URL: motoEndpoint,
      AWS_ENDPOINT_URL_DYNAMODB: dynamoEndpoint,
      AWS_ENDPOINT_URL_LAMBDA: lambda.url,
      AWS_MAX_ATTEMPTS: '1',
      // Node 20 here; Lambda runs the template's runtime.
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      ANNEX_SLACK_RESPONSE_URL_PREFIX: `${slack.url}/response/`,
      ANNEX_SLACK_API_URL: `${slack.url}/api/`,
    },
    // What a deployer exports before `serverless package` (empty in this package).
    deploySettings: {
      ANNEX_ADMIN_ARNS: admin?.principalArn ?? '',
      ANNEX_DEFAULT_IMAGE_ID: stack.imageId,
      ANNEX_DEFAULT_SUBNET_IDS: stack.subnetIds.join(','),
      ANNEX_DEFAULT_SECURITY_GROUP_IDS: stack.securityGroupIds.join(','),
      ANNEX_SLACK_TEAM_IDS: TEAM,
    },
  });
  gateway = await startGateway({
    users: stack.users,
    region: model.region,
    stage,
    loadHandler: async () => zipHandler(),
  });
}, 240_000);

afterAll(async () => {
  await gateway?.stop();
  await lambda?.stop();
  await slack?.stop();
  await new Promise((resolve) => collector?.close(resolve));
  await stack?.stop();
  ec2?.destroy();
  zips?.stop();
});

const as = (name: string) => {
  const user = stack.users.find((u) => u.name === name);
  if (user === undefined) throw new Error(`no dev user ${name}`);
  return apiClient(gateway.url, user);
};
const admin = () => as(stack.users.find((u) => u.admin === true)?.name ?? '');

const postSlack = async (path: string, body: string) => {
  const response = await fetch(`${gateway.url}${path}`, {
    method: 'POST',
    body,
    headers: slackHeaders(signingSecret, body),
  });
  return { status: response.status, text: await response.text() };
};

describe('every packaged function, invoked from its zip as Lambda would', () => {
  let annexId = '';
  let instanceId = '';
  let expiresAt = '';

  it('registers, lists and checks a pool (poolsPut, poolsList, poolsCheck)', async () => {
    const { port } = collector.address() as AddressInfo;
    const put = await as('alice').request('PUT', '/v1/pools/zip-lab', {
      collectorHost: '127.0.0.1',
      collectorPort: port,
      credential: { type: 'password', value: randomBytes(12).toString('hex') },
      scope: 'private',
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const list = await as('alice').request<{ pools: { name: string }[] }>('GET', '/v1/pools');
    expect(list.status).toBe(200);
    expect(list.body.pools.map((p) => p.name)).toContain('zip-lab');
    const check = await as('alice').request<{ check: { reachable: boolean } }>(
      'POST',
      '/v1/pools/zip-lab/check',
    );
    expect(check.status, JSON.stringify(check.body)).toBe(200);
    expect(check.body.check.reachable).toBe(true);
  });

  it('creates an annex whose instance runs in EC2, and reads it back (annexCreate, annexList, annexGet, annexCondorConfig)', async () => {
    const created = await as('alice').request<{ annex: { id: string; expiresAt: string } }>(
      'POST',
      '/v1/annexes',
      { name: 'zipped', pool: 'zip-lab', count: 1, instanceTypes: ['m5.large'], durationSeconds: 3600 },
      { 'Idempotency-Key': `zip-${randomBytes(4).toString('hex')}` },
    );
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    annexId = created.body.annex.id;
    expiresAt = created.body.annex.expiresAt;
    const list = await as('alice').request<{ annexes: { name: string }[] }>('GET', '/v1/annexes');
    expect(list.body.annexes.map((a) => a.name)).toContain('zipped');
    const detail = await as('alice').request<{ instances: { instanceId: string }[] }>(
      'GET',
      '/v1/annexes/zipped',
    );
    expect(detail.status).toBe(200);
    instanceId = detail.body.instances[0]?.instanceId ?? '';
    const found = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    expect(found.Reservations?.[0]?.Instances?.[0]?.State?.Name).toBe('running');
    const config = await as('alice').request<{ condorConfig: string }>(
      'GET',
      '/v1/annexes/zipped/condor-config',
    );
    expect(config.status).toBe(200);
    expect(config.body.condorConfig).toContain(annexId);
  });

  it('extends the lease and adds a node (annexExtend, annexAddNodes)', async () => {
    const extended = await as('alice').request<{ annex: { expiresAt: string } }>(
      'POST',
      '/v1/annexes/zipped/extend',
      { durationSeconds: 7200 },
    );
    expect(extended.status, JSON.stringify(extended.body)).toBe(200);
    expect(Date.parse(extended.body.annex.expiresAt)).toBeGreaterThan(Date.parse(expiresAt));
    expiresAt = extended.body.annex.expiresAt;
    const added = await as('alice').request(
      'POST',
      '/v1/annexes/zipped/instances',
      { count: 1 },
      {
        'Idempotency-Key': `zip-add-${randomBytes(4).toString('hex')}`,
      },
    );
    expect(added.status, JSON.stringify(added.body)).toBe(200);
  });

  it("serves the instance's own routes to its instance role (instanceBootstrap, instanceHeartbeat, instanceInterruption)", async () => {
    const credentials = stack.instanceCredentials(instanceId);
    gateway.addUser(credentials);
    const instance = apiClient(gateway.url, credentials);
    const boot = await instance.request<{ credential?: unknown }>('POST', '/v1/instances/self/bootstrap');
    expect(boot.status, JSON.stringify(boot.body)).toBe(200);
    const beat = await instance.request<{ expiresAt: string }>('POST', '/v1/instances/self/heartbeat', {
      claimedSlots: 0,
      totalSlots: 2,
      idleSeconds: 5,
      state: 'joined',
    });
    expect(beat.status, JSON.stringify(beat.body)).toBe(200);
    expect(beat.body.expiresAt).toBe(expiresAt);
    const notice = await instance.request('POST', '/v1/instances/self/interruption', {
      action: 'terminate',
      time: new Date(Date.now() + 120_000).toISOString(),
    });
    expect(notice.status, JSON.stringify(notice.body)).toBe(202);
  });

  it('handles EC2 events, the sweep and a not-yet-due expiry (ec2Events, reaper, expire)', async () => {
    const event = (await invoke('ec2Events', ec2Event('state-change-running', instanceId))) as {
      outcome: string;
    };
    expect(event.outcome).not.toBe('ignored');
    const sweep = (await invoke('reaper', { source: 'aws.events', 'detail-type': 'Scheduled Event' })) as {
      actions: unknown[];
    };
    expect(Array.isArray(sweep.actions)).toBe(true);
    const expiry = (await invoke('expire', { annexId, expiresAt })) as { annexId: string; state?: string };
    expect(expiry.annexId).toBe(annexId);
    expect(['REQUESTED', 'LAUNCHING', 'RUNNING']).toContain(expiry.state);
  });

  it('maps a Slack user and answers /annex through the worker (slackUsersPut, slackUsersGet, slackCommands, slackWorker, slackInteractions, slackNotify, slackUsersDelete)', async () => {
    const alice = stack.users.find((u) => u.name === 'alice');
    const mapped = await admin().request('PUT', `/v1/slack/users/${TEAM}/${SLACK_USER}`, {
      principalArn: alice?.principalArn,
      pools: ['zip-lab'],
    });
    expect(mapped.status, JSON.stringify(mapped.body)).toBe(200);
    expect((await admin().request('GET', `/v1/slack/users/${TEAM}/${SLACK_USER}`)).status).toBe(200);

    const responseUrl = slack.responseUrl();
    const ack = await postSlack(
      '/v1/slack/commands',
      slashCommandBody({ text: 'list', teamId: TEAM, userId: SLACK_USER, responseUrl }),
    );
    expect(ack.status, ack.text).toBe(200);
    const answer = await slack.waitFor((d) => d.kind === 'response' && responseUrl.endsWith(d.path), 20_000);
    expect(JSON.stringify(answer.body)).toContain('zipped');
    await lambda.idle();
    expect(lambda.completed).toContainEqual(expect.objectContaining({ ok: true }));

    const clickUrl = slack.responseUrl();
    const click = await postSlack(
      '/v1/slack/interactions',
      interactionBody({
        type: 'block_actions',
        team: { id: TEAM, domain: 'zip' },
        user: { id: SLACK_USER, team_id: TEAM },
        channel: { id: 'C0ZIP' },
        response_url: clickUrl,
        trigger_id: `${Date.now()}.1.${randomBytes(6).toString('hex')}`,
        actions: [
          {
            action_id: 'annex_extend',
            block_id: `annex:${annexId}`,
            value: JSON.stringify({ id: annexId, name: 'zipped', owner: alice?.principalArn }),
            type: 'button',
          },
        ],
      }),
    );
    expect(click.status, click.text).toBe(200);
    await lambda.idle();

    const notices = (await invoke('slackNotify', {
      source: 'aws.events',
      'detail-type': 'Scheduled Event',
    })) as {
      failed: number;
    };
    expect(notices.failed).toBe(0);
    expect((await admin().request('DELETE', `/v1/slack/users/${TEAM}/${SLACK_USER}`)).status).toBe(204);
  });

  it('ends the annex: its instances terminated (annexDelete)', async () => {
    const deleted = await as('alice').request('DELETE', '/v1/annexes/zipped');
    expect(deleted.status, JSON.stringify(deleted.body)).toBe(202);
    const found = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    expect(found.Reservations?.[0]?.Instances?.[0]?.State?.Name).toBe('terminated');
  });

  it('has invoked every function of the package from its zip', () => {
    expect(new Set(invoked)).toEqual(new Set(model.functions.keys()));
  });
});

describe('the runtime stand-in', () => {
  // Zips as a bundling mistake leaves them: they must fail here as they would in Lambda.
  const dir = mkdtempSync(join(tmpdir(), 'annex-broken-'));
  let runtime: ZipRuntime;
  const broken = (name: string, source: string): FunctionModel => {
    mkdirSync(join(dir, name, 'handlers'), { recursive: true });
    writeFileSync(join(dir, name, 'handlers', `${name}.mjs`), source);
    const zip = join(dir, `${name}.zip`);
    execFileSync('python3', ['-m', 'zipfile', '-c', zip, join(dir, name, 'handlers')]);
    return { ...fn('poolsList'), key: name, zipFile: zip, handler: `handlers/${name}.handler` };
  };
  beforeAll(() => {
    runtime = startZipRuntime({ region: model.region, environment: {}, zipDir: '/' });
  });
  afterAll(() => {
    runtime?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('fails a zip that left a dependency out: nothing outside the zip resolves', async () => {
    const run = await runtime.invoke(
      broken(
        'external',
        "import middy from '@middy/core';\nexport const handler = async () => typeof middy;\n",
      ),
      {},
    );
    expect(run.ok).toBe(false);
    expect(run.output).toMatch(/Cannot find package '@middy\/core'/);
  });

  it('fails a zip whose ES module calls CommonJS require', async () => {
    const run = await runtime.invoke(
      broken('mixed', "const os = require('os');\nexport const handler = async () => os.arch();\n"),
      {},
    );
    expect(run.ok).toBe(false);
    expect(run.output).toMatch(/require is not defined/);
  });
});
