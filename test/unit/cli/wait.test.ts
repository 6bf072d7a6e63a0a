import { describe, expect, it } from 'vitest';
import { CliError } from '../../../cli/src/errors.ts';
import type { Annex, AnnexDetail, Instance } from '../../../cli/src/types.ts';
import { waitForInstances, type WaitProgress } from '../../../cli/src/wait.ts';

const annex = (state: Annex['state'], requestedCount = 2): Annex => ({
  id: 'ax-1',
  name: 'demo',
  owner: 'arn:aws:iam::123456789012:user/alice',
  pool: 'default',
  state,
  market: 'on-demand',
  instanceTypes: ['m5.large'],
  capacityPolicy: 'keep',
  imageId: 'ami-12345678',
  subnetIds: [],
  securityGroupIds: [],
  tags: {},
  userDataBytes: 0,
  requestedCount,
  idleSeconds: 900,
  createdAt: '2025-06-01T12:00:00.000Z',
  updatedAt: '2025-06-01T12:00:00.000Z',
  expiresAt: '2025-06-01T13:00:00.000Z',
  version: 1,
});

// Without lastHeartbeatAt unless `extra` gives it: as an API from before heartbeats answered.
const instance = (id: string, state: Instance['state'] = 'running', extra: Partial<Instance> = {}) =>
  ({
    instanceId: id,
    batch: 1,
    instanceType: 'm5.large',
    market: 'on-demand',
    state,
    launchedAt: '2025-06-01T12:00:00.000Z',
    updatedAt: '2025-06-01T12:00:00.000Z',
    ...extra,
  }) as Instance;

/** Answers GETs from a list; the last answer repeats. A fake clock advances by each sleep. */
const sequence = (details: AnnexDetail[]) => {
  let calls = 0;
  let clock = 0;
  return {
    get: async () => details[Math.min(calls++, details.length - 1)] as AnnexDetail,
    now: () => clock,
    sleep: async (ms: number) => {
      clock += ms;
    },
    calls: () => calls,
  };
};

const detail = (a: Annex, instances: Instance[]): AnnexDetail => ({ annex: a, instances, events: [] });

describe('waitForInstances', () => {
  it('waits until the annex is RUNNING with the instances asked for (pending counts, as runningCount does)', async () => {
    const s = sequence([
      detail(annex('LAUNCHING'), []),
      detail(annex('RUNNING'), [instance('i-1', 'pending')]),
      detail(annex('RUNNING'), [instance('i-1', 'pending'), instance('i-2')]),
    ]);
    const progress: WaitProgress[] = [];
    const result = await waitForInstances(s.get, {
      wanted: 2,
      timeoutMs: 60_000,
      ...s,
      onProgress: (p) => progress.push(p),
    });
    expect(result.outcome).toBe('running');
    expect(s.calls()).toBe(3);
    expect(progress.map((p) => p.running)).toEqual([0, 1, 2]);
  });

  it('after add, counts only the instances that were not there before', async () => {
    const s = sequence([
      detail(annex('RUNNING', 3), [instance('i-old')]),
      detail(annex('RUNNING', 3), [instance('i-old'), instance('i-new')]),
    ]);
    const result = await waitForInstances(s.get, {
      wanted: 1,
      before: new Set(['i-old']),
      timeoutMs: 60_000,
      ...s,
    });
    expect(result.outcome).toBe('running');
    expect(s.calls()).toBe(2);
  });

  it('when the API reports heartbeats, waits until every instance has one', async () => {
    const s = sequence([
      detail(annex('RUNNING', 1), [instance('i-1', 'running', { lastHeartbeatAt: null })]),
      detail(annex('RUNNING', 1), [instance('i-1', 'running', { lastHeartbeatAt: '2025-06-01T12:01:00Z' })]),
    ]);
    const progress: WaitProgress[] = [];
    const result = await waitForInstances(s.get, {
      wanted: 1,
      timeoutMs: 60_000,
      ...s,
      onProgress: (p) => progress.push(p),
    });
    expect(result.outcome).toBe('joined');
    expect(progress.map((p) => [p.phase, p.joined])).toEqual([
      ['joining', 0],
      ['joining', 1],
    ]);
  });

  it('when a fleet gave fewer than asked (policy keep), waits for what its launched event lists', async () => {
    const launched = (ids: string[]) => ({
      at: '2025-06-01T12:00:01.000Z',
      type: 'launched',
      message: `batch 2: ${ids.length} instance(s) of 3 requested`,
      detail: { batch: 2, requested: 3, instanceIds: ids },
    });
    const old = {
      at: '2025-06-01T11:00:01.000Z',
      type: 'launched',
      message: 'batch 1',
      detail: { batch: 1, requested: 1, instanceIds: ['i-old'] },
    };
    const s = sequence([
      { ...detail(annex('LAUNCHING', 4), [instance('i-old')]), events: [old] },
      {
        ...detail(annex('RUNNING', 4), [instance('i-old'), instance('i-a'), instance('i-b')]),
        events: [old, launched(['i-a', 'i-b'])],
      },
    ]);
    const result = await waitForInstances(s.get, {
      wanted: 3,
      before: new Set(['i-old']),
      timeoutMs: 60_000,
      ...s,
    });
    expect(result).toMatchObject({ outcome: 'running', given: 2 });
    expect(s.calls()).toBe(2);
  });

  it('gives up at the timeout with a hint that the annex still exists', async () => {
    const s = sequence([detail(annex('LAUNCHING'), [])]);
    const error = await waitForInstances(s.get, {
      wanted: 2,
      timeoutMs: 10_000,
      intervalMs: 2000,
      ...s,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CliError);
    expect(error).toMatchObject({ code: 'Timeout', exitCode: 1 });
    expect((error as CliError).hint).toContain('annex status demo --watch');
    expect(s.now()).toBe(10_000);
  });

  it('fails at once when the annex ends or fails while it waits, with the last event', async () => {
    const failed: Annex = { ...annex('FAILED'), endReason: 'launch-failed' };
    const s = sequence([
      {
        annex: failed,
        instances: [],
        events: [{ at: '2025-06-01T12:00:01Z', type: 'launch-failed', message: 'no capacity' }],
      },
    ]);
    const error = (await waitForInstances(s.get, { wanted: 2, timeoutMs: 60_000, ...s }).catch(
      (e: unknown) => e,
    )) as CliError;
    expect(error.code).toBe('AnnexEnded');
    expect(error.message).toBe('annex demo is FAILED (launch-failed): no capacity');
  });
});
