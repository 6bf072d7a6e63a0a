/**
 * Hands a Slack job to the worker function with an asynchronous invoke (`InvocationType: Event`):
 * Lambda queues it and answers 202 at once, so the acknowledging function stays within Slack's
 * 3 seconds however long the work takes.
 */
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import { AnnexError } from '../domain/errors.ts';
import type { SlackJob } from '../slack/model.ts';
import type { SlackJobs } from '../slack/ports.ts';
import { LAMBDA_ERRORS, translateAwsError } from './errors.ts';

export class LambdaSlackJobs implements SlackJobs {
  constructor(
    private readonly lambda: LambdaClient,
    private readonly functionName: string,
  ) {}

  async enqueue(job: SlackJob): Promise<void> {
    let status: number | undefined;
    try {
      const out = await this.lambda.send(
        new InvokeCommand({
          FunctionName: this.functionName,
          InvocationType: 'Event',
          Payload: new TextEncoder().encode(JSON.stringify(job)),
        }),
      );
      status = out.StatusCode;
    } catch (e) {
      translateAwsError(LAMBDA_ERRORS, e, 'Slack worker', {
        unexpected: 'could not hand the job to the worker',
      });
    }
    if (status !== 202)
      throw new AnnexError('Internal', `the worker invoke answered ${String(status)}, not 202`);
  }
}
