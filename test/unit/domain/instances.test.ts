import { beforeEach, describe, expect, it } from 'vitest';
import { createAnnex, type CreateAnnexInput } from '../../../shared/domain/annex-create.ts';
import { deleteAnnex } from '../../../shared/domain/annex-end.ts';
import { extendAnnex } from '../../../shared/domain/annex-extend.ts';
import type { LaunchDeps } from '../../../shared/domain/annex-deps.ts';
import { AnnexError, upstreamUnavailable } from '../../../shared/domain/errors.ts';
import { callerOf } from '../../../shared/domain/identity.ts';
import { instanceIdOf } from '../../../shared/domain/instance-caller.ts';
import { annexCondorConfig } from '../../../shared/domain/instance-config.ts';
import {
  bootstrapInstance,
  recordHeartbeat,
  recordInterruption,
  type BootstrapDeps,
  type HeartbeatInput,
} from '../../../shared/domain/instances.ts';
import type { Annex, Caller } from '../../../shared/domain/model.ts';
import { putPool } from '../../../shared/domain/pools.ts';
import { TOKEN_GRACE_SECONDS, verifyToken } from '../../../shared/domain/idtokens.ts';
import type { InstanceSettings } from '../../../shared/domain/ports.ts';
import { sweep, type SweepDeps } from '../../../shared/domain/sweep.ts';
import {
  StampingLeaseStore,
  type FakeClock,
  type FakeCompute,
  type FakeSecrets,
  type silentLogger,
} from '../../support/fakes.ts';
import { domainDeps, putDefaultPool, TEST_SWEEP } from '../../support/domain-deps.ts';

const ROLE = 'annex-test-instance';
const POOL_PASSWORD = 'pool-password-123';
const SIGNING_KEY = 'pool-signing-key-456';
const alice: Caller = { principalArn: 'arn:aws:iam::123456789012:user/alice', admin: false };
const bob: Caller = { principalArn: 'arn:aws:iam::123456789012:user/bob', admin: false };
const admin: Caller = { principalArn: 'arn:aws:iam::123456789012:user/admin', admin: true };
// As the HTTP layer makes it: owned by the instance role, signed by the instance's session.
const instance = (instanceId: string, role = ROLE): Caller =>
  callerOf(`arn:aws:sts::123456789012:assumed-role/${role}/${instanceId}`, {
    adminArns: [],
    sessionOwnedRoles: [],
  });

const INSTANCES: InstanceSettings = { instanceRoleName: ROLE, heartbeatIntervalSeconds: 60 };

const input = (over: Partial<CreateAnnexInput> = {}): CreateAnnexInput => ({
  name: 'ToddsGPU',
  pool: 'default',
  count: 2,
  instanceTypes: ['p2.xlarge'],
  market: 'on-demand',
  ...over,
});

const heartbeat = (over: Partial<HeartbeatInput> = {}): HeartbeatInput => ({
  claimedSlots: 1,
  totalSlots: 1,
  idleSeconds: 0,
  state: 'joined',
  ...over,
});

let clock: FakeClock;
let store: StampingLeaseStore;
let compute: FakeCompute;
let secrets: FakeSecrets;
let log: ReturnType<typeof silentLogger>;
let deps: LaunchDeps & SweepDeps & BootstrapDeps;

beforeEach(async () => {
  ({ clock, store, compute, secrets, log, deps } = domainDeps({
    store: (c) => new StampingLeaseStore(c),
    with: { sweep: TEST_SWEEP, instances: INSTANCES },
  }));
  await putDefaultPool(deps, { credential: { type: 'password', value: POOL_PASSWORD }, condorUser: 'todd' });
});

/** Creates an annex and returns it with the ids of its instances. */
const launched = async (over: Partial<CreateAnnexInput> = {}, caller = alice) => {
  const { annex } = await createAnnex(deps, caller, input(over));
  const ids = (await store.listInstances(annex.id)).map((i) => i.instanceId).sort();
  return { annex, ids, first: ids[0] ?? '' };
};

const refusedWith = async (p: Promise<unknown>, code: AnnexError['code']): Promise<AnnexError> => {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AnnexError);
  expect((e as AnnexError).code).toBe(code);
  return e as AnnexError;
};

const eventsOf = (annex: Annex, type: string) =>
  store.events.filter((e) => e.annexId === annex.id && e.type === type);

describe('instanceIdOf', () => {
  it('reads the instance id from the session of the instance role', () => {
    expect(instanceIdOf(`arn:aws:sts::123456789012:assumed-role/${ROLE}/i-0123456789abcdef0`, ROLE)).toBe(
      'i-0123456789abcdef0',
    );
    expect(instanceIdOf(`arn:aws-us-gov:sts::123456789012:assumed-role/${ROLE}/i-01234567`, ROLE)).toBe(
      'i-01234567',
    );
  });

  it.each([
    ['an IAM user', 'arn:aws:iam::123456789012:user/alice'],
    ['another role', 'arn:aws:sts::123456789012:assumed-role/annex-prod-instance/i-0123456789abcdef0'],
    [
      'a role whose name only starts like it',
      `arn:aws:sts::123456789012:assumed-role/${ROLE}x/i-0123456789abcdef0`,
    ],
    ['a session that is not an instance id', `arn:aws:sts::123456789012:assumed-role/${ROLE}/alice`],
    ['an upper-case instance id', `arn:aws:sts::123456789012:assumed-role/${ROLE}/i-0123456789ABCDEF0`],
    ['a session with a suffix', `arn:aws:sts::123456789012:assumed-role/${ROLE}/i-0123456789abcdef0/x`],
    ['the role itself', `arn:aws:iam::123456789012:role/${ROLE}`],
    ['a federated user', 'arn:aws:sts::123456789012:federated-user/i-0123456789abcdef0'],
    ['nothing', ''],
  ])('refuses %s', (_what, arn) => {
    expect(instanceIdOf(arn, ROLE)).toBeUndefined();
  });
});

describe('bootstrapInstance', () => {
  it('gives an instance its annex, the pool credential and its configuration', async () => {
    // Prepare
    const { annex, first } = await launched();

    // Act
    const result = await bootstrapInstance(deps, instance(first));

    // Assess
    expect(result).toMatchObject({
      annexId: annex.id,
      annexName: 'ToddsGPU',
      instanceId: first,
      expiresAt: annex.expiresAt,
      idleSeconds: 900,
      heartbeatIntervalSeconds: 60,
      collector: { host: 'cm.example.org', port: 9618 },
      credential: { type: 'password', value: POOL_PASSWORD },
    });
    expect(result.condorConfig).toContain('AnnexName = "ToddsGPU"');
    expect(result.condorConfig).toContain(`EC2InstanceID = "${first}"`);
    expect(result.condorConfig).toContain('TARGET.Owner =?= "todd"');
    expect(result.condorConfig).not.toContain(POOL_PASSWORD);
    expect((await store.getInstance(annex.id, first))?.bootstrappedAt).toBe(clock.now().toISOString());
  });

  it('never logs the credential', async () => {
    // Prepare
    const { first } = await launched();

    // Act
    await bootstrapInstance(deps, instance(first));
    await bootstrapInstance(deps, instance(first)).catch(() => undefined);

    // Assess
    expect(log.lines.length).toBeGreaterThan(0);
    expect(JSON.stringify(log.lines)).not.toContain(POOL_PASSWORD);
  });

  it('answers an instance once: a second call is refused and recorded on the annex', async () => {
    // Prepare
    const { annex, first } = await launched();
    await bootstrapInstance(deps, instance(first));
    clock.advance(30);

    // Act
    const error = await refusedWith(bootstrapInstance(deps, instance(first)), 'Forbidden');

    // Assess
    expect(JSON.stringify(error)).not.toContain(POOL_PASSWORD);
    expect(eventsOf(annex, 'bootstrap-refused')).toEqual([
      expect.objectContaining({ detail: { instanceId: first, why: 'already-bootstrapped' } }),
    ]);
  });

  it('marks the instance before it reads the secret', async () => {
    // Prepare
    const { first } = await launched();
    const order: string[] = [];
    const marking = store.markBootstrapped.bind(store);
    store.markBootstrapped = async (...args) => {
      order.push('mark');
      return marking(...args);
    };
    const reading = secrets.getAnnexCredential.bind(secrets);
    secrets.getAnnexCredential = async (annexId) => {
      order.push('read');
      return reading(annexId);
    };

    // Act
    await bootstrapInstance(deps, instance(first));

    // Assess
    expect(order).toEqual(['mark', 'read']);
  });

  it('of two concurrent calls, serves exactly one', async () => {
    // Prepare
    const { first } = await launched();

    // Act
    const outcomes = await Promise.allSettled([
      bootstrapInstance(deps, instance(first)),
      bootstrapInstance(deps, instance(first)),
    ]);

    // Assess
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
  });

  it('gives the bootstrap back when the credential cannot be read, so a retry succeeds', async () => {
    // Prepare
    const { annex, first } = await launched();
    secrets.faults.failNext('getAnnexCredential', upstreamUnavailable('SSM is unavailable'));

    // Act
    await refusedWith(bootstrapInstance(deps, instance(first)), 'UpstreamUnavailable');
    const retried = await bootstrapInstance(deps, instance(first));

    // Assess
    expect(retried.credential.value).toBe(POOL_PASSWORD);
    expect(eventsOf(annex, 'bootstrap-refused')).toEqual([]);
  });

  it('gives each instance its own annex, never another one', async () => {
    // Prepare
    const mine = await launched({ name: 'mine' });
    await putPool(deps, bob, 'bobs', {
      collectorHost: 'cm.bob.example.org',
      collectorPort: 9619,
      credential: { type: 'idtokens-signing-key', value: 'bobs-signing-key' },
    });
    const theirs = await launched({ name: 'theirs', pool: 'bobs' }, bob);

    // Act
    const a = await bootstrapInstance(deps, instance(mine.first));
    const b = await bootstrapInstance(deps, instance(theirs.first));

    // Assess
    expect(a).toMatchObject({ annexId: mine.annex.id, credential: { value: POOL_PASSWORD } });
    expect(b).toMatchObject({
      annexId: theirs.annex.id,
      collector: { host: 'cm.bob.example.org', port: 9619 },
      credential: { type: 'idtoken' },
    });
    expect(verifyToken(b.credential.value, Buffer.from('bobs-signing-key'))).toBeDefined();
  });

  it('gives an IDTOKENS instance its own lease-bound execute-point token, never the key', async () => {
    // Prepare
    await putPool(deps, alice, 'tokens', {
      collectorHost: 'cm.example.org',
      collectorPort: 9618,
      credential: { type: 'idtokens-signing-key', value: SIGNING_KEY },
      trustDomain: 'pool.example.org',
    });
    const { annex, first } = await launched({ pool: 'tokens' });

    // Act
    const answer = await bootstrapInstance(deps, instance(first));

    // Assess
    expect(JSON.stringify(answer)).not.toContain(SIGNING_KEY);
    expect(answer.condorConfig).not.toContain('SEC_TOKEN_POOL_SIGNING_KEY_FILE');
    const token = verifyToken(answer.credential.value, Buffer.from(SIGNING_KEY));
    expect(token?.header).toEqual({ alg: 'HS256', kid: 'POOL' });
    const exp = Math.floor(Date.parse(annex.expiresAt) / 1000) + TOKEN_GRACE_SECONDS;
    expect(token?.claims).toEqual({
      iss: 'pool.example.org',
      sub: `annex-${first}@pool.example.org`,
      iat: Math.floor(clock.now().getTime() / 1000),
      exp,
      jti: expect.stringMatching(/^[0-9a-f]{32}$/),
      scope: 'condor:/READ condor:/ADVERTISE_STARTD condor:/ADVERTISE_MASTER',
    });
    expect(answer.credential).toMatchObject({
      type: 'idtoken',
      tokenId: token?.claims.jti,
      expiresAt: new Date(exp * 1000).toISOString(),
    });
    // Recorded: the jti and expiry, never the token.
    expect(eventsOf(annex, 'token-issued')).toEqual([
      expect.objectContaining({
        detail: expect.objectContaining({ instanceId: first, tokenId: token?.claims.jti }),
      }),
    ]);
    expect(JSON.stringify(store.events)).not.toContain(answer.credential.value);
    expect(await store.getInstance(annex.id, first)).toMatchObject({ tokenIds: [token?.claims.jti] });
  });

  it('refuses a caller that is not the instance role, recording nothing', async () => {
    // Prepare
    const { first } = await launched();
    const before = store.events.length;

    // Act
    await refusedWith(bootstrapInstance(deps, alice), 'Forbidden');
    await refusedWith(bootstrapInstance(deps, instance(first, 'some-other-role')), 'Forbidden');

    // Assess
    expect(store.events).toHaveLength(before);
    expect(
      (await store.listInstances((await store.listLiveAnnexes())[0]?.id ?? '')).every(
        (i) => i.bootstrappedAt === undefined,
      ),
    ).toBe(true);
  });

  it('reads the instance from the signed session only: a caller without one is refused', async () => {
    // Prepare: a caller whose owner identity looks like an instance session, but nothing signed
    // (as a Slack mapping to that ARN would be), and the instance role's owner identity itself.
    const { first } = await launched();
    const unsigned: Caller = {
      principalArn: `arn:aws:sts::123456789012:assumed-role/${ROLE}/${first}`,
      admin: false,
    };
    const roleOwner: Caller = { principalArn: `arn:aws:iam::123456789012:role/${ROLE}`, admin: false };

    // Act and Assess
    await refusedWith(bootstrapInstance(deps, unsigned), 'Forbidden');
    await refusedWith(bootstrapInstance(deps, roleOwner), 'Forbidden');
    expect(instance(first).principalArn).toBe(`arn:aws:iam::123456789012:role/${ROLE}`);
    await expect(bootstrapInstance(deps, instance(first))).resolves.toBeDefined();
  });

  it('refuses an instance no annex recorded', async () => {
    await refusedWith(bootstrapInstance(deps, instance('i-0fffffffffffffff0')), 'Forbidden');
  });

  it('refuses an instance of an ended annex and records the refusal', async () => {
    // Prepare
    const { annex, first } = await launched();
    await deleteAnnex(deps, alice, { name: 'ToddsGPU' });

    // Act
    await refusedWith(bootstrapInstance(deps, instance(first)), 'Forbidden');

    // Assess
    expect(eventsOf(annex, 'bootstrap-refused')).toEqual([
      expect.objectContaining({ detail: { instanceId: first, why: 'annex-not-live' } }),
    ]);
    expect((await store.getInstance(annex.id, first))?.bootstrappedAt).toBeUndefined();
  });

  it('refuses an instance of an expired lease the sweep has not ended yet', async () => {
    // Prepare
    const { first } = await launched({ durationSeconds: 600 });
    clock.advance(601);

    // Act / Assess
    await refusedWith(bootstrapInstance(deps, instance(first)), 'Forbidden');
  });

  it('refuses an instance recorded as terminated', async () => {
    // Prepare
    const { annex, first } = await launched();
    await store.setInstanceStates(annex.id, [first], 'terminated', clock.now().toISOString());

    // Act
    await refusedWith(bootstrapInstance(deps, instance(first)), 'Forbidden');

    // Assess
    expect(eventsOf(annex, 'bootstrap-refused')[0]?.detail).toMatchObject({ why: 'instance-gone' });
  });

  it('uses the users the annex names instead of the pool’s user', async () => {
    // Prepare
    const { first } = await launched({ allowedUsers: ['alice', 'bob@submit.example.org'] });

    // Act
    const { condorConfig } = await bootstrapInstance(deps, instance(first));

    // Assess
    expect(condorConfig).toContain('(TARGET.Owner =?= "alice" || TARGET.User =?= "bob@submit.example.org")');
    expect(condorConfig).not.toContain('"todd"');
  });
});

describe('recordHeartbeat', () => {
  it('records the slots and answers with the lease', async () => {
    // Prepare
    const { annex, first } = await launched();

    // Act
    const answer = await recordHeartbeat(
      deps,
      instance(first),
      heartbeat({ claimedSlots: 3, totalSlots: 4 }),
    );

    // Assess
    expect(answer).toEqual({ expiresAt: annex.expiresAt, idleSeconds: 900, action: 'continue' });
    expect(await store.getInstance(annex.id, first)).toMatchObject({
      lastHeartbeatAt: clock.now().toISOString(),
      claimedSlots: 3,
      totalSlots: 4,
      agentState: 'joined',
    });
    expect((await store.getInstance(annex.id, first))?.idleSince).toBeUndefined();
  });

  it('sets idleSince to now minus the idle time the agent saw, and keeps the first one', async () => {
    // Prepare
    const { annex, first } = await launched();
    const start = clock.now().getTime();

    // Act
    await recordHeartbeat(deps, instance(first), heartbeat({ claimedSlots: 0, idleSeconds: 120 }));
    clock.advance(60);
    await recordHeartbeat(deps, instance(first), heartbeat({ claimedSlots: 0, idleSeconds: 5 }));

    // Assess
    expect((await store.getInstance(annex.id, first))?.idleSince).toBe(
      new Date(start - 120_000).toISOString(),
    );
  });

  it('clears idleSince as soon as a slot is claimed', async () => {
    // Prepare
    const { annex, first } = await launched();
    await recordHeartbeat(deps, instance(first), heartbeat({ claimedSlots: 0, idleSeconds: 300 }));

    // Act
    await recordHeartbeat(deps, instance(first), heartbeat({ claimedSlots: 1 }));

    // Assess
    expect((await store.getInstance(annex.id, first))?.idleSince).toBeUndefined();
  });

  it('carries an extension to the instance', async () => {
    // Prepare
    const { first } = await launched();
    const extended = await extendAnnex(
      deps,
      alice,
      { name: 'ToddsGPU' },
      { durationSeconds: 7200, idleSeconds: 600 },
    );

    // Act
    const answer = await recordHeartbeat(deps, instance(first), heartbeat());

    // Assess
    expect(answer).toEqual({ expiresAt: extended.expiresAt, idleSeconds: 600, action: 'continue' });
  });

  it('renews an IDTOKENS instance’s token when the lease moves, and lists every jti at the end', async () => {
    // Prepare
    await putPool(deps, alice, 'tokens', {
      collectorHost: 'cm.example.org',
      collectorPort: 9618,
      credential: { type: 'idtokens-signing-key', value: SIGNING_KEY },
    });
    const { annex, first } = await launched({ pool: 'tokens' });
    const boot = await bootstrapInstance(deps, instance(first));
    clock.advance(3 * 60);

    // Act
    const unchanged = await recordHeartbeat(deps, instance(first), heartbeat());
    const extended = await extendAnnex(deps, alice, { name: 'ToddsGPU' }, { durationSeconds: 7200 });
    const renewed = await recordHeartbeat(deps, instance(first), heartbeat());
    clock.advance(60);
    const resent = await recordHeartbeat(deps, instance(first), heartbeat());
    clock.advance(3 * 60);
    const after = await recordHeartbeat(deps, instance(first), heartbeat());
    const ended = await deleteAnnex(deps, alice, { name: 'ToddsGPU' });

    // Assess
    expect(unchanged.token).toBeUndefined();
    const exp = Math.floor(Date.parse(extended.expiresAt) / 1000) + TOKEN_GRACE_SECONDS;
    expect(renewed.token?.expiresAt).toBe(new Date(exp * 1000).toISOString());
    expect(verifyToken(renewed.token?.value ?? '', Buffer.from(SIGNING_KEY))?.claims).toMatchObject({
      sub: `annex-${first}@cm.example.org`,
      exp,
    });
    // In case the answer was lost: the same token again for a few heartbeats, then nothing.
    expect(resent.token).toEqual(renewed.token);
    expect(after.token).toBeUndefined();
    const jtis = eventsOf(annex, 'token-issued').map((e) => e.detail?.tokenId);
    expect(jtis).toEqual([
      boot.credential.type === 'idtoken' ? boot.credential.tokenId : '',
      renewed.token?.tokenId,
    ]);
    expect(eventsOf(ended, 'terminated')[0]?.detail).toMatchObject({ tokenIds: jtis });
  });

  it('never sends a token to an instance of a password pool', async () => {
    // Prepare
    const { first } = await launched();
    await bootstrapInstance(deps, instance(first));
    await extendAnnex(deps, alice, { name: 'ToddsGPU' }, { durationSeconds: 7200 });

    // Act
    const answer = await recordHeartbeat(deps, instance(first), heartbeat());

    // Assess
    expect(answer.token).toBeUndefined();
  });

  it('tells the instance of an ended annex to shut down and writes nothing', async () => {
    // Prepare
    const { annex, first } = await launched();
    await deleteAnnex(deps, alice, { name: 'ToddsGPU' });
    const before = await store.getInstance(annex.id, first);

    // Act
    const answer = await recordHeartbeat(deps, instance(first), heartbeat({ claimedSlots: 0 }));

    // Assess
    expect(answer.action).toBe('shutdown');
    expect(await store.getInstance(annex.id, first)).toEqual(before);
  });

  it('tells an instance past the lease, or recorded terminated, to shut down', async () => {
    // Prepare
    const { annex, ids } = await launched({ durationSeconds: 3600 });
    const [one = '', two = ''] = ids;
    await store.setInstanceStates(annex.id, [two], 'terminated', clock.now().toISOString());

    // Act
    const terminated = await recordHeartbeat(deps, instance(two), heartbeat());
    clock.advance(3600);
    const expired = await recordHeartbeat(deps, instance(one), heartbeat());

    // Assess
    expect(terminated.action).toBe('shutdown');
    expect(expired.action).toBe('shutdown');
  });

  it('refuses anyone but an instance of an annex', async () => {
    await launched();
    await refusedWith(recordHeartbeat(deps, alice, heartbeat()), 'Forbidden');
    await refusedWith(recordHeartbeat(deps, instance('i-0fffffffffffffff0'), heartbeat()), 'Forbidden');
  });

  it('lets the sweep end an instance idle for longer than the annex allows, with reason idle', async () => {
    // Prepare
    const { annex, ids } = await launched();
    const [idle = '', busy = ''] = ids;
    await recordHeartbeat(deps, instance(busy), heartbeat({ claimedSlots: 1 }));
    await recordHeartbeat(deps, instance(idle), heartbeat({ claimedSlots: 0, idleSeconds: 600 }));
    clock.advance(60);
    await recordHeartbeat(deps, instance(busy), heartbeat({ claimedSlots: 1 }));
    await recordHeartbeat(deps, instance(idle), heartbeat({ claimedSlots: 0, idleSeconds: 660 }));
    clock.advance(240);

    // Act
    const report = await sweep(deps);

    // Assess
    expect(report.actions).toContainEqual(
      expect.objectContaining({ action: 'terminate-instance', reason: 'idle', instanceIds: [idle] }),
    );
    expect(compute.running().map((i) => i.instanceId)).toEqual([busy]);
    expect((await store.getInstance(annex.id, idle))?.state).toBe('terminated');
    expect((await recordHeartbeat(deps, instance(idle), heartbeat({ claimedSlots: 0 }))).action).toBe(
      'shutdown',
    );
  });
});

describe('recordInterruption', () => {
  it('records the interruption on the instance and as an annex event', async () => {
    // Prepare
    const { annex, first } = await launched();

    // Act
    await recordInterruption(deps, instance(first), { action: 'terminate', time: '2026-11-25T12:02:00Z' });

    // Assess
    expect(await store.getInstance(annex.id, first)).toMatchObject({
      interruptedAt: clock.now().toISOString(),
      interruption: { action: 'terminate', time: '2026-11-25T12:02:00Z' },
    });
    expect(eventsOf(annex, 'spot-interruption')).toEqual([
      expect.objectContaining({
        reason: 'interrupted',
        detail: { instanceId: first, action: 'terminate', time: '2026-11-25T12:02:00Z', via: 'instance' },
      }),
    ]);
  });

  it('refuses anyone but an instance of an annex', async () => {
    await refusedWith(
      recordInterruption(deps, bob, { action: 'stop', time: '2026-11-25T12:02:00Z' }),
      'Forbidden',
    );
  });
});

describe('annexCondorConfig', () => {
  it('shows the owner and an admin the fragment, with a placeholder instance and no secret', async () => {
    // Prepare
    await launched();

    // Act
    const own = await annexCondorConfig(deps, alice, { name: 'ToddsGPU' });
    const asAdmin = await annexCondorConfig(deps, admin, { name: 'ToddsGPU', owner: alice.principalArn });

    // Assess
    expect(own.condorConfig).toContain('EC2InstanceID = "i-00000000000000000"');
    expect(own.condorConfig).not.toContain('TCP_FORWARDING_HOST');
    expect(own.condorConfig).not.toContain(POOL_PASSWORD);
    expect(asAdmin.condorConfig).toBe(own.condorConfig);
  });

  it('reports another user’s annex as missing', async () => {
    await launched();
    await refusedWith(
      annexCondorConfig(deps, bob, { name: 'ToddsGPU', owner: alice.principalArn }),
      'NotFound',
    );
  });

  it('reads the pool for an annex created before annexes kept their pool settings', async () => {
    // Prepare
    const { annex } = await launched();
    const stored = store.annexes.get(annex.id);
    if (stored !== undefined) delete stored.condor;

    // Act
    const { condorConfig } = await annexCondorConfig(deps, alice, { name: 'ToddsGPU' });

    // Assess
    expect(condorConfig).toContain('COLLECTOR_HOST = cm.example.org:9618');
    expect(condorConfig).toContain('TARGET.Owner =?= "todd"');
  });
});
