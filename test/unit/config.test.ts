import { describe, expect, it } from 'vitest';
import { ConfigError, identityRules, launchSettings, priceOverrides, settings } from '../../shared/config.ts';

const GOOD_ENV = {
  ANNEX_STAGE: 'dev-1',
  ANNEX_TABLE_NAME: 'annex-dev-1-leases',
  ANNEX_ADMIN_ARNS: ' arn:aws:iam::123456789012:role/admin , arn:aws:iam::123456789012:user/root,, ',
  ANNEX_MAX_DURATION_SECONDS: '86400',
  ANNEX_MAX_INSTANCES_PER_ANNEX: '20',
};

const failureOf = (act: () => unknown): unknown => {
  try {
    act();
  } catch (e) {
    return e;
  }
  throw new Error('expected a failure');
};

describe('settings', () => {
  it('reads a good environment', () => {
    // Act
    const value = settings({ ...GOOD_ENV });

    // Assess
    expect(value).toEqual({
      stage: 'dev-1',
      tableName: 'annex-dev-1-leases',
      maxDurationSeconds: 86400,
      maxInstancesPerAnnex: 20,
    });
  });

  it('falls back to the defaults for optional values', () => {
    // Act
    const value = settings({ ANNEX_STAGE: 'dev', ANNEX_TABLE_NAME: 'leases' });

    // Assess
    expect(value).toEqual({
      stage: 'dev',
      tableName: 'leases',
      maxDurationSeconds: 7 * 24 * 3600,
      maxInstancesPerAnnex: 50,
    });
  });

  it('fails with a ConfigError naming ANNEX_STAGE when it is missing', () => {
    // Prepare
    const { ANNEX_STAGE: _stage, ...env } = GOOD_ENV;

    // Act
    const error = failureOf(() => settings(env));

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('ANNEX_STAGE');
    expect((error as Error).message).not.toContain('ANNEX_TABLE_NAME');
  });

  it.each(['abc', '0', '-5', '1.5', ' '])(
    'fails with a ConfigError naming ANNEX_MAX_DURATION_SECONDS when it is %j',
    (bad) => {
      // Act
      const error = failureOf(() => settings({ ...GOOD_ENV, ANNEX_MAX_DURATION_SECONDS: bad }));

      // Assess
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toContain('ANNEX_MAX_DURATION_SECONDS');
    },
  );

  it('names every bad variable at once', () => {
    // Act
    const error = failureOf(() =>
      settings({ ...GOOD_ENV, ANNEX_STAGE: 'Has Spaces', ANNEX_MAX_INSTANCES_PER_ANNEX: 'many' }),
    );

    // Assess
    expect((error as Error).message).toContain('ANNEX_STAGE');
    expect((error as Error).message).toContain('ANNEX_MAX_INSTANCES_PER_ANNEX');
  });

  it('does not echo the bad value in the error', () => {
    // Act
    const error = failureOf(() => settings({ ...GOOD_ENV, ANNEX_TABLE_NAME: 'x' }));

    // Assess
    expect((error as Error).message).toContain('ANNEX_TABLE_NAME');
    expect((error as Error).message).not.toMatch(/\bx\b/);
  });
});

describe('launchSettings', () => {
  it('reads lists and leaves out empty optional values', () => {
    // Act
    const value = launchSettings({
      ANNEX_INSTANCE_PROFILE_ARN: '',
      ANNEX_DEFAULT_IMAGE_ID: 'ami-0123456789abcdef0',
      ANNEX_DEFAULT_SUBNET_IDS: 'subnet-1, subnet-2',
    });

    // Assess
    expect(value).toEqual({
      defaultImageId: 'ami-0123456789abcdef0',
      defaultSubnetIds: ['subnet-1', 'subnet-2'],
      defaultSecurityGroupIds: [],
    });
    expect(value).not.toHaveProperty('instanceProfileArn');
    expect(value).not.toHaveProperty('launchSubnetIds');
  });

  it("reads the stack's launch lists and refuses a default outside them, naming it", () => {
    // Act
    const value = launchSettings({
      ANNEX_DEFAULT_SUBNET_IDS: 'subnet-1',
      ANNEX_ALLOWED_SUBNET_IDS: 'subnet-1,subnet-2',
      ANNEX_ALLOWED_SECURITY_GROUP_IDS: 'sg-1',
    });

    // Assess
    expect(value.launchSubnetIds).toEqual(['subnet-1', 'subnet-2']);
    expect(value.launchSecurityGroupIds).toEqual(['sg-1']);
    expect(() =>
      launchSettings({ ANNEX_DEFAULT_SUBNET_IDS: 'subnet-3', ANNEX_ALLOWED_SUBNET_IDS: 'subnet-1' }),
    ).toThrow(/ANNEX_DEFAULT_SUBNET_IDS/);
    expect(() =>
      launchSettings({ ANNEX_DEFAULT_SECURITY_GROUP_IDS: 'sg-3', ANNEX_ALLOWED_SECURITY_GROUP_IDS: 'sg-1' }),
    ).toThrow(/ANNEX_DEFAULT_SECURITY_GROUP_IDS/);
  });
});

describe('priceOverrides', () => {
  it('reads on-demand prices laid over the bundled table, and none when unset', () => {
    expect(priceOverrides({ ANNEX_ON_DEMAND_PRICES: '{"m5.large":0.1,"p3.2xlarge":3.5}' })).toEqual({
      'm5.large': 0.1,
      'p3.2xlarge': 3.5,
    });
    expect(priceOverrides({})).toEqual({});
  });

  it.each(['{not json', '{"m5.large":-1}', '{"m5.large":"0.1"}', '{"not a type":0.1}', '[0.1]'])(
    'refuses %s, naming the variable',
    (value) => {
      expect(() => priceOverrides({ ANNEX_ON_DEMAND_PRICES: value })).toThrow(
        new ConfigError('invalid configuration: ANNEX_ON_DEMAND_PRICES'),
      );
    },
  );
});

describe('identityRules', () => {
  it('trusts only IAM Identity Center roles per session when ANNEX_SESSION_OWNED_ROLES is unset', () => {
    // Act
    const value = identityRules({ ANNEX_ADMIN_ARNS: 'arn:aws:iam::123456789012:user/root' });

    // Assess
    expect(value).toEqual({
      adminArns: ['arn:aws:iam::123456789012:user/root'],
      sessionOwnedRoles: ['AWSReservedSSO_*'],
    });
  });

  it('reads the configured roles, none when empty, and puts admins in owner form', () => {
    // Act
    const listed = identityRules({
      ANNEX_ADMIN_ARNS:
        'arn:aws:iam::123456789012:role/ops/admin, arn:aws:sts::123456789012:assumed-role/Okta/carol',
      ANNEX_SESSION_OWNED_ROLES: 'Okta, Idp-*',
    });
    const none = identityRules({ ANNEX_SESSION_OWNED_ROLES: '' });

    // Assess
    expect(listed).toEqual({
      adminArns: [
        'arn:aws:iam::123456789012:role/admin',
        'arn:aws:sts::123456789012:assumed-role/Okta/carol',
      ],
      sessionOwnedRoles: ['Okta', 'Idp-*'],
    });
    expect(none.sessionOwnedRoles).toEqual([]);
  });

  it('fails naming ANNEX_ADMIN_ARNS for a session of a role anyone assuming it could name', () => {
    // Act
    const error = failureOf(() =>
      identityRules({ ANNEX_ADMIN_ARNS: 'arn:aws:sts::123456789012:assumed-role/SharedRole/carol' }),
    );

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('ANNEX_ADMIN_ARNS');
  });

  it('fails naming ANNEX_SESSION_OWNED_ROLES for a value that is no role name', () => {
    // Act
    const error = failureOf(() => identityRules({ ANNEX_SESSION_OWNED_ROLES: 'role/Okta' }));

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('ANNEX_SESSION_OWNED_ROLES');
  });
});
