/**
 * The Slack edge, as middy middleware: no IAM identity here; instead Slack's v0 signature is
 * checked over the raw bytes of the body (base64-decoded when API Gateway encoded it) with a
 * timing-safe compare, and the timestamp must be within 5 minutes, before the body is parsed.
 * Anything that fails is a 401 without detail. After that, a refused field is a 400 naming it,
 * and an outage is told to the Slack user as an ephemeral message (Slack shows non-200s as
 * "dispatch_failed", which helps nobody).
 */
import middy, { type MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { AnnexError } from '../domain/errors.ts';
import type { Clock } from '../domain/ports.ts';
import { errorResponse, json } from '../http/errors.ts';
import { logger as rootLogger, type StructuredLogger } from '../log.ts';
import { ephemeral } from './blocks.ts';
import { SlackAuthError } from './errors.ts';
import type { SlackMessage } from './model.ts';
import type { SlackSecrets } from './ports.ts';
import { verifySlackSignature } from './signature.ts';

type Event = APIGatewayProxyEventV2;
type Result = APIGatewayProxyStructuredResultV2;

export interface VerifiedSlackRequest {
  form: URLSearchParams;
  signature: string;
  timestamp: number;
  requestId: string;
  log: StructuredLogger;
}

interface SlackContext extends Context {
  slack?: VerifiedSlackRequest;
}

export interface SlackEdgeDeps {
  secrets: Pick<SlackSecrets, 'signingSecret'>;
  clock: Clock;
}

const headerOf = (event: Event, name: string): string | undefined => {
  for (const [k, v] of Object.entries(event.headers ?? {})) if (k.toLowerCase() === name) return v;
  return undefined;
};

/** The body exactly as Slack sent it. */
export const rawBody = (event: Event): Buffer =>
  event.body === undefined
    ? Buffer.alloc(0)
    : Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8');

const verification = (deps: () => SlackEdgeDeps): MiddlewareObj<Event, Result, Error, SlackContext> => ({
  before: async ({ event, context }) => {
    context.slack = undefined;
    const { secrets, clock } = deps();
    const raw = rawBody(event);
    const signature = headerOf(event, 'x-slack-signature');
    const verdict = verifySlackSignature({
      secret: await secrets.signingSecret(),
      timestamp: headerOf(event, 'x-slack-request-timestamp'),
      signature,
      rawBody: raw,
      nowSeconds: Math.floor(clock.now().getTime() / 1000),
    });
    if (!verdict.ok) throw new SlackAuthError(verdict.reason);
    context.slack = {
      form: new URLSearchParams(raw.toString('utf8')),
      signature: signature ?? '',
      timestamp: verdict.timestamp,
      requestId: context.awsRequestId,
      log: rootLogger.child({ requestId: context.awsRequestId, route: event.routeKey }),
    };
  },
});

const errors = (): MiddlewareObj<Event, Result, Error, SlackContext> => ({
  onError: (request) => {
    const { error, context, event } = request;
    const fields = { requestId: context.awsRequestId, route: event.routeKey };
    if (error instanceof SlackAuthError) {
      rootLogger.info('slack request refused', { ...fields, status: 401, reason: error.message });
      request.response = json(401, { error: { code: 'Unauthorized', message: 'unauthorized' } });
      return;
    }
    const verified = context.slack !== undefined;
    if (error instanceof AnnexError && error.code !== 'Internal' && error.code !== 'UpstreamUnavailable') {
      rootLogger.info('slack request refused', { ...fields, error: error.message });
      request.response = errorResponse(error, context.awsRequestId);
      return;
    }
    rootLogger.error('slack request failed', { ...fields, error: error?.name, detail: error?.message });
    request.response = verified
      ? json(200, ephemeral(':warning: Annex could not take this right now; try again in a minute.'))
      : json(500, {
          error: { code: 'Internal', message: 'internal error', requestId: context.awsRequestId },
        });
  },
});

/** Builds a Slack-facing Lambda handler: `fn` sees only verified requests. */
export const slackRoute = (
  deps: () => SlackEdgeDeps,
  fn: (req: VerifiedSlackRequest) => Promise<SlackMessage | undefined>,
) =>
  middy<Event, Result, Error, SlackContext>()
    .use(errors())
    .use(verification(deps))
    .handler(async (_event, context) => {
      const message = await fn(context.slack as VerifiedSlackRequest);
      return message === undefined ? { statusCode: 200, body: '' } : json(200, message);
    });
