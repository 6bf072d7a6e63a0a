import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createAnnex } from '../../../shared/domain/annex-create.ts';
import type { LaunchDeps } from '../../../shared/domain/annex-deps.ts';
import { plan, planOutage } from '../../../shared/domain/lease-planner.ts';
import type {
  Annex,
  AnnexState,
  Caller,
  InstanceRecord,
  InstanceState,
} from '../../../shared/domain/model.ts';
import type { SweepSettings, TaggedInstance } from '../../../shared/domain/ports.ts';
import { sweep, type SweepDeps } from '../../../shared/domain/sweep.ts';
import { domainDeps, putDefaultPool, TEST_SWEEP } from '../../support/domain-deps.ts';
import { upstreamUnavailable } from '../../../shared/domain/errors.ts';

const alice: Caller = { principalArn: 'arn:aws:iam::123456789012:user/alice', admin: false };
type Of<A> = A extends fc.Arbitrary<infer T> ? T : never;
const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();
const SETTINGS: SweepSettings = { ...TEST_SWEEP, outageExpiryGraceSeconds: 300 };

const STATES: AnnexState[] = ['REQUESTED', 'LAUNCHING', 'RUNNING', 'TERMINATING'];
const INSTANCE_STATES: InstanceState[] = ['pending', 'running', 'terminated'];
const offset = fc.integer({ min: -4 * HOUR, max: 4 * HOUR });
const maybeOffset = fc.option(offset, { nil: undefined });

const annexArb = fc.record({
  state: fc.constantFrom(...STATES),
  expires: offset,
  updated: fc.integer({ min: -4 * HOUR, max: 0 }),
  maxSpend: fc.option(fc.double({ min: 0.01, max: 100, noNaN: true }), { nil: undefined }),
  idleSeconds: fc.integer({ min: 60, max: 7200 }),
});

const annexOf = (a: Of<typeof annexArb>, now: number): Annex =>
  ({
    id: 'ax-0000000000000000000a',
    name: 'lease',
    owner: alice.principalArn,
    pool: 'default',
    poolCredentialParameter: '/annex/test/annexes/ax-0000000000000000000a/pool-credentials',
    state: a.state,
    spec: { instanceTypes: ['m5.large'], market: 'on-demand' },
    requestedCount: 2,
    batches: 1,
    idleSeconds: a.idleSeconds,
    createdAt: iso(now - 5 * HOUR),
    updatedAt: iso(now + a.updated),
    expiresAt: iso(now + a.expires),
    requestHash: 'h',
    ...(a.maxSpend === undefined ? {} : { maxSpend: a.maxSpend }),
    version: 1,
  }) as Annex;

const idArb = fc.integer({ min: 0, max: 7 }).map((n) => `i-${n.toString(16).padStart(17, '0')}`);

const recordArb = fc.record({
  instanceId: idArb,
  state: fc.constantFrom(...INSTANCE_STATES),
  launched: fc.integer({ min: -4 * HOUR, max: 0 }),
  heartbeat: maybeOffset,
  idleSince: maybeOffset,
  claimedSlots: fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }),
});

const taggedArb = fc.record({
  instanceId: idArb,
  launched: fc.integer({ min: -4 * HOUR, max: 0 }),
  batch: fc.integer({ min: 0, max: 2 }),
  expiresTag: maybeOffset,
});

const recordOf = (r: Of<typeof recordArb>, annexId: string, now: number): InstanceRecord => ({
  instanceId: r.instanceId,
  annexId,
  batch: 0,
  instanceType: 'm5.large',
  market: 'on-demand',
  state: r.state,
  launchedAt: iso(now + r.launched),
  updatedAt: iso(now + r.launched),
  ...(r.heartbeat === undefined ? {} : { lastHeartbeatAt: iso(now + Math.min(0, r.heartbeat)) }),
  ...(r.idleSince === undefined ? {} : { idleSince: iso(now + Math.min(0, r.idleSince)) }),
  ...(r.claimedSlots === undefined ? {} : { claimedSlots: r.claimedSlots }),
});

const taggedOf = (t: Of<typeof taggedArb>, annexId: string, now: number): TaggedInstance => ({
  instanceId: t.instanceId,
  annexId,
  instanceType: 'm5.large',
  state: 'running',
  batch: t.batch,
  launchedAt: iso(now + t.launched),
  ...(t.expiresTag === undefined ? {} : { expiresAtTag: iso(now + t.expiresTag) }),
});

const planned = (actions: ReturnType<typeof plan>): string[] =>
  actions.flatMap((a) =>
    'instanceIds' in a ? a.instanceIds : 'instances' in a ? a.instances.map((i) => i.instanceId) : [],
  );

describe('the lease planner', () => {
  it('ends every lease whose expiry has passed, whatever its state, records and listing', () => {
    fc.assert(
      fc.property(annexArb, fc.array(recordArb), fc.array(taggedArb), (a, rs, ts) => {
        const now = T0;
        const annex = annexOf({ ...a, expires: -Math.abs(a.expires) }, now);
        const actions = plan(
          annex,
          rs.map((r) => recordOf(r, annex.id, now)),
          ts.map((t) => taggedOf(t, annex.id, now)),
          new Date(now),
          SETTINGS,
        );
        expect(actions).toEqual([{ kind: 'end-annex', reason: expect.any(String) }]);
      }),
    );
  });

  it('names only instances the lease recorded or EC2 lists under its tag', () => {
    fc.assert(
      fc.property(annexArb, fc.array(recordArb), fc.array(taggedArb), (a, rs, ts) => {
        const now = T0;
        const annex = annexOf(a, now);
        const records = rs.map((r) => recordOf(r, annex.id, now));
        const tagged = ts.map((t) => taggedOf(t, annex.id, now));
        const known = new Set([...records.map((r) => r.instanceId), ...tagged.map((t) => t.instanceId)]);
        for (const id of planned(plan(annex, records, tagged, new Date(now), SETTINGS))) {
          expect(known.has(id)).toBe(true);
        }
      }),
    );
  });

  it('plans nothing for a lease whose listing and records agree and whose instances are fine', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 * HOUR }), fc.array(idArb, { maxLength: 4 }), (ahead, ids) => {
        const now = T0;
        const annex = annexOf(
          { state: 'RUNNING', expires: ahead, updated: 0, maxSpend: undefined, idleSeconds: 900 },
          now,
        );
        const unique = [...new Set(ids)];
        const records = unique.map((instanceId) => ({
          ...recordOf(
            {
              instanceId,
              state: 'running',
              launched: -1000,
              heartbeat: 0,
              idleSince: undefined,
              claimedSlots: 1,
            },
            annex.id,
            now,
          ),
        }));
        const tagged = unique.map((instanceId) => ({
          ...taggedOf({ instanceId, launched: -1000, batch: 0, expiresTag: undefined }, annex.id, now),
          expiresAtTag: annex.expiresAt,
        }));
        expect(plan(annex, records, tagged, new Date(now), SETTINGS)).toEqual([]);
      }),
    );
  });

  it('with the table down, terminates exactly the tagged instances past expiry plus the grace', () => {
    fc.assert(
      fc.property(fc.array(taggedArb), (ts) => {
        const now = T0;
        const tagged = ts.map((t, n) => ({
          ...taggedOf(t, 'ax-0000000000000000000a', now),
          instanceId: `i-${n.toString(16).padStart(17, '0')}`,
        }));
        const due = new Set(planOutage(tagged, new Date(now), SETTINGS).map((i) => i.instanceId));
        for (const t of tagged) {
          const past = t.expiresAtTag !== undefined && Date.parse(t.expiresAtTag) + 300_000 <= now;
          expect(due.has(t.instanceId)).toBe(past);
        }
      }),
    );
  });
});

describe('the sweep, over random leases and clocks', () => {
  const scenario = fc.record({
    leases: fc.array(fc.integer({ min: 120, max: 7200 }), { minLength: 1, maxLength: 3 }),
    advance: fc.integer({ min: 0, max: 3 * 3600 }),
    foreign: fc.integer({ min: 0, max: 3 }),
    untagged: fc.integer({ min: 0, max: 3 }),
    outage: fc.boolean(),
  });

  it('leaves no instance live past its expiry plus one sweep (plus the grace in an outage), and never touches another stage or an untagged instance', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        // Prepare
        const { clock, store, compute, deps } = domainDeps({ with: { sweep: SETTINGS } });
        const sweepDeps: LaunchDeps & SweepDeps = deps;
        await putDefaultPool(deps);
        for (const [n, durationSeconds] of s.leases.entries()) {
          await createAnnex(deps, alice, {
            name: `lease${n}`,
            pool: 'default',
            count: 1,
            instanceTypes: ['m5.large'],
            market: 'on-demand',
            durationSeconds,
          });
        }
        // Every instance reports busy: nothing but its lease's expiry may end it.
        for (const [key, record] of store.instances) {
          store.instances.set(key, {
            ...record,
            lastHeartbeatAt: clock.now().toISOString(),
            totalSlots: 1,
            claimedSlots: 1,
          });
        }
        const bystanders = [
          ...Array.from({ length: s.foreign }, () =>
            compute.startByHand({
              'annex:id': 'ax-00000000000000000ff0',
              'annex:stage': 'other',
              'annex:expires-at': '2000-01-01T00:00:00.000Z',
            }),
          ),
          // No annex id: with no tags at all, or with this stage's tag alone.
          ...Array.from({ length: s.untagged }, (_, n) =>
            compute.startByHand(
              n % 2 === 0 ? { Name: 'not annex' } : { Name: 'not annex', 'annex:stage': 'test' },
            ),
          ),
        ];
        clock.advance(s.advance);
        if (s.outage)
          store.faults.failNext('listLiveInstances', upstreamUnavailable('DynamoDB is unavailable'));

        // Act: two sweeps a minute apart (the first may be the outage's).
        await sweep(sweepDeps);
        if (s.outage)
          store.faults.failNext('listLiveInstances', upstreamUnavailable('DynamoDB is unavailable'));
        clock.advance(60);
        await sweep(sweepDeps);

        // Assess
        const now = clock.now().getTime();
        const grace = s.outage ? 300_000 : 0;
        for (const i of compute.running()) {
          if (bystanders.includes(i.instanceId)) continue;
          const expiresAt = Date.parse(i.tags['annex:expires-at'] ?? '');
          expect(now).toBeLessThan(expiresAt + 60_000 + grace);
        }
        expect(compute.running().filter((i) => bystanders.includes(i.instanceId))).toHaveLength(
          bystanders.length,
        );
      }),
      { numRuns: 40 },
    );
  });
});
