/**
 * Talks to Slack over HTTPS: answers to a response_url (only under the configured prefix, never
 * following a redirect) and chat.postMessage with the bot token against the configured Web API
 * base. Neither the token nor the response_url (a capability) appears in an error or a log.
 */
import { SlackPostError } from './errors.ts';
import type { SlackMessage } from './model.ts';
import type { SlackMessenger } from './ports.ts';
import { responseUrlAllowed } from './response-url.ts';

const TIMEOUT_MS = 5000;
/** chat.postMessage errors that no retry can fix. */
const PERMANENT = new Set([
  'channel_not_found',
  'not_in_channel',
  'is_archived',
  'invalid_auth',
  'account_inactive',
  'token_revoked',
  'msg_too_long',
  'invalid_blocks',
  'restricted_action',
]);

export class HttpSlackMessenger implements SlackMessenger {
  constructor(
    private readonly options: { responseUrlPrefix: string; apiUrl: string },
    private readonly fetchFn: typeof fetch = fetch,
  ) {}

  async respond(responseUrl: string, message: SlackMessage): Promise<void> {
    if (!responseUrlAllowed(this.options.responseUrlPrefix, responseUrl)) {
      throw new SlackPostError('response_url is outside the allowed prefix', true);
    }
    let response: Response;
    try {
      response = await this.fetchFn(responseUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8' },
        body: JSON.stringify(message),
        redirect: 'error',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (e) {
      throw new SlackPostError(`response_url unreachable (${(e as Error).name})`, false);
    }
    await response.arrayBuffer().catch(() => undefined);
    if (!response.ok) {
      // 404/410: the response_url expired (after 30 minutes or 5 uses); retrying cannot help.
      throw new SlackPostError(`response_url answered HTTP ${response.status}`, response.status < 500);
    }
  }

  async postMessage(token: string, channel: string, message: SlackMessage): Promise<void> {
    let response: Response;
    try {
      response = await this.fetchFn(new URL('chat.postMessage', this.options.apiUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8', authorization: `Bearer ${token}` },
        body: JSON.stringify({
          channel,
          text: message.text,
          ...(message.blocks === undefined ? {} : { blocks: message.blocks }),
        }),
        redirect: 'error',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (e) {
      throw new SlackPostError(`chat.postMessage unreachable (${(e as Error).name})`, false);
    }
    if (!response.ok) {
      await response.arrayBuffer().catch(() => undefined);
      throw new SlackPostError(`chat.postMessage answered HTTP ${response.status}`, false);
    }
    const body = (await response.json().catch(() => ({}))) as { ok?: boolean; error?: string };
    if (body.ok !== true) {
      const error = typeof body.error === 'string' ? body.error.slice(0, 64) : 'unknown_error';
      throw new SlackPostError(`chat.postMessage: ${error}`, PERMANENT.has(error));
    }
  }
}
