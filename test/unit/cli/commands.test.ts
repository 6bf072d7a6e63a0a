import { describe, expect, it } from 'vitest';
import { confirmationText, parseTags, type CreateRequest } from '../../../cli/src/commands/create.ts';
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

  it('confirms in condor_annex’s words, without a made-up price', () => {
    expect(confirmationText(request)).toBe(
      'Will request 1 p2.xlarge on-demand instance(s) for 0.83 hours. Each instance will terminate after being idle for 0.25 hours.',
    );
    expect(
      confirmationText({ ...request, count: 4, instanceTypes: ['g5.xlarge', 'g4dn.xlarge'], pool: 'lab' }),
    ).toBe(
      'Will request 4 g5.xlarge or g4dn.xlarge on-demand instance(s) for 0.83 hours. Each instance will terminate after being idle for 0.25 hours. They will join pool lab.',
    );
    expect(confirmationText(request)).not.toMatch(/\$|cost|price/i);
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
