// The EC2 events function in serverless.yml: the three rules, and a role that can launch a
// replacement exactly as LaunchRole launches a batch, and nothing else (no SSM, no Scheduler).
import { describe, expect, it } from 'vitest';
import { EC2_DETAIL_TYPES } from '../../../shared/domain/ec2-events.ts';
import { actions, serverlessConfig as config, statements } from '../../support/serverless-roles.ts';

describe('ec2Events in serverless.yml', () => {
  it('is the target of one aws.ec2 rule per event it handles', () => {
    const fn = config.functions.ec2Events;
    expect(fn).toMatchObject({ handler: 'handlers/ec2-events.handler', role: 'Ec2EventsRole' });
    expect(fn?.events?.map((e) => e.eventBridge?.pattern)).toEqual(
      Object.values(EC2_DETAIL_TYPES).map((type) => ({ source: ['aws.ec2'], 'detail-type': [type] })),
    );
  });

  it('may launch a replacement as LaunchRole launches a batch, and nothing beyond the table and EC2', () => {
    const events = actions('Ec2EventsRole');
    // Not DeleteLaunchTemplate: only a failed first batch ends the annex, and a replacement never is one.
    const launchEc2 = [...actions('LaunchRole')].filter(
      (a) => a.startsWith('ec2:') && a !== 'ec2:DeleteLaunchTemplate',
    );
    expect(launchEc2.filter((a) => !events.has(a))).toEqual([]);
    expect([...events].filter((a) => !/^(dynamodb|ec2):/.test(a))).toEqual(['iam:PassRole']);
    expect(
      JSON.stringify(statements('Ec2EventsRole').find((s) => s.Action.includes('iam:PassRole'))),
    ).toMatch(/InstanceRole.*ec2\.amazonaws\.com/);
  });

  it('lets only the sweep read spot prices', () => {
    const readers = Object.keys(config.resources.Resources).filter((role) =>
      actions(role).has('ec2:DescribeSpotPriceHistory'),
    );
    expect(readers).toEqual(['EnforceRole']);
  });
});
