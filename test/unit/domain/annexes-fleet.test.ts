// Spot, mixed and hardware-needs annexes in the domain: what a fleet launch is asked for, partial
// capacity under both policies, the per-annex launch template's life, and field-named refusals.
import { beforeEach, describe, expect, it } from 'vitest';
import { addNodes } from '../../../shared/domain/annex-nodes.ts';
import { createAnnex, type CreateAnnexInput } from '../../../shared/domain/annex-create.ts';
import { deleteAnnex } from '../../../shared/domain/annex-end.ts';
import { getAnnexDetail } from '../../../shared/domain/annex-read.ts';
import { repairStuckLaunch } from '../../../shared/domain/launch-capacity.ts';
import type { LaunchDeps } from '../../../shared/domain/annex-deps.ts';
import { AnnexError } from '../../../shared/domain/errors.ts';
import type { Caller } from '../../../shared/domain/model.ts';
import type { FleetError } from '../../../shared/domain/ports.ts';
import { sweep, type SweepDeps } from '../../../shared/domain/sweep.ts';
import { annexView } from '../../../shared/domain/views.ts';
import {
  StampingLeaseStore,
  type FakeClock,
  type FakeCompute,
  type FakeSecrets,
} from '../../support/fakes.ts';
import { domainDeps, putDefaultPool, TEST_SWEEP } from '../../support/domain-deps.ts';

const alice: Caller = { principalArn: 'arn:aws:iam::123456789012:user/alice', admin: false };

const spot = (over: Partial<CreateAnnexInput> = {}): CreateAnnexInput => ({
  name: 'cheap',
  pool: 'default',
  count: 3,
  instanceTypes: ['m5.large', 'm5a.large', 'm6i.large'],
  market: 'spot',
  ...over,
});

const INSUFFICIENT: FleetError = {
  code: 'InsufficientInstanceCapacity',
  message: 'We currently do not have sufficient m5.large capacity',
  market: 'spot',
  instanceType: 'm5.large',
  subnetId: 'subnet-11111111',
};
const MAX_SPOT: FleetError = {
  code: 'MaxSpotInstanceCountExceeded',
  message: 'Max spot instance count exceeded',
  market: 'spot',
  instanceType: 'm6i.large',
};

let clock: FakeClock;
let store: StampingLeaseStore;
let compute: FakeCompute;
let secrets: FakeSecrets;
let deps: LaunchDeps & SweepDeps;

beforeEach(async () => {
  ({ clock, store, compute, secrets, deps } = domainDeps({
    store: (c) => new StampingLeaseStore(c),
    settings: { maxInstancesPerAnnex: 20 },
    launch: {
      defaultSubnetIds: ['subnet-11111111', 'subnet-22222222'],
      // The stack's launch roles also allow the subnet the spot fleet configs below name.
      launchSubnetIds: ['subnet-11111111', 'subnet-22222222', 'subnet-1a2b3c4d'],
    },
    with: { sweep: TEST_SWEEP },
  }));
  // The spot fleet configs below name a subnet of their own: the admin's policy allows it.
  await putDefaultPool(deps, {
    policy: {
      allowUserImage: true,
      allowUserData: true,
      allowKeyPair: true,
      allowedSubnetIds: ['subnet-11111111', 'subnet-22222222', 'subnet-1a2b3c4d'],
    },
  });
});

const refusal = async (p: Promise<unknown>): Promise<{ code?: string; field?: string }> => {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AnnexError);
  return { code: (e as AnnexError).code, field: (e as AnnexError).field };
};

const eventTypes = (annexId: string) => store.events.filter((e) => e.annexId === annexId).map((e) => e.type);

describe('spot and mixed launches', () => {
  it('launches a spot annex as one fleet over every type and subnet, price-capacity-optimized by default', async () => {
    const { annex } = await createAnnex(deps, alice, spot(), 'k1');

    expect(annex.state).toBe('RUNNING');
    expect(compute.fleets).toHaveLength(1);
    expect(compute.fleets[0]).toMatchObject({
      annexId: annex.id,
      batch: 1,
      count: 3,
      spec: {
        market: 'spot',
        instanceTypes: ['m5.large', 'm5a.large', 'm6i.large'],
        subnetIds: ['subnet-11111111', 'subnet-22222222'],
      },
    });
    expect(compute.launchTemplates.has(annex.id)).toBe(true);
    const records = await store.listInstances(annex.id);
    expect(records.map((r) => r.market)).toEqual(['spot', 'spot', 'spot']);
  });

  it('keeps the allocation strategy and max price the request chose', async () => {
    await createAnnex(deps, alice, spot({ allocationStrategy: 'lowest-price', maxPrice: '0.05' }));

    expect(compute.fleets[0]?.spec).toMatchObject({ allocationStrategy: 'lowest-price', maxPrice: '0.05' });
  });

  it('launches a mixed annex with its on-demand base and records each instance’s market', async () => {
    const { annex } = await createAnnex(deps, alice, spot({ market: 'mixed', onDemandBaseCount: 1 }));

    expect(compute.fleets[0]?.spec).toMatchObject({ market: 'mixed', onDemandBaseCount: 1 });
    const markets = (await store.listInstances(annex.id)).map((r) => r.market).sort();
    expect(markets).toEqual(['on-demand', 'spot', 'spot']);
  });

  it('launches hardware needs instead of types through a fleet', async () => {
    const { annex } = await createAnnex(
      deps,
      alice,
      spot({
        instanceTypes: undefined,
        market: 'on-demand',
        instanceRequirements: { vCpus: { min: 4, max: 8 }, memoryMiB: { min: 16384 }, gpus: { min: 1 } },
      }),
    );

    expect(annex.state).toBe('RUNNING');
    expect(compute.fleets[0]?.spec).toMatchObject({
      market: 'on-demand',
      instanceTypes: [],
      instanceRequirements: { vCpus: { min: 4, max: 8 }, memoryMiB: { min: 16384 }, gpus: { min: 1 } },
    });
  });

  it('keeps plain on-demand on RunInstances (no fleet, no launch template)', async () => {
    await createAnnex(deps, alice, spot({ market: 'on-demand', instanceTypes: ['m5.large', 'c5.large'] }));

    expect(compute.fleets).toEqual([]);
    expect(compute.launchTemplates.size).toBe(0);
  });

  it('adds spot nodes to an on-demand annex under the same lease, as a fleet of their own batch', async () => {
    const { annex } = await createAnnex(deps, alice, spot({ market: 'on-demand', count: 1 }));

    const after = await addNodes(deps, alice, { name: 'cheap' }, { count: 2, market: 'spot' }, 'add-1');

    expect(after).toMatchObject({ state: 'RUNNING', requestedCount: 3 });
    expect(compute.fleets).toHaveLength(1);
    expect(compute.fleets[0]).toMatchObject({ batch: 2, count: 2, expiresAt: annex.expiresAt });
    expect(compute.fleets[0]?.spec.market).toBe('spot');
  });

  it('gives a mixed annex’s added batch the annex’s on-demand base unless the request names one', async () => {
    await createAnnex(deps, alice, spot({ market: 'mixed', onDemandBaseCount: 1, count: 2 }));

    await addNodes(deps, alice, { name: 'cheap' }, { count: 2 });
    await addNodes(deps, alice, { name: 'cheap' }, { count: 2, onDemandBaseCount: 2 });

    expect(compute.fleets.map((f) => f.spec.onDemandBaseCount)).toEqual([1, 1, 2]);
  });
});

describe('refusals name the field and write nothing', () => {
  it.each([
    ['mixed without a base', spot({ market: 'mixed' }), 'onDemandBaseCount'],
    ['a base larger than count', spot({ market: 'mixed', onDemandBaseCount: 4 }), 'onDemandBaseCount'],
    ['a base without mixed', spot({ onDemandBaseCount: 1 }), 'onDemandBaseCount'],
    ['a max price on demand', spot({ market: 'on-demand', maxPrice: '0.1' }), 'maxPrice'],
    [
      'a strategy on demand',
      spot({ market: 'on-demand', allocationStrategy: 'lowest-price' }),
      'allocationStrategy',
    ],
    ['neither types nor needs', spot({ instanceTypes: [] }), 'instanceTypes'],
    [
      'types and needs',
      spot({ instanceRequirements: { vCpus: { min: 2 }, memoryMiB: { min: 1024 } } }),
      'instanceRequirements',
    ],
    ['no count', spot({ count: undefined }), 'count'],
  ] as const)('%s', async (_, request, field) => {
    expect(await refusal(createAnnex(deps, alice, request))).toEqual({ code: 'ValidationError', field });
    expect(store.annexes.size).toBe(0);
    expect(compute.calls).toEqual([]);
  });

  it('refuses an untranslatable spot fleet config naming the field inside it', async () => {
    const spotFleetConfig = {
      TargetCapacity: 2,
      LaunchSpecifications: [
        {
          ImageId: 'ami-1a2b3c4d',
          InstanceType: 'm5.large',
          BlockDeviceMappings: [{ DeviceName: '/dev/sda1' }],
        },
      ],
    };

    expect(
      await refusal(createAnnex(deps, alice, { name: 'fleet', pool: 'default', spotFleetConfig })),
    ).toEqual({
      code: 'ValidationError',
      field: 'spotFleetConfig.LaunchSpecifications[0].BlockDeviceMappings',
    });
    expect(store.annexes.size).toBe(0);
  });
});

describe('spot fleet configs', () => {
  it('creates the annex the config describes; request fields take precedence', async () => {
    const spotFleetConfig = {
      SpotPrice: '0.70',
      TargetCapacity: 3,
      AllocationStrategy: 'diversified',
      IamFleetRole: 'arn:aws:iam::123456789012:role/aws-ec2-spot-fleet-tagging-role',
      LaunchSpecifications: [
        { ImageId: 'ami-1a2b3c4d', InstanceType: 'c4.2xlarge', SubnetId: 'subnet-1a2b3c4d' },
        { ImageId: 'ami-1a2b3c4d', InstanceType: 'm3.2xlarge', SubnetId: 'subnet-1a2b3c4d' },
      ],
    };

    const { annex } = await createAnnex(deps, alice, {
      name: 'fleet',
      pool: 'default',
      spotFleetConfig,
      count: 2,
      userData: '#!/bin/sh\n',
    });

    expect(annex).toMatchObject({ state: 'RUNNING', requestedCount: 2 });
    expect(annex.spec).toMatchObject({
      market: 'spot',
      instanceTypes: ['c4.2xlarge', 'm3.2xlarge'],
      imageId: 'ami-1a2b3c4d',
      subnetIds: ['subnet-1a2b3c4d'],
      allocationStrategy: 'diversified',
      maxPrice: '0.70',
      userData: '#!/bin/sh\n',
    });
  });
});

describe('partial capacity', () => {
  it('keep (the default): records each fleet error as an event and shows requested vs running', async () => {
    compute.shortNextFleet(2, [INSUFFICIENT, MAX_SPOT]);

    const { annex } = await createAnnex(deps, alice, spot());

    expect(annex.state).toBe('RUNNING');
    const detail = await getAnnexDetail(deps, alice, { name: 'cheap' });
    expect(annexView(detail.annex, detail.instances)).toMatchObject({ requestedCount: 3, runningCount: 1 });
    const errors = store.events.filter((e) => e.annexId === annex.id && e.type === 'capacity-error');
    expect(errors.map((e) => e.detail)).toEqual([
      { batch: 1, ...INSUFFICIENT },
      { batch: 1, ...MAX_SPOT },
    ]);
    expect(store.events.find((e) => e.type === 'launched')?.message).toBe(
      'batch 1: 1 instance(s) of 3 requested',
    );
  });

  it('all-or-nothing: terminates what launched and ends the annex FAILED (launch-failed)', async () => {
    compute.shortNextFleet(1, [INSUFFICIENT]);

    const { annex } = await createAnnex(deps, alice, spot({ capacityPolicy: 'all-or-nothing' }));

    expect(annex).toMatchObject({ state: 'FAILED', endReason: 'launch-failed' });
    expect(compute.running()).toEqual([]);
    expect((await store.listInstances(annex.id)).map((r) => r.state)).toEqual(['terminated', 'terminated']);
    expect(eventTypes(annex.id)).toEqual([
      'created',
      'credentials-stored',
      'capacity-error',
      'capacity-short',
      'failed',
    ]);
    expect(compute.launchTemplates.has(annex.id)).toBe(false);
    expect(secrets.annexParameters()).toEqual([]);
  });

  it('all-or-nothing on an added batch: gives up that batch only; the annex keeps what it had', async () => {
    await createAnnex(deps, alice, spot({ capacityPolicy: 'all-or-nothing', count: 2 }));
    compute.shortNextFleet(1, [INSUFFICIENT]);

    const after = await addNodes(deps, alice, { name: 'cheap' }, { count: 2 }, 'add-1');

    expect(after).toMatchObject({ state: 'RUNNING', requestedCount: 2 });
    expect(after.launching).toBeUndefined();
    expect(compute.running()).toHaveLength(2);
    expect(compute.running().every((i) => i.batch === 1)).toBe(true);
  });

  it('all-or-nothing: a retry after the batch was terminated never launches it again', async () => {
    await createAnnex(deps, alice, spot({ capacityPolicy: 'all-or-nothing', count: 2 }));
    compute.shortNextFleet(1, [INSUFFICIENT]);
    // The request dies right after terminating the short batch, before giving it up on the annex.
    store.faults.failNext('updateAnnex', new Error('crash'));
    await expect(addNodes(deps, alice, { name: 'cheap' }, { count: 2 }, 'add-1')).rejects.toThrow('crash');

    const retried = await addNodes(deps, alice, { name: 'cheap' }, { count: 2 }, 'add-1');

    expect(compute.fleets).toHaveLength(2);
    expect(retried).toMatchObject({ state: 'RUNNING', requestedCount: 2 });
    expect(compute.running()).toHaveLength(2);
  });

  it('a fleet that launches nothing refuses the batch: the first one fails the annex', async () => {
    compute.shortNextFleet(3, [INSUFFICIENT]);

    await expect(createAnnex(deps, alice, spot())).rejects.toMatchObject({ code: 'LimitExceeded' });

    const [annex] = store.annexes.values();
    expect(annex).toMatchObject({ state: 'FAILED', endReason: 'launch-failed' });
  });

  it('the sweep does not adopt a short all-or-nothing first batch: it fails the annex', async () => {
    const { annex } = await createAnnex(deps, alice, spot({ capacityPolicy: 'all-or-nothing' }), 'k');
    const launching = {
      ...annex,
      state: 'LAUNCHING' as const,
      launching: { batch: 1, count: 5, instanceTypes: [] },
    };
    store.annexes.set(annex.id, launching);

    const { outcome } = await repairStuckLaunch(deps, launching);

    expect(outcome).toBe('failed');
    expect(compute.running()).toEqual([]);
  });
});

describe('the per-annex launch template', () => {
  it('is deleted when the annex ends', async () => {
    const { annex } = await createAnnex(deps, alice, spot());

    await deleteAnnex(deps, alice, { name: 'cheap' });

    expect(compute.launchTemplates.has(annex.id)).toBe(false);
  });

  it('is not asked for when the annex never launched through a fleet; is when a spot batch was added', async () => {
    await createAnnex(deps, alice, spot({ market: 'on-demand', count: 1 }));
    await deleteAnnex(deps, alice, { name: 'cheap' });
    expect(compute.calls.filter((c) => c.method === 'deleteLaunchTemplate')).toEqual([]);

    const { annex } = await createAnnex(deps, alice, spot({ market: 'on-demand', count: 1 }), 'again');
    await addNodes(deps, alice, { name: 'cheap' }, { count: 1, market: 'spot' }, 'add-spot');
    expect(compute.launchTemplates.has(annex.id)).toBe(true);
    await deleteAnnex(deps, alice, { name: 'cheap' });
    expect(compute.launchTemplates.has(annex.id)).toBe(false);
  });

  it('a failure to delete it never stops the end; the sweep deletes the leaked template', async () => {
    const { annex } = await createAnnex(deps, alice, spot());
    compute.faults.failNext('deleteLaunchTemplate', new Error('throttled'));

    const ended = await deleteAnnex(deps, alice, { name: 'cheap' });
    expect(ended.state).toBe('TERMINATED');
    expect(compute.launchTemplates.has(annex.id)).toBe(true);

    clock.advance(61);
    const report = await sweep(deps);

    expect(report.actions).toContainEqual({
      action: 'delete-launch-template',
      reason: 'leak',
      annexId: annex.id,
    });
    expect(compute.launchTemplates.has(annex.id)).toBe(false);
  });

  it('the sweep leaves a live annex’s template alone, and a very young unknown one', async () => {
    const { annex } = await createAnnex(deps, alice, spot());
    compute.launchTemplates.set('ax-unknown', {
      annexId: 'ax-unknown',
      createdAt: clock.now().toISOString(),
    });

    await sweep(deps);
    expect([...compute.launchTemplates.keys()].sort()).toEqual([annex.id, 'ax-unknown'].sort());

    clock.advance(61);
    await sweep(deps);
    expect([...compute.launchTemplates.keys()]).toEqual([annex.id]);
  });
});
