import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseCommandLine } from '../../../cli/src/args.ts';
import {
  CONDOR_OPTIONS,
  condorOptionRows,
  isCondorStyle,
  translateCondorArgs,
} from '../../../cli/src/condor.ts';
import { CliError } from '../../../cli/src/errors.ts';
import { commandHelp, topHelp } from '../../../cli/src/help.ts';

const refusal = (argv: string[]): CliError => {
  try {
    translateCondorArgs(argv);
  } catch (e) {
    expect(e).toBeInstanceOf(CliError);
    return e as CliError;
  }
  throw new Error('expected a usage error');
};

describe('condor_annex command lines', () => {
  it('recognises condor_annex style by its options, not by modern ones', () => {
    expect(isCondorStyle(['-count', '1', '-annex-name', 'x'])).toBe(true);
    expect(isCondorStyle(['create', 'x', '--count', '1', '-t', 'm5.large'])).toBe(false);
    expect(isCondorStyle(['create', 'x', '--', '-count'])).toBe(false);
  });

  it('turns the classic example into a create', () => {
    const argv = translateCondorArgs([
      '-count',
      '1',
      '-annex-name',
      'ToddsGPU',
      '-aws-on-demand-instance-type',
      'p2.xlarge',
    ]);
    expect(argv).toEqual(['create', 'ToddsGPU', '--count', '1', '--type', 'p2.xlarge']);
    const parsed = parseCommandLine(argv);
    expect(parsed.kind === 'command' && parsed.command.name).toBe('create');
  });

  it('maps the on-demand, lease, user data, region, tag and confirmation options', () => {
    expect(
      translateCondorArgs([
        '-aws-on-demand',
        '-annex',
        'big',
        '-count',
        '100',
        '-aws-on-demand-instance-type',
        'p2.xlarge',
        '-aws-on-demand-ami-id',
        'ami-0123456789abcdef0',
        '-aws-on-demand-security-group-ids',
        'sg-11111111, sg-22222222',
        '-aws-on-demand-key-name',
        'my key',
        '-duration',
        '0.83',
        '-idle',
        '0.25',
        '-aws-region',
        'us-west-2',
        '-tag',
        'project',
        'gpu 2025',
        '-tag',
        'team',
        'a=b',
        '-aws-user-data-file',
        '/tmp/ud',
        '-yes',
        '--no-wait',
        '--pool',
        'lab',
      ]),
    ).toEqual([
      'create',
      'big',
      '--count',
      '100',
      '--duration',
      '2988s',
      '--idle',
      '900s',
      '--user-data-file',
      '/tmp/ud',
      '--type',
      'p2.xlarge',
      '--image',
      'ami-0123456789abcdef0',
      '--security-group',
      'sg-11111111',
      '--security-group',
      'sg-22222222',
      '--key-name',
      'my key',
      '--region',
      'us-west-2',
      '--tag',
      'project=gpu 2025',
      '--tag',
      'team=a=b',
      '--yes',
      '--no-wait',
      '--pool',
      'lab',
    ]);
  });

  it('uses -aws-default-user-data only when no user data is given', () => {
    expect(translateCondorArgs(['-count', '1', '-annex-name', 'a', '-aws-default-user-data', 'D'])).toContain(
      'D',
    );
    const both = translateCondorArgs([
      '-count',
      '1',
      '-annex-name',
      'a',
      '-aws-default-user-data-file',
      '/d',
      '-aws-user-data',
      'U',
    ]);
    expect(both).toContain('U');
    expect(both).not.toContain('/d');
  });

  it('resets the lease for a name with -duration and no count, as condor_annex did', () => {
    expect(translateCondorArgs(['-annex-name', 'ToddsGPU', '-duration', '2'])).toEqual([
      'extend',
      'ToddsGPU',
      '--duration',
      '7200s',
    ]);
    expect(translateCondorArgs(['-annex-name', 'x', '-duration', '1', '-idle', '0.5'])).toEqual([
      'extend',
      'x',
      '--duration',
      '3600s',
      '--idle',
      '1800s',
    ]);
  });

  it('maps -status (with or without a name), the status and off arguments, -check-setup and -classad', () => {
    expect(translateCondorArgs(['-status'])).toEqual(['status']);
    expect(translateCondorArgs(['-annex-name', 'x', '-status', '-classad'])).toEqual([
      'status',
      'x',
      '--json',
    ]);
    expect(translateCondorArgs(['-annex-name', 'x', 'status'])).toEqual(['status', 'x']);
    expect(translateCondorArgs(['-annex-name', 'x', 'off'])).toEqual(['off', 'x']);
    expect(translateCondorArgs(['-check-setup', '-aws-region', 'eu-west-1'])).toEqual([
      'check-setup',
      '--region',
      'eu-west-1',
    ]);
    expect(translateCondorArgs(['-help'])).toEqual(['help']);
  });

  it('maps condor_annex’s Spot Fleet options: -slots is the count, the config file is passed on', () => {
    expect(
      translateCondorArgs(['-count', '1', '-annex-name', 'a', '-aws-spot-fleet-config-file', 'fleet.json']),
    ).toEqual(['create', 'a', '--count', '1', '--spot-fleet-config', 'fleet.json']);
    expect(translateCondorArgs(['-annex-name', 'a', '-aws-spot-fleet-config-file', '-'])).toEqual([
      'create',
      'a',
      '--spot-fleet-config',
      '-',
    ]);
    expect(
      translateCondorArgs(['-slots', '4', '-annex-name', 'a', '-aws-on-demand-instance-type', 'm5.large']),
    ).toEqual(['create', 'a', '--count', '4', '--spot', '--type', 'm5.large']);
    expect(
      translateCondorArgs([
        '-aws-spot-fleet',
        '-count',
        '2',
        '-annex-name',
        'a',
        '-aws-on-demand-instance-type',
        'c5.large',
      ]),
    ).toEqual(['create', 'a', '--count', '2', '--spot', '--type', 'c5.large']);
    expect(
      refusal(['-count', '1', '-annex-name', 'a', '-aws-spot-fleet-lease-function-arn', 'arn:x']).message,
    ).toContain('is not needed: the Annex control plane manages lease expiry');
  });

  it('maps -owner and -no-owner onto --owner and --no-owner, as condor_annex’s START owners', () => {
    expect(translateCondorArgs(['-count', '1', '-annex-name', 'a', '-owner', 'big, little'])).toEqual([
      'create',
      'a',
      '--count',
      '1',
      '--owner',
      'big, little',
    ]);
    expect(translateCondorArgs(['-count', '1', '-annex-name', 'a', '-no-owner'])).toEqual([
      'create',
      'a',
      '--count',
      '1',
      '--no-owner',
    ]);
  });

  it('explains the options the control plane made unnecessary', () => {
    expect(refusal(['-setup']).message).toContain('-setup is not needed');
    expect(refusal(['-count', '1', '-annex-name', 'a', '-aws-ec2-url', 'https://x']).message).toContain(
      '-aws-ec2-url is not needed',
    );
    expect(refusal(['-count', '1', '-annex-name', 'a', '-config-dir', '/x']).message).toContain(
      '-config-dir is not supported',
    );
  });

  it.each([
    [['-count', '1'], '-annex-name NAME is required'],
    [['-annex-name', 'x'], 'nothing to do'],
    [['-annex-name', 'x', '-idle', '1'], '-idle without -count'],
    [['-count'], '-count needs a value'],
    [['-count', '1', '-annex-name', 'x', '-tag', 'only-name'], '-tag needs a name and a value'],
    [['-count', '1', '-annex-name', 'x', '-bogus'], 'unknown condor_annex option -bogus'],
    [['create', 'x', '-count', '1'], 'cannot be mixed with the create command'],
    [['-count', '1', '-annex-name', 'x', 'extra'], 'unexpected argument "extra"'],
    [['-count', '1', '-annex-name', 'x', '-duration', 'soon'], '-duration "soon" is not a number of hours'],
  ])('refuses %j', (argv, message) => {
    const e = refusal(argv);
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain(message);
  });
});

describe('the condor_annex option table', () => {
  /** The rows of the README's table under the header `| condor_annex | in annex |`. */
  const readmeRows = (): [string, string][] => {
    const lines = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8').split('\n');
    const header = lines.findIndex((l) => /^\| condor_annex +\| in annex +\|$/.test(l));
    expect(header).toBeGreaterThan(0);
    const rows: [string, string][] = [];
    for (const line of lines.slice(header + 2)) {
      if (!line.startsWith('|')) break;
      const [option = '', does = ''] = line
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim());
      rows.push([option.replace(/^`|`$/g, ''), does]);
    }
    return rows;
  };

  it('is what the README lists, row for row', () => {
    expect(readmeRows()).toEqual(condorOptionRows());
  });

  it('is what annex help condor_annex lists, and annex --help points there', () => {
    const help = commandHelp('condor_annex') ?? '';

    const lines = help.split('\n');
    for (const [option, does] of condorOptionRows()) {
      const line = lines.find((l) => l.startsWith(`  ${option} `));
      expect(line?.slice(option.length + 2).trim()).toBe(does);
    }
    expect(topHelp('1.0.0')).toContain('annex help condor_annex');
    expect(topHelp('1.0.0')).not.toMatch(/not supported yet/);
  });

  it('is what the parser reads: every option it lists is recognised, and refused ones say so', () => {
    for (const [name, option] of Object.entries(CONDOR_OPTIONS)) {
      expect(isCondorStyle([name])).toBe(true);
      if (option.kind === 'refuse') expect(refusal([name, 'x']).message).toContain(name);
    }
    expect(isCondorStyle(['constructor'])).toBe(false);
  });
});
