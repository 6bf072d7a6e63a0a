// `npm run dev:slack -- "/annex list"`: sends a Slack-signed slash command to the local stack (as
// Slack would, from workspace T0DEV, user U0DEV, channel C0DEV), prints the acknowledgement, then
// what the local Slack stand-in received on that command's response_url.
// `npm run dev:slack -- --click extend|terminate NAME` clicks a button of the latest card of NAME.
// Reads ANNEX_API_URL, SLACK_SIGNING_SECRET and ANNEX_SLACK_STANDIN_URL from the environment or
// from .annex/dev.env (written by `npm run dev`).
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DEV_SLACK_CHANNEL,
  DEV_SLACK_TEAM,
  DEV_SLACK_USER,
  interactionBody,
  slackHeaders,
  slashCommandBody,
} from './devstack/slack-dev.ts';
import type { SlackDelivery } from './devstack/slack-standin.ts';
import { repoRoot } from './devstack/serverless-config.ts';

const env = (name: string): string => {
  const file = join(repoRoot, '.annex', 'dev.env');
  const fromFile = existsSync(file)
    ? new RegExp(`^export ${name}=(.*)$`, 'm').exec(readFileSync(file, 'utf8'))?.[1]
    : undefined;
  const value = process.env[name] ?? fromFile;
  if (value === undefined || value === '') throw new Error(`${name} is not set: run \`npm run dev\` first`);
  return value;
};

const received = async (standIn: string): Promise<SlackDelivery[]> =>
  ((await (await fetch(`${standIn}/received`)).json()) as { received: SlackDelivery[] }).received;

const main = async () => {
  const args = process.argv.slice(2);
  const apiUrl = env('ANNEX_API_URL');
  const secret = env('SLACK_SIGNING_SECRET');
  const standIn = env('ANNEX_SLACK_STANDIN_URL');
  const responsePath = `/response/cli-${randomBytes(6).toString('hex')}`;
  let path: string;
  let body: string;
  if (args[0] === '--click') {
    const [, button, name] = args;
    if ((button !== 'extend' && button !== 'terminate') || name === undefined) {
      throw new Error('usage: npm run dev:slack -- --click extend|terminate NAME');
    }
    const actionId = `annex_${button}`;
    const value = (await received(standIn))
      .flatMap((d) => (d.body.blocks ?? []) as { elements?: { action_id?: string; value?: string }[] }[])
      .flatMap((b) => b.elements ?? [])
      .filter((e) => e.action_id === actionId && e.value?.includes(`"name":${JSON.stringify(name)}`))
      .at(-1)?.value;
    if (value === undefined)
      throw new Error(`no card of ${name} was received yet: try "/annex status ${name}"`);
    path = '/v1/slack/interactions';
    body = interactionBody({
      type: 'block_actions',
      team: { id: DEV_SLACK_TEAM },
      user: { id: DEV_SLACK_USER, team_id: DEV_SLACK_TEAM },
      channel: { id: DEV_SLACK_CHANNEL },
      response_url: `${standIn}${responsePath}`,
      trigger_id: `${Date.now()}.0.${randomBytes(6).toString('hex')}`,
      actions: [{ action_id: actionId, value, type: 'button' }],
    });
  } else {
    const text = args
      .join(' ')
      .replace(/^\s*\/annex\b/, '')
      .trim();
    path = '/v1/slack/commands';
    body = slashCommandBody({ text, responseUrl: `${standIn}${responsePath}` });
  }
  const response = await fetch(`${apiUrl}${path}`, {
    method: 'POST',
    body,
    headers: slackHeaders(secret, body),
  });
  console.log(`→ POST ${path}: HTTP ${response.status} ${await response.text()}`);
  if (response.status !== 200) process.exit(1);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const answers = (await received(standIn)).filter((d) => d.path === responsePath);
    if (answers.length > 0) {
      for (const a of answers)
        console.log(`← the Slack stand-in received on response_url:\n${JSON.stringify(a.body, null, 2)}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  console.log('(nothing on response_url yet; the acknowledgement above was the only answer)');
};

main().catch((e: unknown) => {
  console.error((e as Error).message);
  process.exit(1);
});
