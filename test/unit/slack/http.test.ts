// The Slack edge on its own: signature checked over the raw bytes (base64 or not) before the body
// is read; 401 without detail; 400 naming a field; outages told to the Slack user.
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { upstreamUnavailable, validationError } from '../../../shared/domain/errors.ts';
import { slackRoute, type VerifiedSlackRequest } from '../../../shared/slack/http.ts';
import { slackSignature } from '../../../shared/slack/signature.ts';
import { FakeClock } from '../../support/fakes.ts';
import { FakeSlackSecrets } from '../../support/slack-fakes.ts';

const clock = new FakeClock();
const now = Math.floor(clock.now().getTime() / 1000);
const secret = 'edge-secret';

const event = (body: string, options: { base64?: boolean; timestamp?: number; signature?: string } = {}) => {
  const timestamp = options.timestamp ?? now;
  return {
    version: '2.0',
    routeKey: 'POST /v1/slack/commands',
    rawPath: '/v1/slack/commands',
    rawQueryString: '',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'X-Slack-Request-Timestamp': String(timestamp),
      'X-Slack-Signature': options.signature ?? slackSignature(secret, timestamp, Buffer.from(body, 'utf8')),
    },
    body: options.base64 === true ? Buffer.from(body, 'utf8').toString('base64') : body,
    isBase64Encoded: options.base64 === true,
    requestContext: { requestId: 'r', routeKey: 'POST /v1/slack/commands' },
  } as unknown as APIGatewayProxyEventV2;
};
const context = { awsRequestId: 'req-1' } as Context;

const edge = (fn: (r: VerifiedSlackRequest) => Promise<unknown>, secrets = new FakeSlackSecrets(secret)) => {
  const seen: VerifiedSlackRequest[] = [];
  const handler = slackRoute(
    () => ({ secrets, clock }),
    async (r) => {
      seen.push(r);
      return (await fn(r)) as never;
    },
  );
  return { handler, seen };
};

describe('slackRoute', () => {
  it('verifies a base64-encoded body (as HTTP APIs deliver form posts) over its raw bytes', async () => {
    const body = 'team_id=T1&text=caf%C3%A9+%2B1';
    const { handler, seen } = edge(async () => ({ text: 'ok' }));

    const result = await handler(event(body, { base64: true }), context);

    expect(result).toMatchObject({ statusCode: 200, body: JSON.stringify({ text: 'ok' }) });
    expect(seen[0]?.form.get('text')).toBe('café +1');
    expect(seen[0]?.timestamp).toBe(now);
  });

  it.each([
    ['a wrong signature', event('a=1', { signature: `v0=${'0'.repeat(64)}` })],
    ['a stale timestamp', event('a=1', { timestamp: now - 301 })],
    ['no signature', { ...event('a=1'), headers: { 'content-type': 'application/x-www-form-urlencoded' } }],
  ])('answers %s with 401 and no detail, before the body is read', async (_what, e) => {
    const { handler, seen } = edge(async () => ({ text: 'ok' }));

    const result = await handler(e as APIGatewayProxyEventV2, context);

    expect(result).toEqual({
      statusCode: 401,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ error: { code: 'Unauthorized', message: 'unauthorized' } }),
    });
    expect(seen).toEqual([]);
  });

  it('answers an empty 200 when there is nothing to say', async () => {
    const { handler } = edge(async () => undefined);
    expect(await handler(event('payload=%7B%7D'), context)).toEqual({ statusCode: 200, body: '' });
  });

  it('maps a refused field to a 400 naming it', async () => {
    const { handler } = edge(async () => {
      throw validationError('response_url', 'must start with https://hooks.slack.com/');
    });
    const result = await handler(event('a=1'), context);
    expect(result).toMatchObject({ statusCode: 400 });
    expect(JSON.parse((result as { body: string }).body)).toMatchObject({ error: { field: 'response_url' } });
  });

  it('tells the Slack user about an outage after verification, and nobody anything before it', async () => {
    const { handler } = edge(async () => {
      throw upstreamUnavailable('the lease table is unavailable (recordNonce)');
    });
    const after = await handler(event('a=1'), context);
    expect(JSON.parse((after as { body: string }).body)).toEqual({
      response_type: 'ephemeral',
      text: ':warning: Annex could not take this right now; try again in a minute.',
    });

    const broken = new FakeSlackSecrets(secret);
    broken.signingSecret = () => Promise.reject(new Error('ssm down'));
    const before = await edge(async () => ({ text: 'x' }), broken).handler(event('a=1'), context);
    expect(before).toMatchObject({ statusCode: 500 });
    expect((before as { body: string }).body).not.toContain('ssm down');
  });
});
