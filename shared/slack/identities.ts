/**
 * The admin's Slack user → principal mappings: each names the OWNER identity a Slack user acts as
 * (through the same owner rule as a signed request, shared/domain/identity.ts) and the pools they
 * may use. Only an administrator may read or change them.
 */
import { forbidden, notFound, validationError } from '../domain/errors.ts';
import { ownerOf, type IdentityRules } from '../domain/identity.ts';
import { toIso } from '../domain/lease.ts';
import type { Caller } from '../domain/model.ts';
import type { Clock } from '../domain/ports.ts';
import type { SlackIdentity } from './model.ts';
import type { SlackStore } from './ports.ts';

export interface PutSlackIdentityInput {
  principalArn: string;
  pools: string[];
}

/** Maps a Slack user to the OWNER identity of `input.principalArn` (a role session → its role). */
export const putSlackIdentity = async (
  deps: { slackStore: SlackStore; clock: Clock; identity: IdentityRules },
  caller: Caller,
  teamId: string,
  userId: string,
  input: PutSlackIdentityInput,
): Promise<SlackIdentity> => {
  if (!caller.admin) throw forbidden('only an administrator may map Slack users');
  const owner = ownerOf(input.principalArn, deps.identity.sessionOwnedRoles);
  if (!owner.ok) throw validationError('principalArn', owner.reason);
  const identity: SlackIdentity = {
    teamId,
    userId,
    principalArn: owner.owner,
    pools: [...new Set(input.pools)],
    updatedAt: toIso(deps.clock.now()),
    updatedBy: caller.principalArn,
  };
  await deps.slackStore.putIdentity(identity);
  return identity;
};

export const getSlackIdentity = async (
  deps: { slackStore: SlackStore },
  caller: Caller,
  teamId: string,
  userId: string,
): Promise<SlackIdentity> => {
  if (!caller.admin) throw forbidden('only an administrator may read Slack user mappings');
  const identity = await deps.slackStore.getIdentity(teamId, userId);
  if (identity === undefined) throw notFound(`no mapping for Slack user ${teamId}/${userId}`);
  return identity;
};

export const deleteSlackIdentity = async (
  deps: { slackStore: SlackStore },
  caller: Caller,
  teamId: string,
  userId: string,
): Promise<void> => {
  if (!caller.admin) throw forbidden('only an administrator may remove Slack user mappings');
  if (!(await deps.slackStore.deleteIdentity(teamId, userId))) {
    throw notFound(`no mapping for Slack user ${teamId}/${userId}`);
  }
};
