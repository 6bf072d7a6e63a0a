// `npm run dev`: the whole Annex control plane on 127.0.0.1. Starts DynamoDB Local and moto,
// creates the lease table from serverless.yml, seeds the instance role and network, serves the
// real handlers behind a SigV4-checking gateway, registers the `default` pool (password) and the
// `tokens` pool (IDTOKENS), writes
// .annex/dev.env and .annex/dev-users.json, and prints how to use it. Each EC2 instance it
// launches runs the real image/annex-boot and image/annex-agent against a fake IMDS, with a
// stand-in for HTCondor (scripts/devstack/instance-runner.ts; `--no-instances` or ANNEX_DEV_INSTANCES=off
// turns that off). Ctrl-C stops everything.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultDevUserName, writeDevUsers } from './devstack/dev-users.ts';
import { startEmulators } from './devstack/emulators.ts';
import { repoRoot } from './devstack/serverless-config.ts';
import { startEnforcer, type Enforcer } from './devstack/enforcer.ts';
import { startInstanceRunner, type InstanceRunner } from './devstack/instance-runner.ts';
import { startSlackDev, type SlackDev } from './devstack/slack-dev.ts';
import { startLocalStack } from './devstack/stack.ts';

const port = (name: string, fallback: number): number => {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 65535)
    throw new Error(`${name} must be a port number`);
  return value;
};

/** A whole number of seconds from the environment, or undefined when it is not set. */
const seconds = (name: string, min: number): number | undefined => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be a whole number ≥ ${min}`);
  return value;
};

const instancesWanted = (): boolean => {
  if (process.argv.includes('--no-instances')) return false;
  const raw = (process.env.ANNEX_DEV_INSTANCES ?? 'on').toLowerCase();
  if (!['on', 'off', '1', '0', 'true', 'false'].includes(raw))
    throw new Error('ANNEX_DEV_INSTANCES must be on or off');
  return ['on', '1', 'true'].includes(raw);
};

/** The IDTOKENS pool the local stack registers beside `default`. */
const TOKENS_POOL = 'tokens';

const main = async () => {
  const apiPort = port('ANNEX_DEV_API_PORT', 8787);
  const runInstances = instancesWanted();
  const heartbeatSeconds = seconds('ANNEX_DEV_HEARTBEAT_SECONDS', 1);
  const idleSeconds = seconds('ANNEX_DEV_IDLE_SECONDS', 1);
  const slots = seconds('ANNEX_DEV_SLOTS', 1);
  // EventBridge Scheduler's one-minute precision, modeled (0: fire at the named second).
  const schedulerPrecisionMs = seconds('ANNEX_DEV_SCHEDULER_PRECISION_MS', 0);
  const schedulerSeed = seconds('ANNEX_DEV_SCHEDULER_SEED', 0);
  const emulators = await startEmulators({
    dynamoPort: port('ANNEX_DEV_DYNAMODB_PORT', 8000),
    motoPort: port('ANNEX_DEV_MOTO_PORT', 5050),
    log: (line) => console.error(`[emulators] ${line}`),
  });
  let stack: Awaited<ReturnType<typeof startLocalStack>> | undefined;
  const running: { enforcer?: Enforcer; instances?: InstanceRunner; slack?: SlackDev } = {};
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    console.error('\nstopping the local stack…');
    await running.instances?.stop().catch(() => undefined);
    await running.enforcer?.stop().catch(() => undefined);
    await running.slack?.stop().catch(() => undefined);
    await stack?.stop().catch(() => undefined);
    await emulators.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    stack = await startLocalStack({
      dynamoEndpoint: emulators.dynamoEndpoint,
      motoEndpoint: emulators.motoEndpoint,
      stage: 'dev',
      port: apiPort,
      log: (line) => console.error(`[api] ${line}`),
    });
  } catch (e) {
    console.error(`could not start the local stack: ${(e as Error).message}`);
    await stop(1);
    return;
  }

  // Slack: signed /annex requests work against ANNEX_API_URL; the worker runs in this process
  // (Lambda's Invoke API served locally) and answers reach a local stand-in for Slack.
  running.slack = await startSlackDev(stack, { log: (line) => console.error(`[slack] ${line}`) });

  // Expiry schedules fire on time and the sweep runs every minute, as on AWS.
  running.enforcer = startEnforcer({
    motoEndpoint: stack.motoEndpoint,
    region: stack.region,
    stage: stack.stage,
    scheduleGroup: stack.scheduleGroup,
    ...(schedulerPrecisionMs === undefined ? {} : { precisionMs: schedulerPrecisionMs }),
    ...(schedulerSeed === undefined ? {} : { seed: schedulerSeed }),
    log: (line) => console.error(`[enforce] ${line}`),
    // EC2 events moto cannot send: state changes from its listings, and `npm run dev:event`'s files.
    eventsDir: join(repoRoot, '.annex', 'events'),
    watchInstancesMs: 2000,
    // A spot warning also reaches the instance's metadata (spot/instance-action), where its agent
    // sees it within 5 s, drains HTCondor and reports the interruption, as on AWS.
    onEventFile: (event) => {
      const detail = event.detail as Record<string, unknown> | undefined;
      const id = detail?.['instance-id'];
      if (event['detail-type'] !== 'EC2 Spot Instance Interruption Warning' || typeof id !== 'string') return;
      const time = new Date(Date.now() + 120_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
      running.instances?.setSpotAction(id, {
        action: String(detail?.['instance-action'] ?? 'terminate'),
        time,
      });
    },
  });

  // Each instance moto launches boots the real annex-boot and annex-agent (as on AWS).
  if (runInstances) {
    running.instances = await startInstanceRunner({
      stack,
      ...(heartbeatSeconds === undefined ? {} : { heartbeatSeconds }),
      ...(idleSeconds === undefined ? {} : { idleSeconds }),
      ...(slots === undefined ? {} : { slots }),
      verbose: process.env.ANNEX_DEV_INSTANCE_LOG === 'verbose',
      log: (line) => console.error(`[instance] ${line}`),
    });
  }

  const user = stack.users.find((u) => u.name === defaultDevUserName) ?? stack.users[0];
  if (user === undefined) throw new Error('no dev users');
  // An IDTOKENS pool beside the password one: its instances get their own lease-bound token from
  // the control plane; the throw-away signing key lives only in the emulator's SSM.
  const admin = stack.users.find((u) => u.admin === true);
  if (admin === undefined) throw new Error('no dev admin to register the tokens pool');
  const tokens = await stack.as(admin.name).request('PUT', `/v1/pools/${TOKENS_POOL}`, {
    collectorHost: '127.0.0.1',
    collectorPort: 9618,
    trustDomain: 'annex.local',
    credential: { type: 'idtokens-signing-key', value: randomBytes(32).toString('base64url') },
  });
  if (tokens.status !== 200)
    throw new Error(`could not register the tokens pool: ${JSON.stringify(tokens.body)}`);
  const dir = join(repoRoot, '.annex');
  mkdirSync(dir, { recursive: true });
  writeDevUsers(join(dir, 'dev-users.json'), stack.users);
  const env = {
    ANNEX_API_URL: stack.apiUrl,
    AWS_ENDPOINT_URL: stack.motoEndpoint,
    AWS_ENDPOINT_URL_DYNAMODB: stack.dynamoEndpoint,
    AWS_REGION: stack.region,
    AWS_ACCESS_KEY_ID: user.accessKeyId,
    AWS_SECRET_ACCESS_KEY: user.secretAccessKey,
    ANNEX_STAGE: stack.stage,
    ANNEX_TABLE_NAME: stack.tableName,
    // Slack (workspace T0DEV, user U0DEV → the default user): `npm run dev:slack -- "/annex list"`.
    SLACK_SIGNING_SECRET: running.slack.signingSecret,
    ANNEX_SLACK_STANDIN_URL: running.slack.standIn.url,
    // Where each instance's root is (npm run dev:instances reads their tokens there).
    ...(running.instances === undefined ? {} : { ANNEX_DEV_INSTANCES_DIR: running.instances.workDir }),
  };
  writeFileSync(
    join(dir, 'dev.env'),
    `# Local Annex stack (throw-away keys; user ${user.name}). Other users: .annex/dev-users.json\n` +
      Object.entries(env)
        .map(([k, v]) => `export ${k}=${v}`)
        .join('\n') +
      '\n',
    { mode: 0o600 },
  );

  const sign = `--aws-sigv4 "aws:amz:$AWS_REGION:execute-api" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"`;
  console.log(`
Annex local stack is up (everything on 127.0.0.1, nothing touches AWS).

  API (SigV4, service execute-api)  ${stack.apiUrl}
  DynamoDB Local                    ${stack.dynamoEndpoint}   table ${stack.tableName}
  moto (EC2, SSM, KMS, IAM, …)      ${stack.motoEndpoint}
  users                             ${stack.users.map((u) => `${u.name}${u.admin === true ? ' (admin)' : ''}`).join(', ')}  → .annex/dev-users.json
  pools                             default (password) and ${TOKENS_POOL} (IDTOKENS, trust domain annex.local),
                                    both shared, registered by admin
  Slack                             POST $ANNEX_API_URL/v1/slack/commands (signed with SLACK_SIGNING_SECRET);
                                    team T0DEV user U0DEV → ${user.name}; answers go to ${running.slack.standIn.url}
  enforcement                       expiry schedules fire on time; the sweep runs every minute
  instances                         ${
    running.instances === undefined
      ? 'records in moto only (--no-instances / ANNEX_DEV_INSTANCES=off)'
      : `each runs the real annex-boot and annex-agent (fake IMDS, HTCondor stand-in)
                                    heartbeat ${heartbeatSeconds === undefined ? '60 s' : `${heartbeatSeconds} s`}, idle shutdown after ${
                                      idleSeconds === undefined ? "the annex's idle time" : `${idleSeconds} s`
                                    }; roots in ${running.instances.workDir}`
  }

In another terminal:

  source .annex/dev.env

  # create an annex of two on-demand instances
  curl -sS --fail-with-body ${sign} \\
    -H 'content-type: application/json' -H 'Idempotency-Key: demo-1' \\
    -d '{"name":"demo","count":2,"instanceTypes":["m5.large"],"durationSeconds":3600}' \\
    "$ANNEX_API_URL/v1/annexes"

  # see it, with its instances and events; then extend it, add a node, end it
  curl -sS --fail-with-body ${sign} "$ANNEX_API_URL/v1/annexes/demo"
  curl -sS --fail-with-body ${sign} -H 'content-type: application/json' -d '{"durationSeconds":7200}' "$ANNEX_API_URL/v1/annexes/demo/extend"
  curl -sS --fail-with-body ${sign} -H 'content-type: application/json' -d '{"count":1}' "$ANNEX_API_URL/v1/annexes/demo/instances"
  curl -sS --fail-with-body ${sign} -X DELETE "$ANNEX_API_URL/v1/annexes/demo"

  # the same with the annex CLI (condor_annex's spelling works too), then a spot annex
  npx annex -count 1 -annex-name ToddsGPU -aws-on-demand-instance-type p2.xlarge -yes
  npx annex status ToddsGPU
  npx annex create cheap -n 2 -t m5.large -t c5.large --spot --yes
  npm run dev:event -- spot-warning cheap   # EC2's two-minute warning to one of its instances (or give an instance id)

  # the same from Slack: a signed slash command, then what the Slack stand-in received
  npm run dev:slack -- "/annex create demo2 count=1 type=m5.large duration=1h"
  npm run dev:slack -- --click extend demo2

  # an annex in the IDTOKENS pool: each instance gets its own token (never the key), renewed on extend
  npx annex create tok -n 1 -t m5.large --pool ${TOKENS_POOL} --yes

  # the instances as EC2 (moto) has them, with their heartbeats and token expiry
  npm run dev:instances

  # a demo that ends by itself: heartbeats every 5 s, idle shutdown after 2 minutes
  #   ANNEX_DEV_HEARTBEAT_SECONDS=5 npm run dev   (then create with "idleSeconds":120)

Ctrl-C stops everything.
`);
};

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
