import { describe, expect, it } from 'vitest';
import {
  confirmationText,
  estimatedCostText,
  parseRange,
  parseTags,
  requestedCount,
  type CreateRequest,
} from '../../../cli/src/commands/create.ts';
import { findOnPath } from '../../../cli/src/commands/off.ts';
import { parseCollector } from '../../../cli/src/commands/pools.ts';
import { CliError } from '../../../cli/src/errors.ts';

describe('create', () => {
  const request: CreateRequest = {
    name: 'ToddsGPU',
    pool: 'default',
    count: 1,
    instanceTypes: ['p2.xlarge'],
    market: 'on-demand',
    durationSeconds: 3000,
    idleSeconds: 900,
  };

  const prices = {
    region: 'test-1',
    transcribed: '2026-01-01',
    prices: { 'p2.xlarge': 0.9, 'g5.xlarge': 1.006 },
  };

  it('confirms in condor_annex’s words, with a cost only where the price table knows every type', () => {
    expect(confirmationText({ ...request, instanceTypes: ['x9.huge'] })).toBe(
      'Will request 1 x9.huge on-demand instance(s) for 0.83 hours. Each instance will terminate after being idle for 0.25 hours.',
    );
    expect(
      confirmationText({ ...request, count: 4, instanceTypes: ['g5.xlarge', 'x9.huge'], pool: 'lab' }),
    ).toBe(
      'Will request 4 g5.xlarge or x9.huge on-demand instance(s) for 0.83 hours. Each instance will terminate after being idle for 0.25 hours. They will join pool lab.',
    );
    expect(estimatedCostText(request, prices)).toBe(
      ' Estimated cost: at most $0.90 per hour, $0.75 for the whole lease, at test-1 on-demand list prices of 2026-01-01.',
    );
    // Types tried in order: the dearest bounds the estimate.
    expect(
      estimatedCostText({ ...request, count: 2, instanceTypes: ['p2.xlarge', 'g5.xlarge'] }, prices),
    ).toContain('at most $2.01 per hour');
    expect(estimatedCostText({ ...request, instanceTypes: ['p2.xlarge', 'x9.huge'] }, prices)).toBe('');
  });

  it('says what a spot, mixed, hardware-needs or fleet-config request asks for', () => {
    expect(confirmationText({ ...request, market: 'spot', instanceTypes: ['x9.a', 'x9.b'] })).toMatch(
      /^Will request 1 x9.a or x9.b spot instance\(s\) for 0.83 hours/,
    );
    expect(
      confirmationText({
        ...request,
        count: 4,
        market: 'mixed',
        onDemandBaseCount: 1,
        instanceTypes: ['x9.a'],
      }),
    ).toMatch(/^Will request 4 x9.a instance\(s\), 1 on-demand and the rest spot, for/);
    const needs = { vCpus: { min: 4 }, memoryMiB: { min: 16384 }, gpus: { min: 1 } };
    const { instanceTypes: _none, ...noTypes } = request;
    expect(confirmationText({ ...noTypes, market: 'spot', instanceRequirements: needs })).toMatch(
      /^Will request 1 \(4\+ vCPUs, 16\+ GiB, 1\+ GPUs\) spot instance\(s\)/,
    );
    const { count: _c, ...noCount } = noTypes;
    const fleet = { ...noCount, market: undefined, spotFleetConfig: { TargetCapacity: '5' } };
    expect(requestedCount(fleet)).toBe(5);
    expect(confirmationText(fleet)).toMatch(
      /^Will request 5 instance\(s\) as the Spot Fleet config describes/,
    );
    expect(estimatedCostText({ ...request, market: 'spot' }, prices)).toContain(
      '(spot usually costs much less)',
    );
  });

  it('reads --vcpus style ranges', () => {
    expect(parseRange('4', '--vcpus')).toEqual({ min: 4 });
    expect(parseRange('4-8', '--vcpus')).toEqual({ min: 4, max: 8 });
    expect(() => parseRange('8-4', '--vcpus')).toThrow(CliError);
    expect(() => parseRange('many', '--vcpus')).toThrow(CliError);
  });

  it('reads tags as KEY=VALUE, splitting at the first =', () => {
    expect(parseTags([])).toBeUndefined();
    expect(parseTags(['team=hpc', 'expr=a=b', 'empty='])).toEqual({ team: 'hpc', expr: 'a=b', empty: '' });
    expect(() => parseTags(['novalue'])).toThrow(CliError);
    expect(() => parseTags(['=x'])).toThrow(CliError);
  });
});

describe('pools set', () => {
  it('reads HOST or HOST:PORT', () => {
    expect(parseCollector('cm.example.org')).toEqual({ collectorHost: 'cm.example.org' });
    expect(parseCollector('10.0.0.5:9620')).toEqual({ collectorHost: '10.0.0.5', collectorPort: 9620 });
    for (const bad of ['', 'cm:', 'cm:0', 'cm:70000', 'a b:1'])
      expect(() => parseCollector(bad)).toThrow(CliError);
  });
});

describe('off', () => {
  it('finds an executable on PATH, and nothing when it is not there', () => {
    expect(findOnPath('node', process.env.PATH)).toMatch(/node$/);
    expect(findOnPath('condor_off_surely_not_installed', process.env.PATH)).toBeUndefined();
    expect(findOnPath('node', '')).toBeUndefined();
  });
});
