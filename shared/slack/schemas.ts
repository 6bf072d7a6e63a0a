/**
 * What Slack sends (the slash command form, the interaction payload, a button's value) and the
 * admin mapping route's body and path. A refusal names the field; nothing is written for it.
 */
import * as z from 'zod/mini';
import { validationError } from '../domain/errors.ts';
import { SIGNER_ARN_PATTERN } from '../domain/identity.ts';
import { NAME } from '../http/params.ts';
import type { SlackAnnexRef } from './model.ts';

const slackId = z.string().check(z.regex(/^[A-Z0-9]{2,32}$/, 'must be a Slack id'));
const triggerId = z.string().check(z.regex(/^[A-Za-z0-9._-]{1,200}$/, 'must be a Slack trigger id'));
const url = z.string().check(z.maxLength(2048), z.regex(/^https?:\/\/[^\s]+$/, 'must be a URL'));
const principalArn = z
  .string()
  .check(z.regex(/^arn:aws[a-z-]*:(iam|sts)::\d{12}:[\x21-\x7e]{1,1900}$/, 'must be an IAM principal ARN'));
const name = z.string().check(z.regex(NAME, 'must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'));

export const SlashCommandForm = z.object({
  team_id: slackId,
  user_id: slackId,
  channel_id: z.optional(slackId),
  text: z.optional(z.string().check(z.maxLength(4000))),
  response_url: url,
  trigger_id: triggerId,
});

export const InteractionPayload = z.object({
  type: z.string(),
  team: z.object({ id: slackId }),
  user: z.object({ id: slackId }),
  channel: z.optional(z.object({ id: slackId })),
  response_url: z.optional(url),
  trigger_id: triggerId,
  actions: z.optional(
    z.array(
      z.object({
        action_id: z.string().check(z.maxLength(255)),
        value: z.optional(z.string().check(z.maxLength(2000))),
      }),
    ),
  ),
});

export const AnnexRefValue = z.object({
  id: z.string().check(z.regex(/^ax-[0-9a-f]{1,40}$/, 'must be an annex id')),
  name,
  owner: principalArn,
});

export const SlackUserPath = z.object({ teamId: slackId, userId: slackId });

export const PutSlackUserBody = z.strictObject({
  // Only what the owner rule accepts as a signer: a federated user or a role ARN is not a mapping target.
  principalArn: z
    .string()
    .check(z.regex(SIGNER_ARN_PATTERN, 'must be an IAM user, the account root or a role session ARN')),
  pools: z.array(name).check(z.minLength(1), z.maxLength(50)),
});

/** Parses or throws a ValidationError naming the field (`prefix.path`). */
export const parseAs = <T>(schema: z.ZodMiniType<T>, value: unknown, prefix: string): T => {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue?.path.join('.') ?? '';
  const field = [prefix, path].filter((p) => p !== '').join('.');
  throw validationError(field === '' ? 'body' : field, issue?.message ?? 'invalid');
};

export const annexRefOf = (value: string | undefined): SlackAnnexRef => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value ?? '');
  } catch {
    throw validationError('actions.0.value', 'must be a JSON annex reference');
  }
  return parseAs(AnnexRefValue, parsed, 'actions.0.value');
};

/** The interaction form: Slack's block_actions payload, as JSON in one field. */
export const InteractionForm = z.object({
  payload: z
    .string()
    .check(z.describe("Slack's block_actions payload (JSON); the button's value names the annex")),
});

/** A Slack user's mapping as the admin routes answer it. */
export const SlackUser = z.object({
  teamId: z.string(),
  userId: z.string(),
  principalArn: z.string(),
  pools: z.array(z.string()),
  updatedAt: z.iso.datetime({ offset: true }),
  updatedBy: z.string().check(z.describe('the administrator who wrote the mapping')),
});
export const SlackUserEnvelope = z.object({ slackUser: SlackUser });

/** A Slack message (Block Kit), as the Slack routes answer it. */
export const SlackMessageBody = z.object({
  text: z.string(),
  response_type: z.optional(z.enum(['ephemeral', 'in_channel'])),
  replace_original: z.optional(z.boolean()),
  blocks: z.optional(z.array(z.record(z.string(), z.unknown()))),
});
