/**
 * Who owns what a caller creates: the rule that turns the ARN a request was signed with into an
 * owner identity the caller cannot choose.
 *
 * - IAM user (`arn:aws:iam::ACCT:user/path/name`): the user ARN, as signed. IAM fixes it.
 * - Account root (`arn:aws:iam::ACCT:root`): the root ARN. One principal; nobody else signs as it.
 * - Role session (`arn:aws:sts::ACCT:assumed-role/Role/session`): the session name is whatever the
 *   caller of sts:AssumeRole passed, unless an identity provider sets it. So:
 *   - a role whose sessions count one by one (IAM Identity Center's `AWSReservedSSO_*` roles, whose
 *     session name the SAML assertion sets, and any role the admin lists) is owned per session:
 *     the assumed-role ARN as signed;
 *   - any other role is ONE owner for all its sessions: `arn:aws:iam::ACCT:role/Role`. The
 *     assumed-role ARN does not carry the role's path, and role names are unique within an account
 *     whatever their path, so the owner is formed without a path (`role/Role`, never
 *     `role/team/Role`).
 * - Federated user (`arn:aws:sts::ACCT:federated-user/name`, from sts:GetFederationToken): refused.
 *   The name is the caller's choice and the ARN does not say which IAM user asked for it.
 * - Anything else (a bare role ARN, a service, a malformed ARN): refused.
 *
 * Admins are matched on the owner identity, never on the raw ARN: a configured user ARN is that
 * user, a configured role ARN (with or without a path) is every session of that role, and a
 * configured assumed-role ARN is accepted only for a role owned per session (for any other role
 * anyone who may assume it could name that session).
 */
import type { Caller } from './model.ts';
import { forbidden } from './errors.ts';

/** The roles owned per session when the admin configures none: IAM Identity Center's. */
export const DEFAULT_SESSION_OWNED_ROLES: readonly string[] = ['AWSReservedSSO_*'];

export interface IdentityRules {
  /** Administrators, each already in owner form (see `adminOwnerOf`). */
  adminArns: readonly string[];
  /**
   * Role names whose sessions are owned one by one: a name, or a prefix ending in `*`. Compared
   * without regard to case, as IAM compares role names.
   */
  sessionOwnedRoles: readonly string[];
}

export type OwnerKind = 'user' | 'root' | 'role-session' | 'role';

export type OwnerResult = { ok: true; owner: string; kind: OwnerKind } | { ok: false; reason: string };

const NAME = String.raw`[\w+=,.@-]{1,64}`;
const ARN = /^arn:(aws[a-z-]*):(iam|sts)::(\d{12}):([\x21-\x7e]{1,1900})$/;
const USER = new RegExp(String.raw`^user/(?:[\x21-\x2e\x30-\x7e]+/)*${NAME}$`);
const ASSUMED_ROLE = new RegExp(String.raw`^assumed-role/(${NAME})/([\w+=,.@-]{2,64})$`);
/**
 * The ARNs the owner rule accepts as a signer (and so as a Slack mapping's target), as one pattern
 * the request schema can state: an IAM user (up to 8 path segments), the account root, or a role
 * session. Federated users and anything else are not in it.
 */
export const SIGNER_ARN_PATTERN = new RegExp(
  String.raw`^arn:aws[a-z-]*:(?:iam::\d{12}:(?:root|user/(?:[\x21-\x2e\x30-\x7e]{1,64}/){0,8}${NAME})|sts::\d{12}:assumed-role/${NAME}/[\w+=,.@-]{2,64})$`,
);
const ROLE = new RegExp(String.raw`^role/(?:[\x21-\x2e\x30-\x7e]+/)*(${NAME})$`);

const matchesRole = (pattern: string, role: string): boolean => {
  const p = pattern.toLowerCase();
  const r = role.toLowerCase();
  return p.endsWith('*') ? r.startsWith(p.slice(0, -1)) : r === p;
};

/** Whether the sessions of `role` (a role name) are owned one by one. */
export const sessionOwned = (sessionOwnedRoles: readonly string[], role: string): boolean =>
  sessionOwnedRoles.some((p) => matchesRole(p, role));

/** The owner identity of a request signed as `arn`, or why such a signer is refused. */
export const ownerOf = (arn: string, sessionOwnedRoles: readonly string[]): OwnerResult => {
  const m = ARN.exec(arn);
  if (m === null) return { ok: false, reason: 'not an IAM principal ARN' };
  const [, partition, service, account, resource = ''] = m;
  if (service === 'iam') {
    if (resource === 'root') return { ok: true, owner: arn, kind: 'root' };
    if (USER.test(resource)) return { ok: true, owner: arn, kind: 'user' };
    return { ok: false, reason: 'only IAM users, the account root and role sessions may sign requests' };
  }
  if (resource.startsWith('federated-user/')) {
    return {
      ok: false,
      reason: 'a federated user (sts:GetFederationToken) names itself; sign as an IAM user or a role',
    };
  }
  const session = ASSUMED_ROLE.exec(resource);
  if (session === null) return { ok: false, reason: 'not an IAM user or role session' };
  const role = session[1] ?? '';
  if (sessionOwned(sessionOwnedRoles, role)) return { ok: true, owner: arn, kind: 'role-session' };
  return { ok: true, owner: `arn:${partition}:iam::${account}:role/${role}`, kind: 'role' };
};

/**
 * A configured administrator ARN in owner form: a role ARN loses its path, an assumed-role ARN is
 * kept only for a role owned per session. Undefined for an entry no caller could be trusted to
 * match (an assumed-role ARN of another role, a federated user, anything unrecognised).
 */
export const adminOwnerOf = (arn: string, sessionOwnedRoles: readonly string[]): string | undefined => {
  const m = ARN.exec(arn);
  if (m !== null && m[2] === 'iam') {
    const role = ROLE.exec(m[4] ?? '');
    if (role !== null) return `arn:${m[1]}:iam::${m[3]}:role/${role[1]}`;
  }
  const result = ownerOf(arn, sessionOwnedRoles);
  if (!result.ok || result.owner !== arn) return undefined;
  return result.owner;
};

/**
 * The caller of a request signed as `sessionArn`: its owner identity as `principalArn`, the raw
 * ARN as `sessionArn`, admin when its owner identity is configured. A refused signer is Forbidden.
 */
export const callerOf = (sessionArn: string, rules: IdentityRules): Caller => {
  const result = ownerOf(sessionArn, rules.sessionOwnedRoles);
  if (!result.ok) throw forbidden(`this identity may not use Annex: ${result.reason}`);
  return { principalArn: result.owner, sessionArn, admin: rules.adminArns.includes(result.owner) };
};

/**
 * The caller a Slack user acts as: the owner rule applied to the mapped ARN (so a mapping made
 * before the rule, or to a role session, acts as the role), with no signed session.
 */
export const mappedCallerOf = (mappedArn: string, rules: IdentityRules): Caller | undefined => {
  const result = ownerOf(mappedArn, rules.sessionOwnedRoles);
  if (!result.ok) return undefined;
  return { principalArn: result.owner, admin: rules.adminArns.includes(result.owner) };
};
