import { beforeEach, describe, expect, it } from 'vitest';
import { createAnnex } from '../../../shared/domain/annex-create.ts';
import { deleteAnnex } from '../../../shared/domain/annex-end.ts';
import type { Caller } from '../../../shared/domain/model.ts';
import { SlackAuthError } from '../../../shared/slack/errors.ts';
import type { SlackIdentity, SlackJob } from '../../../shared/slack/model.ts';
import type { SlackSettings } from '../../../shared/slack/ports.ts';
import {
  acceptAction,
  acceptCommand,
  NOT_THIS_TEAM,
  runSlackJob,
  WORKING,
  type SlackIngressDeps,
  type SlackRequest,
  type SlackWorkerDeps,
} from '../../../shared/slack/service.ts';
import { notifySlack } from '../../../shared/slack/notify.ts';
import { putSlackIdentity } from '../../../shared/slack/identities.ts';
import { TEST_ADMIN, domainDeps, putDefaultPool } from '../../support/domain-deps.ts';
import { silentLogger, type FakeClock, type InMemoryLeaseStore } from '../../support/fakes.ts';
import { FakeJobs, FakeMessenger, FakeSlackSecrets, InMemorySlackStore } from '../../support/slack-fakes.ts';

const alice: Caller = { principalArn: 'arn:aws:iam::123456789012:user/alice', admin: false };
const bob: Caller = { principalArn: 'arn:aws:iam::123456789012:user/bob', admin: false };
const admin: Caller = { principalArn: 'arn:aws:iam::123456789012:user/admin', admin: true };

const settings: SlackSettings = {
  teamIds: ['T0TEAM'],
  signingSecretParameter: '/annex/test/slack/signing-secret',
  botTokenParameter: '/annex/test/slack/bot-token',
  responseUrlPrefix: 'https://hooks.slack.com/',
  apiUrl: 'https://slack.com/api/',
  workerFunction: 'annex-test-slackWorker',
  warnBeforeSeconds: 600,
};

const aliceIdentity: SlackIdentity = {
  teamId: 'T0TEAM',
  userId: 'U0ALICE',
  principalArn: alice.principalArn,
  pools: ['default'],
  updatedAt: '2026-11-25T11:00:00.000Z',
  updatedBy: admin.principalArn,
};

let clock: FakeClock;
let store: InMemoryLeaseStore;
let slackStore: InMemorySlackStore;
let jobs: FakeJobs;
let messenger: FakeMessenger;
let ingress: SlackIngressDeps;
let worker: SlackWorkerDeps;
let n = 0;

const request = (over: Partial<SlackRequest> = {}): SlackRequest => ({
  teamId: 'T0TEAM',
  userId: 'U0ALICE',
  channelId: 'C0CHAN',
  responseUrl: 'https://hooks.slack.com/commands/T0TEAM/1/abc',
  triggerId: `trigger.${++n}`,
  signature: `v0=${String(n).padStart(64, '0')}`,
  timestamp: Math.floor(clock.now().getTime() / 1000),
  ...over,
});

/** Acknowledges a command, then runs the job it handed over, as the worker would. */
const run = async (text: string, over: Partial<SlackRequest> = {}) => {
  const ack = await acceptCommand(ingress, request(over), text);
  const job = jobs.jobs.at(-1);
  if (ack.text === WORKING && job !== undefined) await runSlackJob(worker, job);
  return { ack, answer: messenger.responses.at(-1)?.message };
};

beforeEach(async () => {
  slackStore = new InMemorySlackStore();
  jobs = new FakeJobs();
  messenger = new FakeMessenger();
  const domain = domainDeps();
  ({ clock, store } = domain);
  await putDefaultPool(domain.deps);
  ingress = { slackStore, jobs, clock, log: domain.log, slack: settings };
  worker = {
    ...domain.deps,
    slackStore,
    messenger,
    slack: settings,
    identity: { adminArns: [TEST_ADMIN.principalArn], sessionOwnedRoles: [] },
  };
  await slackStore.putIdentity(aliceIdentity);
  slackStore.writes.length = 0;
});

describe('acknowledging a command', () => {
  it('records the signature, hands the work over and says it is working on it', async () => {
    const ack = await acceptCommand(ingress, request({ triggerId: '123.456.abc' }), 'status gpu');

    expect(ack).toEqual({ response_type: 'ephemeral', text: WORKING });
    expect(slackStore.writes).toEqual([expect.stringMatching(/^nonce v0=/)]);
    expect(jobs.jobs).toEqual([
      expect.objectContaining({
        teamId: 'T0TEAM',
        userId: 'U0ALICE',
        channelId: 'C0CHAN',
        idempotencyKey: 'slack:T0TEAM:123.456.abc',
        work: { type: 'command', command: { kind: 'status', name: 'gpu' } },
      }),
    ]);
  });

  it('returns before the worker has done anything, however slow it is', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let finished = false;
    jobs.onEnqueue = (job: SlackJob) =>
      void gate.then(async () => {
        await runSlackJob(worker, job);
        finished = true;
      });

    const ack = await acceptCommand(ingress, request(), 'list');

    expect(ack.text).toBe(WORKING);
    expect(finished).toBe(false);
    expect(messenger.responses).toEqual([]);
    release();
    await gate;
    await new Promise((r) => setTimeout(r, 0));
    expect(finished).toBe(true);
    expect(messenger.responses).toHaveLength(1);
  });

  it('refuses a replay of the same signature', async () => {
    const first = request();
    await acceptCommand(ingress, first, 'list');

    await expect(acceptCommand(ingress, first, 'list')).rejects.toBeInstanceOf(SlackAuthError);
    expect(jobs.jobs).toHaveLength(1);
  });

  it.each([
    ['another workspace', { teamId: 'T0OTHER' }, NOT_THIS_TEAM],
    ['an unmapped user', { userId: 'U0NOBODY' }, /not linked to an Annex identity, so nothing was done/],
  ])('refuses %s and writes nothing', async (_what, over, text) => {
    const ack = await acceptCommand(ingress, request(over), 'create gpu count=1 type=m5.large');

    expect(ack.text).toMatch(text);
    expect(slackStore.writes).toEqual([]);
    expect(jobs.jobs).toEqual([]);
  });

  it('refuses a response_url outside the configured prefix, naming it', async () => {
    await expect(
      acceptCommand(ingress, request({ responseUrl: 'https://hooks.slack.com.evil.example/x' }), 'list'),
    ).rejects.toMatchObject({ code: 'ValidationError', field: 'response_url' });
    await expect(
      acceptCommand(ingress, request({ responseUrl: 'https://hooks.slack.com@evil.example/x' }), 'list'),
    ).rejects.toMatchObject({ field: 'response_url' });
    expect(slackStore.writes).toEqual([]);
  });

  it('refuses a pool the mapping does not allow, and writes nothing', async () => {
    const ack = await acceptCommand(ingress, request(), 'create gpu count=1 type=m5.large pool=lab');

    expect(ack.text).toBe('pool: you may use default from Slack');
    expect(slackStore.writes).toEqual([]);
  });

  it('refuses what the API would refuse, naming the Slack option', async () => {
    const ack = await acceptCommand(ingress, request(), 'create gpu count=1 type=m5.large idle=30s');

    expect(ack.text).toMatch(/^idle: /);
    expect(jobs.jobs).toEqual([]);
  });

  it('maps spot to market spot', async () => {
    const { ack } = await run('create gpu count=1 type=m5.large spot');

    expect(ack.text).toBe(WORKING);
    expect((await store.findAnnexByName(alice.principalArn, 'gpu'))?.spec.market).toBe('spot');
  });

  it('answers help without a mapping and without the worker', async () => {
    const ack = await acceptCommand(ingress, request({ userId: 'U0NOBODY' }), 'help');

    expect(ack.text).toContain('/annex create NAME count=N type=T');
    expect(jobs.jobs).toEqual([]);
  });
});

describe('the worker', () => {
  it('creates as the mapped principal, watches the channel, and answers with the card', async () => {
    const { answer } = await run('create gpu count=2 type=p3.2xlarge duration=2h');

    const annex = await store.findAnnexByName(alice.principalArn, 'gpu');
    expect(annex).toMatchObject({ owner: alice.principalArn, state: 'RUNNING', requestedCount: 2 });
    expect(slackStore.watches.get(annex?.id ?? '')).toMatchObject({ channelId: 'C0CHAN', teamId: 'T0TEAM' });
    expect(answer).toMatchObject({ response_type: 'in_channel', text: '<@U0ALICE> created annex gpu' });
    expect(JSON.stringify(answer?.blocks)).toContain('2/2 instances running');
  });

  it('acts as the owner rule’s owner: a mapping to a role session creates as the role', async () => {
    // Prepare: a mapping stored before the owner rule, to one session of a shared role.
    await slackStore.putIdentity({
      ...aliceIdentity,
      principalArn: 'arn:aws:sts::123456789012:assumed-role/SharedRole/alice',
    });

    // Act
    const { answer } = await run('create gpu count=1 type=m5.large');

    // Assess
    const annex = await store.findAnnexByName('arn:aws:iam::123456789012:role/SharedRole', 'gpu');
    expect(annex).toMatchObject({ owner: 'arn:aws:iam::123456789012:role/SharedRole' });
    expect(
      await store.findAnnexByName('arn:aws:sts::123456789012:assumed-role/SharedRole/alice', 'gpu'),
    ).toBe(undefined);
    expect(answer).toMatchObject({ text: '<@U0ALICE> created annex gpu' });
  });

  it('replays a repeated create job onto the same annex', async () => {
    await run('create gpu count=1 type=m5.large');
    const job = jobs.jobs[0];
    if (job === undefined) throw new Error('no job');

    await runSlackJob(worker, job);

    expect((await store.listAnnexesByOwner(alice.principalArn)).length).toBe(1);
    expect(messenger.responses.at(-1)?.message.text).toBe('<@U0ALICE> created annex gpu');
  });

  it('applies the API’s ownership rules: another principal’s annex is not found', async () => {
    await createAnnex(worker, bob, {
      name: 'bobs',
      pool: 'default',
      count: 1,
      instanceTypes: ['m5.large'],
      market: 'on-demand',
    });

    const { answer } = await run('terminate bobs');

    expect(answer?.text).toBe(':warning: no annex named bobs');
    expect((await store.findAnnexByName(bob.principalArn, 'bobs'))?.state).toBe('RUNNING');
  });

  it('extends from the current expiry and terminates', async () => {
    await run('create gpu count=1 type=m5.large duration=1h');
    const before = Date.parse((await store.findAnnexByName(alice.principalArn, 'gpu'))?.expiresAt ?? '');

    await run('extend gpu 30m');
    expect(
      Date.parse((await store.findAnnexByName(alice.principalArn, 'gpu'))?.expiresAt ?? '') - before,
    ).toBe(1800_000);

    const { answer } = await run('terminate gpu');
    expect(answer?.text).toBe('Terminated gpu');
    expect((await store.findAnnexByName(alice.principalArn, 'gpu'))?.state).toBe('TERMINATED');
  });

  it('does a button click on the card’s own annex only', async () => {
    await run('create gpu count=1 type=m5.large');
    const first = await store.findAnnexByName(alice.principalArn, 'gpu');
    if (first === undefined) throw new Error('no annex');
    await deleteAnnex(worker, alice, { name: 'gpu' });
    await run('create gpu count=1 type=m5.large');
    const stale = {
      kind: 'terminate' as const,
      annex: { id: first.id, name: 'gpu', owner: alice.principalArn },
    };

    expect(await acceptAction(ingress, request(), stale)).toBeUndefined();
    await runSlackJob(worker, jobs.jobs.at(-1) as SlackJob);

    expect(messenger.responses.at(-1)?.message.text).toMatch(/earlier annex named gpu/);
    expect((await store.findAnnexByName(alice.principalArn, 'gpu'))?.state).toBe('RUNNING');
  });

  it('does nothing for a job whose response_url is not Slack’s', async () => {
    await acceptCommand(ingress, request(), 'create gpu count=1 type=m5.large');
    const job = { ...(jobs.jobs[0] as SlackJob), responseUrl: 'https://evil.example/x' };

    await runSlackJob(worker, job);

    expect(messenger.responses).toEqual([]);
    expect(await store.listAnnexesByOwner(alice.principalArn)).toEqual([]);
  });

  it('answers an unmapped user (a mapping removed after the ack) without doing anything', async () => {
    await acceptCommand(ingress, request(), 'create gpu count=1 type=m5.large');
    await slackStore.deleteIdentity('T0TEAM', 'U0ALICE');

    await runSlackJob(worker, jobs.jobs[0] as SlackJob);

    expect(messenger.responses[0]?.message.text).toMatch(/not linked/);
    expect(await store.listAnnexesByOwner(alice.principalArn)).toEqual([]);
  });
});

describe('notifySlack', () => {
  const notifyDeps = (withToken = true) => {
    const secrets = new FakeSlackSecrets();
    if (!withToken) secrets.token = undefined;
    return {
      store,
      slackStore,
      secrets,
      messenger,
      clock,
      log: silentLogger(),
      slack: settings,
    };
  };

  it('warns once per expiry within 10 minutes of it, again after an extension, and tells why it ended', async () => {
    await run('create gpu count=1 type=m5.large duration=30m');

    await notifySlack(notifyDeps());
    expect(messenger.posts).toEqual([]);

    clock.advance(21 * 60);
    await notifySlack(notifyDeps());
    await notifySlack(notifyDeps());
    expect(messenger.posts.map((p) => [p.channel, p.message.text])).toEqual([
      ['C0CHAN', 'Annex gpu expires in 9m'],
    ]);
    expect(JSON.stringify(messenger.posts[0]?.message.blocks)).toContain('annex_extend');

    await run('extend gpu 1h');
    await notifySlack(notifyDeps());
    expect(messenger.posts).toHaveLength(1);
    clock.advance(60 * 60);
    await notifySlack(notifyDeps());
    expect(messenger.posts.at(-1)?.message.text).toBe('Annex gpu expires in 9m');

    await run('terminate gpu');
    await notifySlack(notifyDeps());
    await notifySlack(notifyDeps());
    expect(messenger.posts.map((p) => p.message.text).at(-1)).toBe('Annex gpu ended: it was terminated');
    expect(messenger.posts).toHaveLength(3);
    expect(slackStore.watches.size).toBe(0);
  });

  it('gives up a message Slack will never take, and retries one it could not take now', async () => {
    await run('create gpu count=1 type=m5.large duration=5m');
    messenger.failNextPost(new Error('socket hang up'));

    const failed = await notifySlack(notifyDeps());
    expect(failed.failed).toBe(1);
    messenger.failNextPost();
    const given = await notifySlack(notifyDeps());
    expect(given).toMatchObject({ warned: 1, failed: 0 });
    expect(messenger.posts).toEqual([]);
    await notifySlack(notifyDeps());
    expect(messenger.posts).toEqual([]);
  });

  it('without a bot token posts nothing and forgets ended annexes', async () => {
    await run('create gpu count=1 type=m5.large duration=5m');
    await run('terminate gpu');

    await notifySlack(notifyDeps(false));

    expect(messenger.posts).toEqual([]);
    expect(slackStore.watches.size).toBe(0);
  });
});

describe('putSlackIdentity', () => {
  const deps = () => ({
    slackStore,
    clock,
    identity: { adminArns: [admin.principalArn], sessionOwnedRoles: ['AWSReservedSSO_*'] },
  });

  it('maps to the owner identity: a session of a shared role becomes the role', async () => {
    // Act
    const shared = await putSlackIdentity(deps(), admin, 'T0TEAM', 'U0BOB', {
      principalArn: 'arn:aws:sts::123456789012:assumed-role/SharedRole/bob',
      pools: ['default'],
    });
    const sso = await putSlackIdentity(deps(), admin, 'T0TEAM', 'U0CAROL', {
      principalArn: 'arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Users_0123/carol@example.org',
      pools: ['default'],
    });

    // Assess
    expect(shared.principalArn).toBe('arn:aws:iam::123456789012:role/SharedRole');
    expect((await slackStore.getIdentity('T0TEAM', 'U0BOB'))?.principalArn).toBe(
      'arn:aws:iam::123456789012:role/SharedRole',
    );
    expect(sso.principalArn).toBe(
      'arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Users_0123/carol@example.org',
    );
  });

  it('refuses a federated user as the target, naming principalArn, and writes nothing', async () => {
    // Act
    const error = await putSlackIdentity(deps(), admin, 'T0TEAM', 'U0BOB', {
      principalArn: 'arn:aws:sts::123456789012:federated-user/bob',
      pools: ['default'],
    }).catch((e: unknown) => e);

    // Assess
    expect(error).toMatchObject({ code: 'ValidationError', field: 'principalArn' });
    expect(await slackStore.getIdentity('T0TEAM', 'U0BOB')).toBeUndefined();
  });
});
