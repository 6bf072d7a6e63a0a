/** Turns a verified Slack form body into the request the use cases take (fields validated, named). */
import { validationError } from '../domain/errors.ts';
import { ACTION_EXTEND, ACTION_TERMINATE } from './blocks.ts';
import type { VerifiedSlackRequest } from './http.ts';
import type { SlackAction } from './model.ts';
import { annexRefOf, InteractionPayload, parseAs, SlashCommandForm } from './schemas.ts';
import type { SlackRequest } from './service.ts';

/** A slash command, or undefined for Slack's periodic `ssl_check` (answered with an empty 200). */
export const commandRequest = (
  verified: VerifiedSlackRequest,
): { request: SlackRequest; text: string } | undefined => {
  if (verified.form.get('ssl_check') === '1') return undefined;
  const form = parseAs(SlashCommandForm, Object.fromEntries(verified.form), '');
  return {
    request: {
      teamId: form.team_id,
      userId: form.user_id,
      ...(form.channel_id === undefined ? {} : { channelId: form.channel_id }),
      responseUrl: form.response_url,
      triggerId: form.trigger_id,
      signature: verified.signature,
      timestamp: verified.timestamp,
    },
    text: form.text ?? '',
  };
};

/** A button click on a card, or undefined for any other interaction (nothing to do). */
export const actionRequest = (
  verified: VerifiedSlackRequest,
): { request: SlackRequest; action: SlackAction } | undefined => {
  const raw = verified.form.get('payload');
  if (raw === null) throw validationError('payload', 'required');
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw validationError('payload', 'must be JSON');
  }
  const payload = parseAs(InteractionPayload, json, 'payload');
  const clicked = payload.actions?.[0];
  if (payload.type !== 'block_actions' || clicked === undefined) return undefined;
  const kind =
    clicked.action_id === ACTION_EXTEND
      ? 'extend'
      : clicked.action_id === ACTION_TERMINATE
        ? 'terminate'
        : undefined;
  if (kind === undefined) return undefined;
  if (payload.response_url === undefined) throw validationError('payload.response_url', 'required');
  return {
    request: {
      teamId: payload.team.id,
      userId: payload.user.id,
      ...(payload.channel === undefined ? {} : { channelId: payload.channel.id }),
      responseUrl: payload.response_url,
      triggerId: payload.trigger_id,
      signature: verified.signature,
      timestamp: verified.timestamp,
    },
    action: { kind, annex: annexRefOf(clicked.value) },
  };
};
