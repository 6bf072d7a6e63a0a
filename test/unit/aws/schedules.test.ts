import {
  ConflictException,
  CreateScheduleCommand,
  DeleteScheduleCommand,
  ResourceNotFoundException,
  SchedulerClient,
} from '@aws-sdk/client-scheduler';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { SchedulerExpirySchedules, atExpression, scheduleName } from '../../../shared/aws/schedules.ts';
import { FakeClock } from '../../support/fakes.ts';
import { MOCKED_CLIENT_CONFIG, useMockedRegion } from '../../support/aws-mocks.ts';

const ANNEX_ID = 'ax-0123456789abcdef0123';
const TARGET = {
  group: 'annex-test',
  functionArn: 'arn:aws:lambda:us-east-1:123456789012:function:annex-test-expire',
  roleArn: 'arn:aws:iam::123456789012:role/annex-test-scheduler',
};

useMockedRegion();
const mock = mockClient(SchedulerClient);
let clock: FakeClock;
let schedules: SchedulerExpirySchedules;

beforeEach(() => {
  mock.reset();
  clock = new FakeClock(new Date('2026-11-25T12:00:00.000Z'));
  schedules = new SchedulerExpirySchedules(new SchedulerClient(MOCKED_CLIENT_CONFIG), TARGET, clock);
});

describe('SchedulerExpirySchedules', () => {
  it('names the expiry in the schedule and the minute before it in at(), with the flexible window off', async () => {
    mock.on(CreateScheduleCommand).resolves({});

    await schedules.schedule(ANNEX_ID, '2026-11-25T12:50:07.250Z');

    expect(mock).toHaveReceivedCommandWith(CreateScheduleCommand, {
      Name: `${ANNEX_ID}-${Date.parse('2026-11-25T12:50:08Z') / 1000}`,
      GroupName: 'annex-test',
      ScheduleExpression: 'at(2026-11-25T12:49:00)',
      ScheduleExpressionTimezone: 'UTC',
      FlexibleTimeWindow: { Mode: 'OFF' },
      State: 'ENABLED',
      ActionAfterCompletion: 'DELETE',
      Target: expect.objectContaining({
        Arn: TARGET.functionArn,
        Input: JSON.stringify({ annexId: ANNEX_ID, expiresAt: '2026-11-25T12:50:07.250Z' }),
      }),
    });
  });

  it('names the next minute for an expiry less than two minutes away', () => {
    expect(atExpression('2026-11-25T12:01:10.000Z', clock.now())).toBe('at(2026-11-25T12:01:00)');
  });

  it('treats an existing schedule of the same expiry as scheduled, and a missing one as cancelled', async () => {
    mock
      .on(CreateScheduleCommand)
      .rejects(new ConflictException({ message: 'exists', Message: 'exists', $metadata: {} }));
    mock
      .on(DeleteScheduleCommand)
      .rejects(new ResourceNotFoundException({ message: 'gone', Message: 'gone', $metadata: {} }));

    await expect(schedules.schedule(ANNEX_ID, '2026-11-25T12:50:00.000Z')).resolves.toBeUndefined();
    await expect(schedules.cancel(ANNEX_ID, '2026-11-25T12:50:00.000Z')).resolves.toBeUndefined();
  });

  it('keeps the name of a schedule fixed by its expiry, whenever it is written', () => {
    const expiry = '2026-11-25T12:50:00.000Z';
    expect(scheduleName(ANNEX_ID, expiry)).toBe(`${ANNEX_ID}-${Date.parse(expiry) / 1000}`);
    expect(atExpression(expiry, clock.now())).toBe(atExpression(expiry, new Date('2026-11-25T12:30:00Z')));
  });
});
