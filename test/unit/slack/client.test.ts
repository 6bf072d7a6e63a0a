import { describe, expect, it, vi } from 'vitest';
import { HttpSlackMessenger } from '../../../shared/slack/client.ts';
import { SlackPostError } from '../../../shared/slack/errors.ts';

const TOKEN = 'xoxb-secret-token-DO-NOT-LEAK';
const messenger = (answer: () => Promise<Response>) => {
  const fetchFn = vi.fn((_url: string | URL | Request, _init?: RequestInit) => answer());
  return {
    fetchFn,
    slack: new HttpSlackMessenger(
      { responseUrlPrefix: 'https://hooks.slack.com/', apiUrl: 'https://slack.com/api/' },
      fetchFn as unknown as typeof fetch,
    ),
  };
};
const json = (body: unknown, status = 200) =>
  Promise.resolve(
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } }),
  );

describe('HttpSlackMessenger', () => {
  it('posts the message to an allowed response_url, never following a redirect', async () => {
    const { slack, fetchFn } = messenger(() => json({ ok: true }));

    await slack.respond('https://hooks.slack.com/commands/T1/2/abc', {
      text: 'hi',
      response_type: 'ephemeral',
    });

    const [url, init] = fetchFn.mock.calls[0] ?? [];
    expect(url).toBe('https://hooks.slack.com/commands/T1/2/abc');
    expect(init).toMatchObject({ method: 'POST', redirect: 'error' });
    expect(JSON.parse(String(init?.body))).toEqual({ text: 'hi', response_type: 'ephemeral' });
  });

  it.each([
    'https://hooks.slack.com.evil.example/x',
    'https://hooks.slack.com@evil.example/x',
    'http://hooks.slack.com/x',
    'https://evil.example/?https://hooks.slack.com/',
    'not a url',
  ])('never posts to %s', async (url) => {
    const { slack, fetchFn } = messenger(() => json({ ok: true }));
    await expect(slack.respond(url, { text: 'x' })).rejects.toMatchObject({ permanent: true });
    expect(fetchFn).not.toHaveBeenCalled();
  });

  it('treats an expired response_url (404) as permanent and a 5xx as worth retrying', async () => {
    await expect(
      messenger(() => json({}, 404)).slack.respond('https://hooks.slack.com/c', { text: 'x' }),
    ).rejects.toMatchObject({
      permanent: true,
    });
    await expect(
      messenger(() => json({}, 503)).slack.respond('https://hooks.slack.com/c', { text: 'x' }),
    ).rejects.toMatchObject({
      permanent: false,
    });
  });

  it('calls chat.postMessage with the bot token and tells permanent errors from others, never with the token', async () => {
    const { slack, fetchFn } = messenger(() => json({ ok: true }));
    await slack.postMessage(TOKEN, 'C1', { text: 'warn', blocks: [] });
    const [url, init] = fetchFn.mock.calls[0] ?? [];
    expect(String(url)).toBe('https://slack.com/api/chat.postMessage');
    expect((init?.headers as Record<string, string>).authorization).toBe(`Bearer ${TOKEN}`);
    expect(JSON.parse(String(init?.body))).toEqual({ channel: 'C1', text: 'warn', blocks: [] });

    const notIn = messenger(() => json({ ok: false, error: 'not_in_channel' })).slack.postMessage(
      TOKEN,
      'C1',
      { text: 'x' },
    );
    await expect(notIn).rejects.toEqual(new SlackPostError('chat.postMessage: not_in_channel', true));
    const limited = messenger(() => json({ ok: false, error: 'ratelimited' })).slack.postMessage(
      TOKEN,
      'C1',
      { text: 'x' },
    );
    await expect(limited).rejects.toMatchObject({ permanent: false });
    const down = messenger(() => Promise.reject(new TypeError(`fetch failed ${TOKEN}`))).slack.postMessage(
      TOKEN,
      'C1',
      {
        text: 'x',
      },
    );
    await expect(down).rejects.toMatchObject({ permanent: false });
    await down.catch((e: Error) => expect(`${e.message} ${e.stack ?? ''}`).not.toContain(TOKEN));
  });
});
