import { describe, expect, it } from 'vitest';
import {
  SIGNER_ARN_PATTERN,
  adminOwnerOf,
  callerOf,
  DEFAULT_SESSION_OWNED_ROLES,
  mappedCallerOf,
  ownerOf,
} from '../../../shared/domain/identity.ts';

const ACCT = '123456789012';
const SSO_ROLE = 'AWSReservedSSO_Researchers_0123456789abcdef';
const sts = (resource: string) => `arn:aws:sts::${ACCT}:${resource}`;
const iam = (resource: string) => `arn:aws:iam::${ACCT}:${resource}`;

describe('ownerOf', () => {
  it('owns an IAM user by its user ARN, path included', () => {
    expect(ownerOf(iam('user/alice'), [])).toEqual({ ok: true, owner: iam('user/alice'), kind: 'user' });
    expect(ownerOf(iam('user/staff/alice'), [])).toEqual({
      ok: true,
      owner: iam('user/staff/alice'),
      kind: 'user',
    });
  });

  it('owns the account root by its ARN', () => {
    expect(ownerOf(iam('root'), [])).toEqual({ ok: true, owner: iam('root'), kind: 'root' });
  });

  it('owns an IAM Identity Center session per session by default', () => {
    // Act
    const alice = ownerOf(sts(`assumed-role/${SSO_ROLE}/alice@example.org`), DEFAULT_SESSION_OWNED_ROLES);
    const bob = ownerOf(sts(`assumed-role/${SSO_ROLE}/bob@example.org`), DEFAULT_SESSION_OWNED_ROLES);

    // Assess
    expect(alice).toEqual({
      ok: true,
      owner: sts(`assumed-role/${SSO_ROLE}/alice@example.org`),
      kind: 'role-session',
    });
    expect(bob).toMatchObject({ owner: sts(`assumed-role/${SSO_ROLE}/bob@example.org`) });
  });

  it('owns every session of any other role as the role ARN, without a path', () => {
    // Act
    const alice = ownerOf(sts('assumed-role/SharedRole/alice'), DEFAULT_SESSION_OWNED_ROLES);
    const spoof = ownerOf(sts('assumed-role/SharedRole/bob-says-alice'), DEFAULT_SESSION_OWNED_ROLES);

    // Assess
    expect(alice).toEqual({ ok: true, owner: iam('role/SharedRole'), kind: 'role' });
    expect(spoof).toEqual(alice);
  });

  it('owns sessions per session for a role the admin lists, by name or prefix, in any case', () => {
    // Prepare
    const listed = ['OktaResearchers', 'Idp-*'];

    // Act and Assess
    expect(ownerOf(sts('assumed-role/oktaresearchers/alice'), listed)).toMatchObject({
      owner: sts('assumed-role/oktaresearchers/alice'),
      kind: 'role-session',
    });
    expect(ownerOf(sts('assumed-role/Idp-Physics/alice'), listed)).toMatchObject({ kind: 'role-session' });
    expect(ownerOf(sts('assumed-role/OktaResearchersX/alice'), listed)).toMatchObject({
      owner: iam('role/OktaResearchersX'),
      kind: 'role',
    });
  });

  it('does not trust the Identity Center prefix when the admin configures no session-owned roles', () => {
    expect(ownerOf(sts(`assumed-role/${SSO_ROLE}/alice@example.org`), [])).toEqual({
      ok: true,
      owner: iam(`role/${SSO_ROLE}`),
      kind: 'role',
    });
  });

  it('keeps the partition of the signer', () => {
    expect(ownerOf(`arn:aws-us-gov:sts::${ACCT}:assumed-role/SharedRole/alice`, [])).toMatchObject({
      owner: `arn:aws-us-gov:iam::${ACCT}:role/SharedRole`,
    });
  });

  it.each([
    ['a federated user', sts('federated-user/alice'), 'federated user'],
    ['a bare role ARN', iam('role/SharedRole'), 'only IAM users'],
    ['a group', iam('group/staff'), 'only IAM users'],
    ['an assumed role without a session', sts('assumed-role/SharedRole'), 'not an IAM user or role session'],
    ['a session with a slash', sts('assumed-role/SharedRole/alice/x'), 'not an IAM user or role session'],
    ['a service ARN', 'arn:aws:lambda:us-east-1:123456789012:function:f', 'not an IAM principal ARN'],
    ['nothing', '', 'not an IAM principal ARN'],
  ])('refuses %s', (_what, arn, reason) => {
    const result = ownerOf(arn, DEFAULT_SESSION_OWNED_ROLES);
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.reason).toContain(reason);
  });
});

describe('adminOwnerOf', () => {
  it('keeps user and root ARNs, and drops a role ARN’s path', () => {
    expect(adminOwnerOf(iam('user/annex-admin'), [])).toBe(iam('user/annex-admin'));
    expect(adminOwnerOf(iam('root'), [])).toBe(iam('root'));
    expect(adminOwnerOf(iam('role/ops/AnnexAdmin'), [])).toBe(iam('role/AnnexAdmin'));
  });

  it('keeps a session ARN only for a role owned per session', () => {
    expect(adminOwnerOf(sts(`assumed-role/${SSO_ROLE}/carol`), DEFAULT_SESSION_OWNED_ROLES)).toBe(
      sts(`assumed-role/${SSO_ROLE}/carol`),
    );
    expect(adminOwnerOf(sts('assumed-role/SharedRole/carol'), DEFAULT_SESSION_OWNED_ROLES)).toBeUndefined();
  });

  it('refuses a federated user and anything unrecognised', () => {
    expect(adminOwnerOf(sts('federated-user/carol'), [])).toBeUndefined();
    expect(adminOwnerOf('carol', [])).toBeUndefined();
  });
});

describe('callerOf', () => {
  const rules = { adminArns: [iam('role/AnnexAdmin')], sessionOwnedRoles: DEFAULT_SESSION_OWNED_ROLES };

  it('carries the owner as principalArn and the signed ARN as sessionArn', () => {
    expect(callerOf(sts('assumed-role/SharedRole/alice'), rules)).toEqual({
      principalArn: iam('role/SharedRole'),
      sessionArn: sts('assumed-role/SharedRole/alice'),
      admin: false,
    });
  });

  it('makes every session of a configured admin role an admin', () => {
    expect(callerOf(sts('assumed-role/AnnexAdmin/carol'), rules)).toMatchObject({ admin: true });
    expect(callerOf(sts('assumed-role/AnnexAdmin/dave'), rules)).toMatchObject({ admin: true });
  });

  it('throws Forbidden for a refused signer', () => {
    expect(() => callerOf(sts('federated-user/alice'), rules)).toThrow(
      expect.objectContaining({ code: 'Forbidden' }),
    );
  });
});

describe('mappedCallerOf', () => {
  const rules = { adminArns: [iam('user/annex-admin')], sessionOwnedRoles: DEFAULT_SESSION_OWNED_ROLES };

  it('applies the owner rule to a Slack mapping and has no signed session', () => {
    expect(mappedCallerOf(sts('assumed-role/SharedRole/alice'), rules)).toEqual({
      principalArn: iam('role/SharedRole'),
      admin: false,
    });
    expect(mappedCallerOf(iam('user/annex-admin'), rules)).toEqual({
      principalArn: iam('user/annex-admin'),
      admin: true,
    });
  });

  it('is undefined for a mapping the rule refuses', () => {
    expect(mappedCallerOf(sts('federated-user/alice'), rules)).toBeUndefined();
  });
});

describe('SIGNER_ARN_PATTERN', () => {
  it.each([
    ['arn:aws:iam::123456789012:user/alice', true],
    ['arn:aws:iam::123456789012:user/team/hpc/alice', true],
    ['arn:aws:iam::123456789012:root', true],
    ['arn:aws-us-gov:sts::123456789012:assumed-role/AWSReservedSSO_Dev_0123/alice@example.org', true],
    ['arn:aws:sts::123456789012:assumed-role/Builders/ci', true],
    ['arn:aws:sts::123456789012:federated-user/alice', false],
    ['arn:aws:iam::123456789012:role/Builders', false],
    ['arn:aws:iam::123456789012:group/admins', false],
    ['arn:aws:sts::123456789012:assumed-role/Builders/x', false],
  ])('states in one pattern what the owner rule accepts as a signer: %s → %s', (arn, accepted) => {
    expect(SIGNER_ARN_PATTERN.test(arn)).toBe(accepted);
    expect(ownerOf(arn, []).ok).toBe(accepted);
  });
});
