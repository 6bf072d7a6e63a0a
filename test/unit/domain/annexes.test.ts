import { beforeEach, describe, expect, it } from 'vitest';
import { addNodes } from '../../../shared/domain/annex-nodes.ts';
import { createAnnex, type CreateAnnexInput } from '../../../shared/domain/annex-create.ts';
import { deleteAnnex } from '../../../shared/domain/annex-end.ts';
import { extendAnnex } from '../../../shared/domain/annex-extend.ts';
import { getAnnexDetail, listAnnexes } from '../../../shared/domain/annex-read.ts';
import { repairStuckLaunch } from '../../../shared/domain/launch-capacity.ts';
import type { LaunchDeps } from '../../../shared/domain/annex-deps.ts';
import { AnnexError, upstreamUnavailable, validationError } from '../../../shared/domain/errors.ts';
import { annexIdFor } from '../../../shared/domain/lease.ts';
import type { Caller } from '../../../shared/domain/model.ts';
import { domainDeps, putDefaultPool } from '../../support/domain-deps.ts';
import type {
  FakeClock,
  FakeCompute,
  FakeSecrets,
  InMemoryLeaseStore,
  silentLogger,
} from '../../support/fakes.ts';

const alice: Caller = { principalArn: 'arn:aws:iam::123456789012:user/alice', admin: false };
const bob: Caller = { principalArn: 'arn:aws:iam::123456789012:user/bob', admin: false };
const admin: Caller = { principalArn: 'arn:aws:iam::123456789012:user/admin', admin: true };

const input = (over: Partial<CreateAnnexInput> = {}): CreateAnnexInput => ({
  name: 'ToddsGPU',
  pool: 'default',
  count: 2,
  instanceTypes: ['p2.xlarge'],
  market: 'on-demand',
  ...over,
});

let clock: FakeClock;
let store: InMemoryLeaseStore;
let compute: FakeCompute;
let secrets: FakeSecrets;
let deps: LaunchDeps;
let log: ReturnType<typeof silentLogger>;

beforeEach(async () => {
  ({ clock, store, compute, secrets, log, deps } = domainDeps());
  await putDefaultPool(deps);
});

const expectAnnexError = async (p: Promise<unknown>, code: AnnexError['code'], field?: string) => {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AnnexError);
  expect((e as AnnexError).code).toBe(code);
  if (field !== undefined) expect((e as AnnexError).field).toBe(field);
};

describe('createAnnex', () => {
  it('writes the lease, copies the pool credential for the annex, launches and ends RUNNING', async () => {
    const { annex } = await createAnnex(deps, alice, input({ userData: '#!/bin/sh\necho hé\n' }), 'key-1');

    expect(annex.state).toBe('RUNNING');
    expect(annex.expiresAt).toBe('2026-11-25T12:50:00.000Z');
    expect(annex.idleSeconds).toBe(900);
    expect(compute.running()).toHaveLength(2);
    expect(compute.running()[0]?.tags).toMatchObject({
      'annex:id': annex.id,
      'annex:stage': 'test',
      'annex:batch': '1',
    });
    expect(compute.running()[0]?.userData).toBe('#!/bin/sh\necho hé\n');
    expect(secrets.parameters.get(`/annex/test/annexes/${annex.id}/pool-credentials`)).toEqual({
      value: 'pool-password-123',
      tags: { 'annex:id': annex.id, 'annex:stage': 'test' },
    });
    const events = store.events.filter((e) => e.annexId === annex.id).map((e) => e.type);
    expect(events).toEqual(['created', 'credentials-stored', 'launched']);
    expect(await store.listInstances(annex.id)).toHaveLength(2);
  });

  it('refuses an unknown pool as NotFound naming the field, and writes nothing', async () => {
    await expectAnnexError(createAnnex(deps, alice, input({ pool: 'nope' })), 'NotFound', 'pool');
    expect(store.annexes.size).toBe(0);
    expect(compute.launches()).toBe(0);
  });

  it('refuses more instances than the configured maximum as LimitExceeded (422), and writes nothing', async () => {
    await expectAnnexError(createAnnex(deps, alice, input({ count: 11 })), 'LimitExceeded', 'count');
    expect(store.annexes.size).toBe(0);
  });

  it('refuses a second live annex of the same name for the same owner with a Conflict', async () => {
    await createAnnex(deps, alice, input());
    await expectAnnexError(createAnnex(deps, alice, input()), 'Conflict');
    expect(compute.launches()).toBe(1);
  });

  it('lets another owner use the same name', async () => {
    await createAnnex(deps, alice, input());
    const { annex } = await createAnnex(deps, bob, input());
    expect(annex.owner).toBe(bob.principalArn);
  });

  it('returns the same annex for the same Idempotency-Key and launches nothing new', async () => {
    const first = await createAnnex(deps, alice, input(), 'key-1');
    const second = await createAnnex(deps, alice, input(), 'key-1');
    expect(second.annex.id).toBe(first.annex.id);
    expect(second.replayed).toBe(true);
    expect(compute.launches()).toBe(1);
    expect(compute.running()).toHaveLength(2);
  });

  it('fills in the default pool and on-demand market, so a retry that spells them out replays', async () => {
    // Prepare
    const { pool: _pool, market: _market, ...bare } = input();

    // Act
    const first = await createAnnex(deps, alice, bare, 'key-1');
    const spelledOut = await createAnnex(
      deps,
      alice,
      { ...bare, pool: 'default', market: 'on-demand' },
      'key-1',
    );

    // Assess
    expect(first.annex.pool).toBe('default');
    expect(first.annex.spec.market).toBe('on-demand');
    expect(spelledOut).toMatchObject({ replayed: true, annex: { id: first.annex.id } });
    expect(compute.launches()).toBe(1);
  });

  it('refuses an Idempotency-Key reused for a different request', async () => {
    await createAnnex(deps, alice, input(), 'key-1');
    await expectAnnexError(createAnnex(deps, alice, input({ count: 3 }), 'key-1'), 'Conflict');
  });

  it('resumes after a crash between launch and recording, adopting the instances by tag', async () => {
    store.faults.failNext('putInstances', new Error('crash'));
    await expect(createAnnex(deps, alice, input(), 'key-1')).rejects.toThrow('crash');
    expect(compute.running()).toHaveLength(2);

    const { annex } = await createAnnex(deps, alice, input(), 'key-1');
    expect(annex.state).toBe('RUNNING');
    expect(compute.launches()).toBe(1);
    expect((await store.listInstances(annex.id)).map((i) => i.instanceId).sort()).toEqual(
      compute
        .running()
        .map((i) => i.instanceId)
        .sort(),
    );
  });

  it('stays LAUNCHING when the launch outcome is unknown, and a retry launches exactly once', async () => {
    compute.faults.failNext('launch', upstreamUnavailable('EC2 is unavailable'));
    await expectAnnexError(createAnnex(deps, alice, input(), 'key-1'), 'UpstreamUnavailable');
    expect([...store.annexes.values()][0]?.state).toBe('LAUNCHING');

    const { annex } = await createAnnex(deps, alice, input(), 'key-1');
    expect(annex.state).toBe('RUNNING');
    expect(compute.running()).toHaveLength(2);
  });

  it('fails the annex cleanly when EC2 refuses the launch: credential deleted, name freed', async () => {
    compute.faults.failNext('launch', validationError('imageId', 'EC2 refused it'));
    await expectAnnexError(
      createAnnex(deps, alice, input({ imageId: 'ami-00000000' })),
      'ValidationError',
      'imageId',
    );
    const annex = [...store.annexes.values()][0];
    expect(annex?.state).toBe('FAILED');
    expect(annex?.endReason).toBe('launch-failed');
    expect(secrets.annexParameters()).toEqual([]);
    expect(store.nameClaims.size).toBe(0);
  });

  it('falls back to the next instance type when the first has no capacity', async () => {
    compute.noCapacity.add('p2.xlarge');
    const { annex } = await createAnnex(deps, alice, input({ instanceTypes: ['p2.xlarge', 'g4dn.xlarge'] }));
    expect(compute.running().map((i) => i.instanceType)).toEqual(['g4dn.xlarge', 'g4dn.xlarge']);
    const launched = store.events.find((e) => e.annexId === annex.id && e.type === 'launched');
    expect(launched?.detail?.capacityErrors).toEqual([
      { instanceType: 'p2.xlarge', error: 'InsufficientInstanceCapacity' },
    ]);
  });

  it('terminates what it launched when the annex was ended during the launch', async () => {
    const id = annexIdFor('test', alice.principalArn, 'key-race');
    // A concurrent delete moves the annex on while EC2 is launching (and found nothing to stop).
    compute.afterLaunch = () => {
      const live = store.annexes.get(id);
      if (live !== undefined)
        store.annexes.set(id, { ...live, state: 'TERMINATING', version: live.version + 1 });
    };
    await expectAnnexError(createAnnex(deps, alice, input(), 'key-race'), 'Conflict');
    expect(compute.launches()).toBe(1);
    expect(compute.running()).toHaveLength(0);
    expect((await store.listInstances(id)).every((i) => i.state === 'terminated')).toBe(true);
  });
});

describe('extendAnnex', () => {
  it('moves the expiry and the expires-at tags without launching anything', async () => {
    await createAnnex(deps, alice, input());
    clock.advance(600);
    const annex = await extendAnnex(
      deps,
      alice,
      { name: 'ToddsGPU' },
      { durationSeconds: 7200, idleSeconds: 1800 },
    );
    expect(annex.expiresAt).toBe('2026-11-25T14:10:00.000Z');
    expect(annex.idleSeconds).toBe(1800);
    expect(compute.launches()).toBe(1);
    for (const i of compute.running()) expect(i.tags['annex:expires-at']).toBe('2026-11-25T14:10:00.000Z');
  });

  it('refuses an extension from a stale read with a Conflict', async () => {
    const { annex } = await createAnnex(deps, alice, input());
    store.faults.failNext('updateAnnex', new AnnexError('Conflict', 'changed by another request'));
    await expectAnnexError(
      extendAnnex(deps, alice, { name: annex.name }, { durationSeconds: 600 }),
      'Conflict',
    );
  });

  it('refuses to extend an ended annex', async () => {
    await createAnnex(deps, alice, input());
    await deleteAnnex(deps, alice, { name: 'ToddsGPU' });
    await expectAnnexError(
      extendAnnex(deps, alice, { name: 'ToddsGPU' }, { durationSeconds: 600 }),
      'Conflict',
    );
  });
});

describe('addNodes', () => {
  it('launches a new batch under the same lease', async () => {
    const { annex: created } = await createAnnex(deps, alice, input());
    const annex = await addNodes(deps, alice, { name: 'ToddsGPU' }, { count: 3 });
    expect(annex.state).toBe('RUNNING');
    expect(annex.requestedCount).toBe(5);
    expect(annex.expiresAt).toBe(created.expiresAt);
    expect(compute.running().filter((i) => i.tags['annex:batch'] === '2')).toHaveLength(3);
  });

  it('does not launch twice for a retried Idempotency-Key', async () => {
    await createAnnex(deps, alice, input());
    await addNodes(deps, alice, { name: 'ToddsGPU' }, { count: 1 }, 'add-1');
    await addNodes(deps, alice, { name: 'ToddsGPU' }, { count: 1 }, 'add-1');
    expect(compute.launches()).toBe(2);
    expect(compute.running()).toHaveLength(3);
  });

  it('resumes its batch after a crash, without a second launch', async () => {
    await createAnnex(deps, alice, input());
    store.faults.failNext('putInstances', new Error('crash'));
    await expect(addNodes(deps, alice, { name: 'ToddsGPU' }, { count: 1 }, 'add-1')).rejects.toThrow('crash');
    const annex = await addNodes(deps, alice, { name: 'ToddsGPU' }, { count: 1 }, 'add-1');
    expect(annex.state).toBe('RUNNING');
    expect(compute.launches()).toBe(2);
    expect(compute.running()).toHaveLength(3);
  });

  it('refuses a retry whose batch the sweep abandoned, instead of answering as if it launched', async () => {
    await createAnnex(deps, alice, input());
    // The request dies after the batch is written, before anything launches…
    compute.faults.failNext('findBatchInstances', new Error('crash'));
    await expect(addNodes(deps, alice, { name: 'ToddsGPU' }, { count: 1 }, 'add-1')).rejects.toThrow('crash');
    // …and the batch is given up (as the sweep does for a stuck launch).
    const stuck = await store.findAnnexByName(alice.principalArn, 'ToddsGPU');
    if (stuck === undefined) throw new Error('no annex');
    await repairStuckLaunch(deps, stuck);

    await expectAnnexError(addNodes(deps, alice, { name: 'ToddsGPU' }, { count: 1 }, 'add-1'), 'Conflict');
    expect(compute.launches()).toBe(1);
  });

  it('refuses to pass the per-annex instance limit', async () => {
    await createAnnex(deps, alice, input({ count: 8 }));
    await expectAnnexError(addNodes(deps, alice, { name: 'ToddsGPU' }, { count: 3 }), 'LimitExceeded');
  });
});

describe('deleteAnnex and reads', () => {
  it('terminates every instance, deletes the credential copy, frees the name and keeps the events', async () => {
    const { annex } = await createAnnex(deps, alice, input());
    const ended = await deleteAnnex(deps, alice, { name: 'ToddsGPU' });
    expect(ended.state).toBe('TERMINATED');
    expect(ended.endReason).toBe('user');
    expect(compute.running()).toHaveLength(0);
    expect(secrets.annexParameters()).toEqual([]);
    expect(store.nameClaims.size).toBe(0);
    const detail = await getAnnexDetail(deps, alice, { name: 'ToddsGPU' });
    expect(detail.annex.id).toBe(annex.id);
    expect(detail.instances.every((i) => i.state === 'terminated')).toBe(true);
    expect(detail.events.map((e) => e.type)).toContain('terminated');
    // The name is free again.
    await createAnnex(deps, alice, input());
  });

  it('also terminates instances EC2 has under the annex tag that the table never recorded', async () => {
    store.faults.failNext('putInstances', new Error('crash'));
    await expect(createAnnex(deps, alice, input())).rejects.toThrow('crash');
    await deleteAnnex(deps, alice, { name: 'ToddsGPU' });
    expect(compute.running()).toHaveLength(0);
  });

  it('still ends the annex when deleting the credential fails', async () => {
    await createAnnex(deps, alice, input());
    secrets.faults.failNext('deleteAnnexCredential', new Error('ssm down'));
    const ended = await deleteAnnex(deps, alice, { name: 'ToddsGPU' });
    expect(ended.state).toBe('TERMINATED');
    expect(log.lines.some((l) => l.level === 'warn')).toBe(true);
  });

  it('is idempotent', async () => {
    await createAnnex(deps, alice, input());
    const first = await deleteAnnex(deps, alice, { name: 'ToddsGPU' });
    const second = await deleteAnnex(deps, alice, { name: 'ToddsGPU' });
    expect(second).toEqual(first);
  });

  it('hides another user’s annex as not found, but lets an admin act on it by owner', async () => {
    await createAnnex(deps, alice, input());
    await expectAnnexError(getAnnexDetail(deps, bob, { name: 'ToddsGPU' }), 'NotFound');
    await expectAnnexError(
      deleteAnnex(deps, bob, { name: 'ToddsGPU', owner: alice.principalArn }),
      'NotFound',
    );
    const ended = await deleteAnnex(deps, admin, { name: 'ToddsGPU', owner: alice.principalArn });
    expect(ended.state).toBe('TERMINATED');
  });

  it('lists the caller’s own annexes; an admin sees every live one', async () => {
    await createAnnex(deps, alice, input());
    await createAnnex(deps, bob, input({ name: 'bobs' }));
    expect((await listAnnexes(deps, alice)).map((a) => a.name)).toEqual(['ToddsGPU']);
    expect((await listAnnexes(deps, bob, alice.principalArn)).length).toBe(0);
    expect((await listAnnexes(deps, admin)).map((a) => a.name).sort()).toEqual(['ToddsGPU', 'bobs']);
  });
});
