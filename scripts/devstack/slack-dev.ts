// Slack on the local stack: a throw-away signing secret and bot token in SSM (moto), the Slack
// stand-in (scripts/devstack/slack-standin.ts) as response_url and Web API target, the worker invoked
// in this process (scripts/devstack/lambda-local.ts behind AWS_ENDPOINT_URL_LAMBDA), workspace T0DEV
// allowed, and Slack user T0DEV/U0DEV mapped to the default dev user. Used by `npm run dev` and
// the tests; call it after startLocalStack and before the first Slack request.
import { randomBytes } from 'node:crypto';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { slackSignature } from '../../shared/slack/signature.ts';
import { defaultDevUserName } from './dev-users.ts';
import { startLocalLambda, type LocalLambda } from './lambda-local.ts';
import { startSlackStandIn, type SlackStandIn } from './slack-standin.ts';
import type { LocalStack } from './stack.ts';

export const DEV_SLACK_TEAM = 'T0DEV';
export const DEV_SLACK_USER = 'U0DEV';
export const DEV_SLACK_CHANNEL = 'C0DEV';

export interface SlackDev {
  signingSecret: string;
  botToken: string;
  standIn: SlackStandIn;
  lambda: LocalLambda;
  stop(): Promise<void>;
}

export interface SlackDevOptions {
  standInPort?: number;
  /** Delay before the worker runs (tests: a slow worker). */
  workerDelayMs?: number;
  /** Map T0DEV/U0DEV to this dev user (default: the default dev user). */
  mapTo?: string;
  log?: (line: string) => void;
}

export async function startSlackDev(stack: LocalStack, options: SlackDevOptions = {}): Promise<SlackDev> {
  const signingSecret = randomBytes(16).toString('hex');
  const botToken = `xoxb-local-${randomBytes(12).toString('hex')}`;
  const ssm = new SSMClient(stack.clientConfig('moto'));
  for (const [name, value] of [
    [`/annex/${stack.stage}/slack/signing-secret`, signingSecret],
    [`/annex/${stack.stage}/slack/bot-token`, botToken],
  ] as const) {
    await ssm.send(
      new PutParameterCommand({ Name: name, Value: value, Type: 'SecureString', Overwrite: true }),
    );
  }
  ssm.destroy();
  const standIn = await startSlackStandIn({
    botToken,
    ...(options.standInPort === undefined ? {} : { port: options.standInPort }),
  });
  const lambda = await startLocalLambda({
    stage: stack.stage,
    ...(options.workerDelayMs === undefined ? {} : { asyncDelayMs: options.workerDelayMs }),
    ...(options.log === undefined ? {} : { log: options.log }),
  });
  Object.assign(process.env, {
    ANNEX_SLACK_TEAM_IDS: DEV_SLACK_TEAM,
    ANNEX_SLACK_WORKER_FUNCTION: `annex-${stack.stage}-slackWorker`,
    // Explicitly configured: in production these are https://hooks.slack.com/ and https://slack.com/api/.
    ANNEX_SLACK_RESPONSE_URL_PREFIX: `${standIn.url}/response/`,
    ANNEX_SLACK_API_URL: `${standIn.url}/api/`,
    AWS_ENDPOINT_URL_LAMBDA: lambda.url,
  });
  const admin = stack.users.find((u) => u.admin === true);
  const user = stack.users.find((u) => u.name === (options.mapTo ?? defaultDevUserName));
  if (admin === undefined || user === undefined)
    throw new Error('the Slack dev mapping needs an admin and the default user');
  const mapped = await stack
    .as(admin.name)
    .request('PUT', `/v1/slack/users/${DEV_SLACK_TEAM}/${DEV_SLACK_USER}`, {
      principalArn: user.principalArn,
      pools: ['default'],
    });
  if (mapped.status !== 200)
    throw new Error(`could not map the dev Slack user: ${JSON.stringify(mapped.body)}`);
  return {
    signingSecret,
    botToken,
    standIn,
    lambda,
    stop: async () => {
      await lambda.stop();
      await standIn.stop();
    },
  };
}

export interface SlashCommand {
  text: string;
  teamId?: string;
  userId?: string;
  channelId?: string;
  responseUrl: string;
  triggerId?: string;
}

/** A slash command's form body, as Slack sends it. */
export const slashCommandBody = (c: SlashCommand): string =>
  new URLSearchParams({
    token: 'deprecated-verification-token',
    team_id: c.teamId ?? DEV_SLACK_TEAM,
    team_domain: 'annex-dev',
    channel_id: c.channelId ?? DEV_SLACK_CHANNEL,
    channel_name: 'hpc',
    user_id: c.userId ?? DEV_SLACK_USER,
    user_name: 'dev',
    command: '/annex',
    text: c.text,
    api_app_id: 'A0DEV',
    response_url: c.responseUrl,
    trigger_id:
      c.triggerId ?? `${Date.now()}.${randomBytes(4).readUInt32BE(0)}.${randomBytes(8).toString('hex')}`,
  }).toString();

/** An interaction's form body (`payload=<JSON>`), as Slack sends it for a button click. */
export const interactionBody = (payload: Record<string, unknown>): string =>
  new URLSearchParams({ payload: JSON.stringify(payload) }).toString();

/** Slack's headers for a body: signature v0 over `v0:<timestamp>:<body>`. */
export const slackHeaders = (secret: string, body: string, timestamp = Math.floor(Date.now() / 1000)) => ({
  'content-type': 'application/x-www-form-urlencoded',
  'x-slack-request-timestamp': String(timestamp),
  'x-slack-signature': slackSignature(secret, timestamp, Buffer.from(body, 'utf8')),
});
