// Concurrent requests through the real HTTP layer (SigV4-checking gateway → real handlers → real SDK
// clients → DynamoDB Local and moto): identical creates racing on one Idempotency-Key, and extends
// racing on one annex. Assertions read EC2 and Scheduler directly.
//
// moto gap: RunInstances ignores ClientToken (a repeated token launches again), while on AWS the
// same token returns the same reservation. Concurrent identical creates rely on exactly that: every
// request that finds the annex LAUNCHING before its instances can be seen by tag launches with the
// batch's one client token. So moto is reached through a shim that gives RunInstances AWS's token
// idempotency, and passes requests to moto one at a time since moto is not thread-safe
// (test/support/moto-shim.ts); the tests also check that every launch of the batch did carry that
// one token, which is what makes it safe on AWS.
import { randomBytes } from 'node:crypto';
import { DescribeInstancesCommand, EC2Client, type Instance } from '@aws-sdk/client-ec2';
import { ListSchedulesCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ApiClient, LocalStack } from '../../scripts/devstack/stack.ts';
import { sweepDeps } from '../../shared/aws/deps-ec2.ts';
import { sweep } from '../../shared/domain/sweep.ts';
import { startMotoShim, type MotoShim } from '../support/moto-shim.ts';
import { integrationStack } from '../support/integration-stack.ts';

let shim: MotoShim;
let stack: LocalStack;
let alice: ApiClient;
let ec2: EC2Client;
let scheduler: SchedulerClient;

beforeAll(async () => {
  shim = await startMotoShim(inject('motoEndpoint'), { oneRequestAtATime: true, awsProvenance: true });
  stack = await integrationStack('conc', { motoEndpoint: shim.endpoint });
  alice = stack.as('alice');
  ec2 = new EC2Client(stack.clientConfig('moto'));
  scheduler = new SchedulerClient(stack.clientConfig('moto'));
});

afterAll(async () => {
  ec2?.destroy();
  scheduler?.destroy();
  await stack?.stop();
  await shim?.stop();
});

interface AnnexBody {
  annex: { id: string; state: string; expiresAt: string; version: number; requestedCount: number };
}
interface ErrorBody {
  error: { code: string; message: string };
}

const instancesOf = async (annexId: string): Promise<Instance[]> => {
  const found: Instance[] = [];
  let NextToken: string | undefined;
  do {
    const out = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: 'tag:annex:id', Values: [annexId] },
          { Name: 'instance-state-name', Values: ['pending', 'running'] },
        ],
        NextToken,
      }),
    );
    found.push(...(out.Reservations ?? []).flatMap((r) => r.Instances ?? []));
    NextToken = out.NextToken;
  } while (NextToken !== undefined && NextToken !== '');
  return found;
};

/** The fire times (epoch seconds) of this annex's expiry schedules, `<annexId>-<seconds>`. */
const schedulesOf = async (annexId: string): Promise<number[]> => {
  const fires: number[] = [];
  let NextToken: string | undefined;
  do {
    const out = await scheduler.send(
      new ListSchedulesCommand({ GroupName: stack.scheduleGroup, NamePrefix: `${annexId}-`, NextToken }),
    );
    for (const s of out.Schedules ?? []) fires.push(Number(s.Name?.slice(annexId.length + 1)));
    NextToken = out.NextToken;
  } while (NextToken !== undefined && NextToken !== '');
  return fires.sort();
};

const fireSecond = (iso: string): number => Math.ceil(Date.parse(iso) / 1000);

const tag = (i: Instance, key: string) => i.Tags?.find((t) => t.Key === key)?.Value;

/** Answers that are neither 2xx nor 409 telling the caller to retry, for a readable failure. */
const unexpected = (answers: { status: number; body: unknown }[]) =>
  answers.filter(
    (a) =>
      !(a.status >= 200 && a.status < 300) &&
      !(a.status === 409 && /retry/i.test((a.body as ErrorBody).error?.message ?? '')),
  );

describe('100 concurrent identical creates with one Idempotency-Key', () => {
  const CREATORS = 100;
  const COUNT = 3;
  const body = { name: 'stampede', count: COUNT, instanceTypes: ['m5.large'], durationSeconds: 3600 };
  const headers = { 'Idempotency-Key': `stampede-${randomBytes(4).toString('hex')}` };

  it('make one annex, one set of instances and one schedule; losers get 409 retry (ClientToken idempotent as on AWS, via a shim)', async () => {
    const answers = await Promise.all(
      Array.from({ length: CREATORS }, () =>
        alice.request<AnnexBody | ErrorBody>('POST', '/v1/annexes', body, headers),
      ),
    );

    expect(unexpected(answers)).toEqual([]);
    const created = answers.filter((a) => a.status >= 200 && a.status < 300);
    expect(created.length).toBeGreaterThan(0);
    const ids = new Set(created.map((a) => (a.body as AnnexBody).annex.id));
    expect(ids.size).toBe(1);
    const [annexId] = [...ids] as [string];

    // Racing requests may each send RunInstances, but only ever with the batch's one client token.
    // (Attempt 0 of batch 1, keyed by the annex's launch secret: see lease.ts clientToken.)
    const launches = shim.runInstances.filter((r) => r.clientToken?.startsWith(`${annexId}-`) === true);
    const tokens = [...new Set(launches.map((r) => r.clientToken))];
    expect(tokens).toHaveLength(1);
    const [token] = tokens;
    expect(token).toMatch(new RegExp(`^${annexId}-b1-a0-[0-9a-f]{24}$`));
    expect(launches.filter((r) => !r.replayed)).toEqual([
      { clientToken: token, replayed: false, mismatch: false },
    ]);
    const instances = await instancesOf(annexId);
    expect(instances).toHaveLength(COUNT);
    const get = await alice.request<AnnexBody>('GET', '/v1/annexes/stampede');
    expect(get.body.annex).toMatchObject({ id: annexId, state: 'RUNNING', requestedCount: COUNT });
    expect(await schedulesOf(annexId)).toEqual([fireSecond(get.body.annex.expiresAt)]);

    const again = await alice.request<AnnexBody>('POST', '/v1/annexes', body, headers);
    expect(again.status).toBe(201);
    expect(again.body.annex).toMatchObject({ id: annexId, state: 'RUNNING' });
    expect(await instancesOf(annexId)).toHaveLength(COUNT);
  });
});

describe('50 concurrent extends of one annex with different durations', () => {
  const EXTENDERS = 50;
  /** Starts spread over ~0.5 s, so requests overlap yet some read a version another one wrote. */
  const STAGGER_MS = 10;
  const COUNT = 2;

  it('let the last writer win: the lease, the instance tags and the one schedule agree (after a sweep)', async () => {
    const created = await alice.request<AnnexBody>(
      'POST',
      '/v1/annexes',
      { name: 'contested', count: COUNT, instanceTypes: ['m5.large'], durationSeconds: 3600 },
      { 'Idempotency-Key': `contested-${randomBytes(4).toString('hex')}` },
    );
    expect(created.status).toBe(201);
    const annexId = created.body.annex.id;

    const answers = await Promise.all(
      Array.from({ length: EXTENDERS }, async (_, i) => {
        await new Promise((r) => setTimeout(r, STAGGER_MS * i));
        return alice.request<AnnexBody | ErrorBody>('POST', '/v1/annexes/contested/extend', {
          durationSeconds: 7200 + 60 * i,
        });
      }),
    );
    expect(answers.filter((a) => a.status !== 200 && a.status !== 409)).toEqual([]);
    expect(unexpected(answers)).toEqual([]);
    const won = answers.filter((a) => a.status === 200).map((a) => (a.body as AnnexBody).annex);
    expect(won.length).toBeGreaterThan(0);
    // Every accepted extend moved the version on by one: no two winners wrote the same version.
    expect(new Set(won.map((a) => a.version)).size).toBe(won.length);
    const last = won.reduce((a, b) => (b.version > a.version ? b : a));

    const get = await alice.request<AnnexBody>('GET', '/v1/annexes/contested');
    expect(get.body.annex).toMatchObject({ id: annexId, version: last.version, expiresAt: last.expiresAt });

    // Retagging and rescheduling race between winners; the sweep makes them follow the lease.
    const report = await sweep(sweepDeps());
    expect(report.errors).toBe(0);

    const instances = await instancesOf(annexId);
    expect(instances).toHaveLength(COUNT);
    expect(instances.map((i) => tag(i, 'annex:expires-at'))).toEqual(instances.map(() => last.expiresAt));
    expect(await schedulesOf(annexId)).toEqual([fireSecond(last.expiresAt)]);
  });
});
