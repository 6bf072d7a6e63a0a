import { beforeEach, describe, expect, it } from 'vitest';
import { createAnnex, type CreateAnnexInput } from '../../../shared/domain/annex-create.ts';
import type { LaunchDeps } from '../../../shared/domain/annex-deps.ts';
import { upstreamUnavailable } from '../../../shared/domain/errors.ts';
import { clientToken, isBatchClientToken } from '../../../shared/domain/lease.ts';
import type { Annex, Caller } from '../../../shared/domain/model.ts';
import { fleetToken, provenanceOf, recordIsGenuine } from '../../../shared/domain/provenance.ts';
import { sweep, type SweepDeps } from '../../../shared/domain/sweep.ts';
import { domainDeps, putDefaultPool, TEST_SWEEP as SWEEP } from '../../support/domain-deps.ts';
import type { FakeClock, FakeCompute, InMemoryLeaseStore } from '../../support/fakes.ts';

const PROFILE = 'arn:aws:iam::123456789012:instance-profile/annex-test-instance';
const OTHER_PROFILE = 'arn:aws:iam::123456789012:instance-profile/someone-elses';
const SECRET = '00112233445566778899aabbccddeeff';
const ANNEX = { id: 'ax-0123456789abcdef0123', launchSecret: SECRET };

describe('client tokens', () => {
  it('are keyed by the launch secret: another secret gives another token of the same batch', () => {
    // Act
    const mine = clientToken(ANNEX.id, 1, 0, SECRET);
    const guessed = clientToken(ANNEX.id, 1, 0, 'ffeeddccbbaa99887766554433221100');

    // Assess
    expect(mine).not.toBe(guessed);
    expect(mine.startsWith(`${ANNEX.id}-b1-a0-`)).toBe(true);
    expect(mine.length).toBeLessThanOrEqual(64);
  });

  it('recognise every attempt of the batch and nothing else', () => {
    // Assess
    expect(isBatchClientToken(ANNEX, 2, clientToken(ANNEX.id, 2, 3, SECRET))).toBe(true);
    expect(isBatchClientToken(ANNEX, 1, clientToken(ANNEX.id, 2, 3, SECRET))).toBe(false);
    expect(isBatchClientToken(ANNEX, 2, `${ANNEX.id}-b2-a3`)).toBe(false);
    expect(isBatchClientToken(ANNEX, 2, `${clientToken(ANNEX.id, 2, 3, SECRET)}x`)).toBe(false);
    expect(isBatchClientToken(ANNEX, 2, undefined)).toBe(false);
  });

  it('of an annex from before launch secrets are the bare form, as it was launched with', () => {
    // Assess
    expect(isBatchClientToken({ id: ANNEX.id }, 1, `${ANNEX.id}-b1-a0`)).toBe(true);
    expect(isBatchClientToken({ id: ANNEX.id }, 1, `${ANNEX.id}-b1-a0-deadbeef`)).toBe(false);
  });
});

describe('provenanceOf', () => {
  const launched = { batch: 1, instanceProfileArn: PROFILE };

  it('accepts a RunInstances instance with a batch token and the stack profile', () => {
    // Act
    const p = provenanceOf(ANNEX, { ...launched, clientToken: clientToken(ANNEX.id, 1, 1, SECRET) }, PROFILE);

    // Assess
    expect(p).toEqual({ genuine: true, launchToken: clientToken(ANNEX.id, 1, 1, SECRET) });
  });

  it.each([
    ['no client token', { ...launched }],
    ['the guessable bare token', { ...launched, clientToken: `${ANNEX.id}-b1-a0` }],
    ['another batch’s token', { ...launched, clientToken: clientToken(ANNEX.id, 2, 0, SECRET) }],
    [
      'another instance profile',
      { ...launched, instanceProfileArn: OTHER_PROFILE, clientToken: clientToken(ANNEX.id, 1, 0, SECRET) },
    ],
    ['no instance profile', { batch: 1, clientToken: clientToken(ANNEX.id, 1, 0, SECRET) }],
    ['a fleet the annex did not record', { ...launched, fleetId: 'fleet-attacker' }],
  ])('refuses an instance with %s', (_, instance) => {
    // Act
    const p = provenanceOf({ ...ANNEX, fleetIds: { '1': 'fleet-mine' } }, instance, PROFILE);

    // Assess
    expect(p.genuine).toBe(false);
  });

  it('accepts an instance of the fleet recorded for its batch, with the fleet’s token to record', () => {
    // Act
    const p = provenanceOf(
      { ...ANNEX, fleetIds: { '1': 'fleet-mine' } },
      { ...launched, fleetId: 'fleet-mine', clientToken: 'fleet-mine-0' },
      PROFILE,
    );

    // Assess
    expect(p).toEqual({ genuine: true, launchToken: fleetToken(ANNEX, 1) });
  });

  it('does not take the fleet of one batch for another', () => {
    // Act
    const p = provenanceOf(
      { ...ANNEX, fleetIds: { '1': 'fleet-mine' } },
      { ...launched, batch: 2, fleetId: 'fleet-mine' },
      PROFILE,
    );

    // Assess
    expect(p.genuine).toBe(false);
  });
});

describe('recordIsGenuine', () => {
  it('serves a record whose launch token is its batch’s, and no other', () => {
    // Assess
    expect(recordIsGenuine(ANNEX, { batch: 1, launchToken: clientToken(ANNEX.id, 1, 0, SECRET) })).toBe(true);
    expect(recordIsGenuine(ANNEX, { batch: 1 })).toBe(false);
    expect(recordIsGenuine(ANNEX, { batch: 1, launchToken: `${ANNEX.id}-b1-a0` })).toBe(false);
  });

  it('keeps the old rule for an annex created before launch secrets (migration)', () => {
    // Assess
    expect(recordIsGenuine({ id: ANNEX.id }, { batch: 1 })).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// The sweep, on the in-memory fakes

const alice: Caller = { principalArn: 'arn:aws:iam::123456789012:user/alice', admin: false };

const input = (over: Partial<CreateAnnexInput> = {}): CreateAnnexInput => ({
  name: 'gpu',
  pool: 'default',
  count: 1,
  instanceTypes: ['m5.large'],
  market: 'on-demand',
  ...over,
});

let clock: FakeClock;
let store: InMemoryLeaseStore;
let compute: FakeCompute;
let deps: LaunchDeps & SweepDeps;

beforeEach(async () => {
  ({ clock, store, compute, deps } = domainDeps({
    launch: { instanceProfileArn: PROFILE },
    with: { sweep: SWEEP },
  }));
  await putDefaultPool(deps);
});

const annexNamed = (name: string): Annex => {
  const found = [...store.annexes.values()].filter((a) => a.name === name).at(-1);
  if (found === undefined) throw new Error(`no annex named ${name}`);
  return found;
};

/** Creates an annex whose launch call launched but whose answer was lost: LAUNCHING, stuck. */
const stuckLaunch = async (over: Partial<CreateAnnexInput> = {}): Promise<Annex> => {
  compute.faults.failNext('launch:after', upstreamUnavailable('EC2 did not answer'));
  await expect(createAnnex(deps, alice, input(over))).rejects.toThrow();
  return annexNamed(over.name ?? 'gpu');
};

/** The tags the adapter puts on an instance of this annex's batch (what anyone can copy). */
const tagsOf = (annex: Annex, batch: number): Record<string, string> => ({
  'annex:id': annex.id,
  'annex:name': annex.name,
  'annex:owner': annex.owner,
  'annex:stage': 'test',
  'annex:expires-at': annex.expiresAt,
  'annex:batch': String(batch),
});

const stateOf = (id: string) => compute.instances.get(id)?.state;
const recorded = (annexId: string) =>
  [...store.instances.values()].filter((r) => r.annexId === annexId).map((r) => r.instanceId);
const forgedEvents = (annexId: string) =>
  store.events.filter((e) => e.annexId === annexId && e.type === 'forged-instance');

describe('launch: what is recorded', () => {
  it('records the fleet CreateFleet answered with, and each instance’s launch token', async () => {
    // Act
    const { annex } = await createAnnex(deps, alice, input({ market: 'spot' }));

    // Assess
    const [instance] = compute.running();
    expect(annex.fleetIds).toEqual({ '1': instance?.fleetId });
    expect([...store.instances.values()].map((r) => r.launchToken)).toEqual([fleetToken(annex, 1)]);
  });

  it('records a RunInstances instance with its own client token, which bootstrap accepts', async () => {
    // Act
    const { annex } = await createAnnex(deps, alice, input());

    // Assess
    const [record] = [...store.instances.values()];
    expect(record?.launchToken).toBe(clientToken(annex.id, 1, 0, annex.launchSecret));
    expect(recordIsGenuine(annex, record ?? { batch: 1 })).toBe(true);
  });
});

describe('sweep: provenance of a stuck launch', () => {
  it('adopts the batch Annex launched and terminates a hand-started look-alike as forged', async () => {
    // Prepare
    const annex = await stuckLaunch();
    const [genuine] = compute.running().map((i) => i.instanceId);
    const forged = compute.startByHand(tagsOf(annex, 1), clock.now(), {
      instanceProfileArn: PROFILE,
      clientToken: `${annex.id}-b1-a0`,
    });
    clock.advance(SWEEP.stuckAfterSeconds);

    // Act
    const report = await sweep(deps);

    // Assess
    expect(annexNamed('gpu').state).toBe('RUNNING');
    expect(recorded(annex.id)).toEqual([genuine]);
    expect(stateOf(genuine ?? '')).toBe('running');
    expect(stateOf(forged)).toBe('terminated');
    expect(forgedEvents(annex.id)).toEqual([
      expect.objectContaining({
        detail: { instanceId: forged, batch: 1, why: expect.stringContaining('client token') },
      }),
    ]);
    expect(report.errors).toBe(0);
  });

  it('fails the launch when every instance with its tags is forged, and serves none of them', async () => {
    // Prepare: the launch never reached EC2; someone else started one with the profile.
    compute.faults.failNext('launch', upstreamUnavailable('EC2 did not answer'));
    await expect(createAnnex(deps, alice, input())).rejects.toThrow();
    const annex = annexNamed('gpu');
    const forged = compute.startByHand(tagsOf(annex, 1), clock.now(), { instanceProfileArn: PROFILE });
    clock.advance(SWEEP.stuckAfterSeconds);

    // Act
    await sweep(deps);

    // Assess
    expect(annexNamed('gpu').state).toBe('FAILED');
    expect(recorded(annex.id)).toEqual([]);
    expect(stateOf(forged)).toBe('terminated');
    expect(forgedEvents(annex.id)).toHaveLength(1);
  });

  it('finds the fleet of a launch whose answer was lost by its client token, and records it', async () => {
    // Prepare
    const annex = await stuckLaunch({ market: 'spot' });
    const genuine = compute.running().map((i) => i.instanceId);
    clock.advance(SWEEP.stuckAfterSeconds);

    // Act
    await sweep(deps);

    // Assess
    const repaired = annexNamed('gpu');
    expect(repaired.state).toBe('RUNNING');
    expect(recorded(annex.id)).toEqual(genuine);
    expect(repaired.fleetIds?.['1']).toBe(compute.instances.get(genuine[0] ?? '')?.fleetId);
    expect([...store.instances.values()][0]?.launchToken).toBe(fleetToken(repaired, 1));
  });

  it('terminates an instance of a fleet someone else created with the annex’s tags', async () => {
    // Prepare
    const annex = await stuckLaunch({ market: 'spot' });
    const theirs = compute.createFleetByHand(`${annex.id}-b1-a0`);
    const forged = compute.startByHand(tagsOf(annex, 1), clock.now(), {
      instanceProfileArn: PROFILE,
      fleetId: theirs,
    });
    clock.advance(SWEEP.stuckAfterSeconds);

    // Act
    await sweep(deps);

    // Assess
    expect(stateOf(forged)).toBe('terminated');
    expect(recorded(annex.id)).not.toContain(forged);
    expect(forgedEvents(annex.id)[0]?.detail).toMatchObject({ instanceId: forged });
  });
});

describe('sweep: provenance of a running annex', () => {
  it('terminates an untracked look-alike of a RUNNING annex instead of adopting it', async () => {
    // Prepare
    await createAnnex(deps, alice, input());
    const annex = annexNamed('gpu');
    const forged = compute.startByHand(tagsOf(annex, 2), clock.now(), { instanceProfileArn: PROFILE });
    clock.advance(SWEEP.orphanMinAgeSeconds);

    // Act
    const report = await sweep(deps);

    // Assess
    expect(stateOf(forged)).toBe('terminated');
    expect(recorded(annex.id)).not.toContain(forged);
    expect(report.actions).toContainEqual({
      action: 'terminate-forged',
      reason: 'forged',
      annexId: annex.id,
      instanceIds: [forged],
    });
  });

  it('never touches an untagged instance or one of another stage', async () => {
    // Prepare
    await createAnnex(deps, alice, input());
    const annex = annexNamed('gpu');
    const untagged = compute.startByHand({}, clock.now());
    const otherStage = compute.startByHand({ ...tagsOf(annex, 2), 'annex:stage': 'prod' }, clock.now());
    clock.advance(SWEEP.orphanMinAgeSeconds);

    // Act
    await sweep(deps);

    // Assess
    expect(stateOf(untagged)).toBe('running');
    expect(stateOf(otherStage)).toBe('running');
    expect(forgedEvents(annex.id)).toEqual([]);
  });
});
