import { describe, expect, it } from 'vitest';
import { handler } from '../../../handlers/ec2-events.ts';

describe('handlers/ec2-events', () => {
  it.each([
    ['a scheduled event', { source: 'aws.events', 'detail-type': 'Scheduled Event', id: 'x', detail: {} }],
    [
      'another EC2 event type',
      {
        id: 'x',
        source: 'aws.ec2',
        'detail-type': 'EBS Volume Notification',
        time: '2026-11-25T12:00:00Z',
        detail: {},
      },
    ],
    [
      'a warning without an instance id',
      {
        id: 'x',
        source: 'aws.ec2',
        'detail-type': 'EC2 Spot Instance Interruption Warning',
        time: '2026-11-25T12:00:00Z',
        detail: { 'instance-action': 'terminate' },
      },
    ],
    ['nothing', undefined],
  ])('ignores %s without touching AWS', async (_what, event) => {
    // No configuration is set here: reaching any AWS client or setting would throw.
    expect(await handler(event)).toEqual({ outcome: 'ignored' });
  });
});
