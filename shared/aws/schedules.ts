/**
 * The EventBridge Scheduler adapter: one one-time schedule per annex and expiry, named
 * `<annexId>-<expiry epoch seconds>` in the stage's schedule group. The Scheduler fires anywhere
 * in the minute an `at()` names, so the schedule names the latest minute that ends by the expiry
 * (`expiryFireMinute`) and the expire function waits for the exact second. Naming a schedule by
 * its expiry makes every write idempotent and race-free: an extension creates the schedule for the
 * new expiry and cancels the old one; a stale schedule that still fires finds the lease extended
 * and does nothing, and deletes itself after it ran (ActionAfterCompletion DELETE).
 */
import {
  CreateScheduleCommand,
  DeleteScheduleCommand,
  ListSchedulesCommand,
  type SchedulerClient,
} from '@aws-sdk/client-scheduler';
import { expiryFireMinute } from '../domain/lease.ts';
import { systemClock, type Clock, type ExpirySchedules } from '../domain/ports.ts';
import { awsErrorKind, SCHEDULER_ERRORS, translateAwsError } from './errors.ts';

export interface ScheduleTarget {
  group: string;
  /** The expire function's ARN. */
  functionArn: string;
  /** The role EventBridge Scheduler assumes to invoke it. */
  roleArn: string;
}

const translate = (e: unknown, what: string): never => translateAwsError(SCHEDULER_ERRORS, e, what);

/** Expiry rounded up to the whole second: the part of the schedule's name that says which expiry. */
export const fireAtSeconds = (expiresAt: string): number => Math.ceil(Date.parse(expiresAt) / 1000);

export const scheduleName = (annexId: string, expiresAt: string): string =>
  `${annexId}-${fireAtSeconds(expiresAt)}`;

/** `at(yyyy-mm-ddThh:mm:00)` in UTC: the minute the schedule for `expiresAt` fires in. */
export const atExpression = (expiresAt: string, now: Date): string =>
  `at(${new Date(expiryFireMinute(expiresAt, now)).toISOString().slice(0, 19)})`;

const NAME = /^(ax-[0-9a-f]+)-(\d+)$/;

export class SchedulerExpirySchedules implements ExpirySchedules {
  constructor(
    private readonly scheduler: SchedulerClient,
    private readonly target: ScheduleTarget,
    private readonly clock: Clock = systemClock,
  ) {}

  async schedule(annexId: string, expiresAt: string): Promise<void> {
    try {
      await this.scheduler.send(
        new CreateScheduleCommand({
          Name: scheduleName(annexId, expiresAt),
          GroupName: this.target.group,
          ScheduleExpression: atExpression(expiresAt, this.clock.now()),
          ScheduleExpressionTimezone: 'UTC',
          FlexibleTimeWindow: { Mode: 'OFF' },
          State: 'ENABLED',
          ActionAfterCompletion: 'DELETE',
          Description: `Ends annex ${annexId} when its lease expires`,
          Target: {
            Arn: this.target.functionArn,
            RoleArn: this.target.roleArn,
            Input: JSON.stringify({ annexId, expiresAt }),
            RetryPolicy: { MaximumRetryAttempts: 10, MaximumEventAgeInSeconds: 3600 },
          },
        }),
      );
    } catch (e) {
      // The same name is the same expiry of the same annex: already scheduled.
      if (awsErrorKind(SCHEDULER_ERRORS, e) !== 'exists') translate(e, 'scheduling the expiry');
    }
  }

  async cancel(annexId: string, expiresAt: string): Promise<void> {
    try {
      await this.scheduler.send(
        new DeleteScheduleCommand({ Name: scheduleName(annexId, expiresAt), GroupName: this.target.group }),
      );
    } catch (e) {
      if (awsErrorKind(SCHEDULER_ERRORS, e) !== 'not-found') translate(e, 'cancelling the expiry');
    }
  }

  async move(annexId: string, from: string, to: string): Promise<void> {
    await this.schedule(annexId, to);
    if (scheduleName(annexId, from) !== scheduleName(annexId, to)) await this.cancel(annexId, from);
  }

  async list(): Promise<{ annexId: string; fireAt: string }[]> {
    const found: { annexId: string; fireAt: string }[] = [];
    let NextToken: string | undefined;
    do {
      let out;
      try {
        out = await this.scheduler.send(
          new ListSchedulesCommand({
            GroupName: this.target.group,
            NamePrefix: 'ax-',
            MaxResults: 100,
            NextToken,
          }),
        );
      } catch (e) {
        return translate(e, 'listing expiry schedules');
      }
      for (const s of out.Schedules ?? []) {
        const m = NAME.exec(s.Name ?? '');
        if (s.GroupName === this.target.group && m?.[1] !== undefined && m[2] !== undefined) {
          found.push({ annexId: m[1], fireAt: new Date(Number(m[2]) * 1000).toISOString() });
        }
      }
      NextToken = out.NextToken;
    } while (NextToken !== undefined && NextToken !== '');
    return found;
  }
}
