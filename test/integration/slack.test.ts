// /annex on the local stack, end to end: Slack-signed requests through the local gateway (no
// SigV4 on the Slack routes, form bodies base64-encoded as HTTP APIs deliver them) to the real
// handlers; the worker invoked asynchronously through Lambda's Invoke API (served in-process by
// scripts/devstack/lambda-local.ts); answers and notices received by a local HTTP stand-in for Slack.
import { randomBytes } from 'node:crypto';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { handler as notify } from '../../handlers/slack-notify.ts';
import {
  DEV_SLACK_CHANNEL,
  DEV_SLACK_TEAM,
  DEV_SLACK_USER,
  interactionBody,
  slackHeaders,
  slashCommandBody,
  startSlackDev,
  type SlackDev,
} from '../../scripts/devstack/slack-dev.ts';
import type { SlackDelivery } from '../../scripts/devstack/slack-standin.ts';
import type { LocalStack } from '../../scripts/devstack/stack.ts';
import { integrationStack } from '../support/integration-stack.ts';

let stack: LocalStack;
let slack: SlackDev;
let dynamo: DynamoDBClient;
let ec2: EC2Client;

beforeAll(async () => {
  stack = await integrationStack('sl');
  slack = await startSlackDev(stack);
  dynamo = new DynamoDBClient(stack.clientConfig('dynamodb'));
  ec2 = new EC2Client(stack.clientConfig('moto'));
});

afterAll(async () => {
  await slack?.stop();
  await stack?.stop();
  dynamo?.destroy();
  ec2?.destroy();
});

beforeEach(() => slack.lambda.setAsyncDelay(0));

const tableItems = async (): Promise<string[]> => {
  const out = await dynamo.send(new ScanCommand({ TableName: stack.tableName, ConsistentRead: true }));
  return (out.Items ?? []).map((i) => `${i.PK?.S}|${i.SK?.S}|${i.version?.N ?? ''}`).sort();
};

const post = async (path: string, body: string, headers: Record<string, string>) => {
  const started = Date.now();
  const response = await fetch(`${stack.apiUrl}${path}`, { method: 'POST', body, headers });
  const text = await response.text();
  return {
    status: response.status,
    body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
    ms: Date.now() - started,
  };
};

/** Posts a signed slash command; returns the ack and the response_url used. */
const command = async (
  text: string,
  options: { teamId?: string; userId?: string; secret?: string; timestamp?: number } = {},
) => {
  const responseUrl = slack.standIn.responseUrl();
  const body = slashCommandBody({
    text,
    responseUrl,
    ...(options.teamId === undefined ? {} : { teamId: options.teamId }),
    ...(options.userId === undefined ? {} : { userId: options.userId }),
  });
  const headers = slackHeaders(options.secret ?? slack.signingSecret, body, options.timestamp);
  const ack = await post('/v1/slack/commands', body, headers);
  return { ack, responseUrl, body, headers };
};

const answerTo = (responseUrl: string, timeoutMs?: number): Promise<SlackDelivery> =>
  slack.standIn.waitFor((d) => d.kind === 'response' && responseUrl.endsWith(d.path), timeoutMs);

const sectionText = (d: SlackDelivery): string =>
  ((d.body.blocks ?? []) as { type: string; text?: { text: string } }[])
    .filter((b) => b.type === 'section')
    .map((b) => b.text?.text ?? '')
    .join('\n');

const actionsOf = (d: SlackDelivery) =>
  (
    (d.body.blocks ?? []) as {
      type: string;
      elements?: { action_id: string; value: string; confirm?: unknown }[];
    }[]
  )
    .filter((b) => b.type === 'actions')
    .flatMap((b) => b.elements ?? []);

const click = async (actionId: string, value: string, userId = DEV_SLACK_USER) => {
  const responseUrl = slack.standIn.responseUrl();
  const body = interactionBody({
    type: 'block_actions',
    team: { id: DEV_SLACK_TEAM, domain: 'annex-dev' },
    user: { id: userId, team_id: DEV_SLACK_TEAM },
    channel: { id: DEV_SLACK_CHANNEL },
    response_url: responseUrl,
    trigger_id: `${Date.now()}.1.${randomBytes(6).toString('hex')}`,
    actions: [{ action_id: actionId, block_id: 'annex:x', value, type: 'button' }],
  });
  const ack = await post('/v1/slack/interactions', body, slackHeaders(slack.signingSecret, body));
  return { ack, responseUrl };
};

const alice = () => stack.as('alice');

describe('/annex create on the local stack', () => {
  it('creates the annex from a signed fixture and posts its status card to response_url', async () => {
    const { ack, responseUrl } = await command('create demo count=1 type=m5.large duration=2h idle=20m');

    expect(ack.status).toBe(200);
    expect(ack.body).toEqual({ response_type: 'ephemeral', text: 'Working on it…' });
    const card = await answerTo(responseUrl, 20_000);
    expect(card.body.response_type).toBe('in_channel');
    expect(sectionText(card)).toMatch(/\*demo\* · RUNNING/);
    expect(sectionText(card)).toContain('1/1 instances running · m5.large · pool default');
    expect(sectionText(card)).toMatch(/Expires in \*(1h 59m|2h)\*/);
    // The annex view's estimated spend (the bundled on-demand price of m5.large), when it has one.
    expect(sectionText(card)).toMatch(/Estimated spend: ~\$0\.\d\d\/h · \$0\.\d\d so far/);
    const buttons = actionsOf(card);
    expect(buttons.map((b) => b.action_id)).toEqual(['annex_extend', 'annex_terminate']);
    expect(buttons[1]?.confirm).toBeDefined();
    // The annex is alice's (the mapped principal), with its instance running in EC2 (moto).
    const got = await alice().request<{ annex: { id: string; state: string; idleSeconds: number } }>(
      'GET',
      '/v1/annexes/demo',
    );
    expect(got.body.annex).toMatchObject({ state: 'RUNNING', idleSeconds: 1200 });
    const instances = await ec2.send(
      new DescribeInstancesCommand({ Filters: [{ Name: 'tag:annex:id', Values: [got.body.annex.id] }] }),
    );
    expect(instances.Reservations?.flatMap((r) => r.Instances ?? []).length).toBe(1);
  });

  it('answers list and status with cards of the mapped user’s annexes', async () => {
    const list = await command('list');
    expect(list.ack.status).toBe(200);
    expect(sectionText(await answerTo(list.responseUrl))).toContain('*demo*');

    const status = await command('status demo');
    const card = await answerTo(status.responseUrl);
    expect(card.body.response_type).toBe('ephemeral');
    expect(sectionText(card)).toContain('1/1 instances running');
  });

  it('extends by the given time from the current expiry', async () => {
    const before = await alice().request<{ annex: { expiresAt: string } }>('GET', '/v1/annexes/demo');
    const { responseUrl } = await command('extend demo 1h');
    expect(sectionText(await answerTo(responseUrl))).toContain('Extended demo');
    const after = await alice().request<{ annex: { expiresAt: string } }>('GET', '/v1/annexes/demo');
    expect(Date.parse(after.body.annex.expiresAt) - Date.parse(before.body.annex.expiresAt)).toBe(3600_000);
  });

  it('answers help at once, without the worker', async () => {
    const done = slack.lambda.completed.length;
    const { ack } = await command('help');
    expect(ack.body.text).toContain('/annex create NAME count=N type=T');
    await slack.lambda.idle();
    expect(slack.lambda.completed.length).toBe(done);
  });

  it('tells a mistyped command what is wrong, naming the option, and writes nothing', async () => {
    const before = await tableItems();
    const { ack } = await command('create x count=two type=m5.large');
    expect(ack.body.text).toMatch(/^count: /);
    expect(await tableItems()).toEqual(before);
  });
});

describe('/annex create … spot', () => {
  it('creates a spot annex (market spot, as the create API has it)', async () => {
    const { ack, responseUrl } = await command('create cheap count=1 type=m5.large spot duration=1h');

    expect(ack.body.text).toBe('Working on it…');
    const card = await answerTo(responseUrl, 20_000);
    expect(sectionText(card)).toMatch(/\*cheap\* · RUNNING · spot/);
    const got = await alice().request<{ annex: { market: string } }>('GET', '/v1/annexes/cheap');
    expect(got.body.annex.market).toBe('spot');
    const end = await command('terminate cheap');
    expect(sectionText(await answerTo(end.responseUrl))).toContain('TERMINATED');
  });
});

describe('buttons', () => {
  it('Extend 1h moves the expiry and replaces the card', async () => {
    const status = await command('status demo');
    const card = await answerTo(status.responseUrl);
    const extend = actionsOf(card).find((b) => b.action_id === 'annex_extend');
    const before = await alice().request<{ annex: { expiresAt: string } }>('GET', '/v1/annexes/demo');

    const { ack, responseUrl } = await click('annex_extend', extend?.value ?? '');

    expect(ack.status).toBe(200);
    const replaced = await answerTo(responseUrl);
    expect(replaced.body.replace_original).toBe(true);
    expect(sectionText(replaced)).toContain('Extended demo by 1h');
    const after = await alice().request<{ annex: { expiresAt: string } }>('GET', '/v1/annexes/demo');
    expect(Date.parse(after.body.annex.expiresAt) - Date.parse(before.body.annex.expiresAt)).toBe(3600_000);
  });

  it('Terminate ends the annex and replaces the card without buttons', async () => {
    const status = await command('status demo');
    const terminate = actionsOf(await answerTo(status.responseUrl)).find(
      (b) => b.action_id === 'annex_terminate',
    );

    const { responseUrl } = await click('annex_terminate', terminate?.value ?? '');

    const replaced = await answerTo(responseUrl);
    expect(sectionText(replaced)).toMatch(/Terminated demo[\s\S]*TERMINATED/);
    expect(actionsOf(replaced)).toEqual([]);
    const got = await alice().request<{ annex: { state: string; endReason: string } }>(
      'GET',
      '/v1/annexes/demo',
    );
    expect(got.body.annex).toMatchObject({ state: 'TERMINATED', endReason: 'user' });
  });

  it('a button on a card of an ended annex does nothing to a new annex of that name', async () => {
    const first = await command('create again count=1 type=m5.large');
    const old = actionsOf(await answerTo(first.responseUrl, 20_000)).find(
      (b) => b.action_id === 'annex_terminate',
    );
    const end = await command('terminate again');
    expect(sectionText(await answerTo(end.responseUrl))).toContain('TERMINATED');
    const second = await command('create again count=1 type=m5.large');
    await answerTo(second.responseUrl, 20_000);

    const { responseUrl } = await click('annex_terminate', old?.value ?? '');

    expect((await answerTo(responseUrl)).body.text).toMatch(/earlier annex named again/);
    const got = await alice().request<{ annex: { state: string } }>('GET', '/v1/annexes/again');
    expect(got.body.annex.state).toBe('RUNNING');
  });
});

describe('refusals: nothing is written and no work is done', () => {
  const refused = async (send: () => Promise<{ status: number; body: Record<string, unknown> }>) => {
    await slack.lambda.idle();
    const before = await tableItems();
    const jobs = slack.lambda.completed.length;
    const delivered = slack.standIn.received.length;
    const result = await send();
    await slack.lambda.idle();
    expect(await tableItems()).toEqual(before);
    expect(slack.lambda.completed.length).toBe(jobs);
    expect(slack.standIn.received.length).toBe(delivered);
    return result;
  };

  it('a forged signature → 401 without detail', async () => {
    const result = await refused(
      async () => (await command('list', { secret: 'not-the-signing-secret' })).ack,
    );
    expect(result.status).toBe(401);
    expect(result.body).toEqual({ error: { code: 'Unauthorized', message: 'unauthorized' } });
  });

  it('a body changed after signing → 401', async () => {
    const result = await refused(async () => {
      const body = slashCommandBody({ text: 'list', responseUrl: slack.standIn.responseUrl() });
      return post(
        '/v1/slack/commands',
        body.replace('list', 'help'),
        slackHeaders(slack.signingSecret, body),
      );
    });
    expect(result.status).toBe(401);
  });

  it('a timestamp more than 5 minutes old → 401', async () => {
    const result = await refused(
      async () => (await command('list', { timestamp: Math.floor(Date.now() / 1000) - 301 })).ack,
    );
    expect(result.status).toBe(401);
  });

  it('a replayed request → 401, and the first one is done once', async () => {
    const { ack, body, headers, responseUrl } = await command('list');
    expect(ack.status).toBe(200);
    await answerTo(responseUrl);
    // The replay is the same bytes with the original's signature and timestamp.
    const result = await refused(() => post('/v1/slack/commands', body, headers));
    expect(result.status).toBe(401);
  });

  it('another workspace → refused with a message', async () => {
    const result = await refused(async () => (await command('list', { teamId: 'T0OTHER' })).ack);
    expect(result.status).toBe(200);
    expect(result.body.text).toBe('Annex is not enabled for this Slack workspace.');
  });

  it('an unmapped user → told so, and a create is not done', async () => {
    const result = await refused(
      async () => (await command('create sneaky count=1 type=m5.large', { userId: 'U0NOBODY' })).ack,
    );
    expect(result.body.response_type).toBe('ephemeral');
    expect(result.body.text).toMatch(/not linked to an Annex identity, so nothing was done/);
    expect(result.body.text).toContain('PUT /v1/slack/users/T0DEV/U0NOBODY');
  });

  it('an unmapped user’s button click → told so', async () => {
    const value = JSON.stringify({
      id: 'ax-0123456789abcdef0123',
      name: 'again',
      owner: stack.users[1]?.principalArn,
    });
    const result = await refused(async () => (await click('annex_terminate', value, 'U0NOBODY')).ack);
    expect(result.body.text).toMatch(/not linked/);
  });

  it('Slack’s ssl_check → an empty 200', async () => {
    const result = await refused(async () => {
      const body = 'ssl_check=1&token=deprecated';
      return post('/v1/slack/commands', body, slackHeaders(slack.signingSecret, body));
    });
    expect(result).toMatchObject({ status: 200, body: {} });
  });

  it('a response_url outside the configured prefix → 400 naming it', async () => {
    const result = await refused(async () => {
      const body = slashCommandBody({ text: 'list', responseUrl: 'https://attacker.example/collect' });
      return post('/v1/slack/commands', body, slackHeaders(slack.signingSecret, body));
    });
    expect(result.status).toBe(400);
    expect(result.body).toMatchObject({ error: { code: 'ValidationError', field: 'response_url' } });
  });
});

describe('acknowledgement', () => {
  it('answers within 3 s while the worker is slow, and the answer follows later', async () => {
    slack.lambda.setAsyncDelay(4000);

    const { ack, responseUrl } = await command('status again');

    expect(ack.status).toBe(200);
    expect(ack.ms).toBeLessThan(3000);
    expect(slack.standIn.received.some((d) => responseUrl.endsWith(d.path))).toBe(false);
    const card = await answerTo(responseUrl, 10_000);
    expect(Date.parse(card.at) - Date.now()).toBeLessThan(1000);
    expect(sectionText(card)).toContain('*again*');
  });
});

describe('expiry warning and end notice', () => {
  it('warns the channel once per expiry within 10 minutes of it, and says why it ended', async () => {
    const { responseUrl } = await command('create short count=1 type=m5.large duration=5m');
    await answerTo(responseUrl, 20_000);
    const posts = () =>
      slack.standIn.received.filter(
        (d) => d.kind === 'chat.postMessage' && JSON.stringify(d.body).includes('short'),
      );

    await notify();
    await notify();

    expect(posts()).toHaveLength(1);
    expect(posts()[0]?.body.channel).toBe(DEV_SLACK_CHANNEL);
    expect(posts()[0]?.body.text).toMatch(/^Annex short expires in (4|5)m/);
    expect(JSON.stringify(posts()[0]?.body.blocks)).toContain('annex_extend');

    const end = await command('terminate short');
    await answerTo(end.responseUrl);
    await notify();
    await notify();

    expect(posts()).toHaveLength(2);
    expect(posts()[1]?.body.text).toBe('Annex short ended: it was terminated');
  });
});

describe('PUT/GET/DELETE /v1/slack/users/{teamId}/{userId}', () => {
  it('is for administrators only and validates its input', async () => {
    const bob = stack.users.find((u) => u.name === 'bob');
    const asBob = await stack
      .as('bob')
      .request('PUT', '/v1/slack/users/T0DEV/U0BOB', { principalArn: bob?.principalArn, pools: ['default'] });
    expect(asBob.status).toBe(403);
    const bad = await stack
      .as('admin')
      .request('PUT', '/v1/slack/users/T0DEV/U0BOB', { principalArn: 'bob', pools: ['default'] });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: { field: 'principalArn' } });

    const put = await stack
      .as('admin')
      .request('PUT', '/v1/slack/users/T0DEV/U0BOB', { principalArn: bob?.principalArn, pools: ['default'] });
    expect(put.status).toBe(200);
    const got = await stack.as('admin').request('GET', '/v1/slack/users/T0DEV/U0BOB');
    expect(got.body).toMatchObject({
      slackUser: { teamId: 'T0DEV', userId: 'U0BOB', principalArn: bob?.principalArn, pools: ['default'] },
    });
    const deleted = await stack.as('admin').request('DELETE', '/v1/slack/users/T0DEV/U0BOB');
    expect(deleted.status).toBe(204);
    expect((await stack.as('admin').request('GET', '/v1/slack/users/T0DEV/U0BOB')).status).toBe(404);
  });

  it('a mapped user sees only its principal’s annexes (the API’s ownership rules)', async () => {
    const bob = stack.users.find((u) => u.name === 'bob');
    await stack
      .as('admin')
      .request('PUT', '/v1/slack/users/T0DEV/U0BOB', { principalArn: bob?.principalArn, pools: ['default'] });

    const { responseUrl } = await command('status again', { userId: 'U0BOB' });

    expect((await answerTo(responseUrl)).body.text).toMatch(/no annex named again/);
  });
});
