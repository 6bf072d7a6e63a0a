import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { slackSignature, verifySlackSignature } from '../../../shared/slack/signature.ts';

// Slack's documented example (api.slack.com/authentication/verifying-requests-from-slack).
const SECRET = '8f742231b10e8888abcd99yyyzzz85a5';
const BODY =
  'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c';
const TIMESTAMP = '1531420618';
const SIGNATURE = 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503';

const verify = (over: Partial<Parameters<typeof verifySlackSignature>[0]> = {}) =>
  verifySlackSignature({
    secret: SECRET,
    timestamp: TIMESTAMP,
    signature: SIGNATURE,
    rawBody: Buffer.from(BODY),
    nowSeconds: Number(TIMESTAMP) + 10,
    ...over,
  });

describe('Slack v0 signatures', () => {
  it('reproduces Slack’s documented example', () => {
    expect(slackSignature(SECRET, TIMESTAMP, Buffer.from(BODY))).toBe(SIGNATURE);
    expect(verify()).toEqual({ ok: true, timestamp: Number(TIMESTAMP) });
  });

  it('is computed over the raw bytes, not a re-encoding of the form', () => {
    const bytes = Buffer.from('text=caf%C3%A9+%2B1&x=%7E', 'utf8');
    const expected = `v0=${createHmac('sha256', 'k')
      .update(Buffer.concat([Buffer.from('v0:1:'), bytes]))
      .digest('hex')}`;
    expect(slackSignature('k', 1, bytes)).toBe(expected);
  });

  it('refuses another secret, a changed body, a changed timestamp', () => {
    expect(verify({ secret: 'other' })).toEqual({ ok: false, reason: 'signature mismatch' });
    expect(verify({ rawBody: Buffer.from(`${BODY}&x=1`) })).toEqual({
      ok: false,
      reason: 'signature mismatch',
    });
    expect(verify({ timestamp: String(Number(TIMESTAMP) + 1) })).toEqual({
      ok: false,
      reason: 'signature mismatch',
    });
  });

  it('refuses a signature of another length without throwing (timing-safe compare)', () => {
    expect(verify({ signature: 'v0=abc' })).toEqual({ ok: false, reason: 'signature mismatch' });
  });

  it('refuses timestamps more than 5 minutes off, either way', () => {
    expect(verify({ nowSeconds: Number(TIMESTAMP) + 300 }).ok).toBe(true);
    expect(verify({ nowSeconds: Number(TIMESTAMP) + 301 })).toEqual({ ok: false, reason: 'stale timestamp' });
    expect(verify({ nowSeconds: Number(TIMESTAMP) - 301 })).toEqual({ ok: false, reason: 'stale timestamp' });
  });

  it('refuses missing or malformed headers', () => {
    expect(verify({ signature: undefined }).ok).toBe(false);
    expect(verify({ timestamp: undefined }).ok).toBe(false);
    expect(verify({ timestamp: '1531420618.5' }).ok).toBe(false);
  });
});
