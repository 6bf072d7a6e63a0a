import { describe, expect, it } from 'vitest';
import { AnnexError } from '../../../shared/domain/errors.ts';
import {
  checkCreate,
  checkHardware,
  checkLease,
  defaultPolicy,
  resolvePolicy,
  typeMatches,
  type CreateCheck,
} from '../../../shared/domain/launch-policy.ts';
import type { Caller, LaunchPolicy } from '../../../shared/domain/model.ts';
import type { LaunchSettings, Settings } from '../../../shared/domain/ports.ts';

const launch: LaunchSettings = {
  defaultImageId: 'ami-0aaaaaaaaaaaaaaaa',
  defaultSubnetIds: ['subnet-0aaaaaaaaaaaaaaaa'],
  defaultSecurityGroupIds: ['sg-0aaaaaaaaaaaaaaaa'],
};
const settings: Settings = {
  stage: 'test',
  maxDurationSeconds: 7 * 86400,
  maxInstancesPerAnnex: 10,
};
const admin: Caller = { principalArn: 'arn:aws:iam::123456789012:user/admin', admin: true };
const alice: Caller = { principalArn: 'arn:aws:iam::123456789012:user/alice', admin: false };
const pool = { name: 'gpu' };

const request = (over: Partial<CreateCheck> = {}): CreateCheck => ({
  imageId: 'ami-0aaaaaaaaaaaaaaaa',
  subnetIds: ['subnet-0aaaaaaaaaaaaaaaa'],
  securityGroupIds: ['sg-0aaaaaaaaaaaaaaaa'],
  instanceTypes: ['m5.large'],
  leaseSeconds: 3600,
  ...over,
});

const refusal = (f: () => void): { code: string; field?: string; message: string } => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(AnnexError);
    const err = e as AnnexError;
    return { code: err.code, message: err.message, ...(err.field === undefined ? {} : { field: err.field }) };
  }
  throw new Error('expected a refusal');
};

describe('defaultPolicy', () => {
  it("allows a shared pool's users only the stack's image, network, and none of their own image, user data or key", () => {
    // Prepare / Act
    const policy = defaultPolicy('shared', launch, settings);
    // Assess
    expect(policy).toMatchObject({
      allowedImageIds: ['ami-0aaaaaaaaaaaaaaaa'],
      allowedSubnetIds: ['subnet-0aaaaaaaaaaaaaaaa'],
      allowedSecurityGroupIds: ['sg-0aaaaaaaaaaaaaaaa'],
      allowUserImage: false,
      allowUserData: false,
      allowKeyPair: false,
      maxLeaseSeconds: 7 * 86400,
    });
  });

  it("allows a private pool's owner their own image, user data and key pair", () => {
    expect(defaultPolicy('private', launch, settings)).toMatchObject({
      allowUserImage: true,
      allowUserData: true,
      allowKeyPair: true,
    });
  });
});

describe('resolvePolicy', () => {
  it('takes the registration over the defaults; a null quota is no limit', () => {
    const policy = resolvePolicy(
      admin,
      'shared',
      { allowUserData: true, quota: { maxVCpus: null, maxInstances: 4 } },
      launch,
      settings,
    );
    expect(policy.allowUserData).toBe(true);
    expect(policy.allowKeyPair).toBe(false);
    expect(policy.quota.maxInstances).toBe(4);
    expect(policy.quota).not.toHaveProperty('maxVCpus');
  });

  it("refuses a user who opens their private pool to subnets or security groups beyond the stack's", () => {
    expect(
      refusal(() =>
        resolvePolicy(alice, 'private', { allowedSubnetIds: ['subnet-0bbbbbbbbbbbbbbbb'] }, launch, settings),
      ),
    ).toMatchObject({ code: 'Forbidden', field: 'policy.allowedSubnetIds' });
    expect(
      refusal(() =>
        resolvePolicy(
          alice,
          'private',
          { allowedSecurityGroupIds: ['sg-0bbbbbbbbbbbbbbbb'] },
          launch,
          settings,
        ),
      ),
    ).toMatchObject({ code: 'Forbidden', field: 'policy.allowedSecurityGroupIds' });
  });

  it("lets an admin open a pool to other subnets among the stack's launch subnets", () => {
    const policy = resolvePolicy(
      admin,
      'shared',
      { allowedSubnetIds: ['subnet-0bbbbbbbbbbbbbbbb'] },
      { ...launch, launchSubnetIds: ['subnet-0aaaaaaaaaaaaaaaa', 'subnet-0bbbbbbbbbbbbbbbb'] },
      settings,
    );
    expect(policy.allowedSubnetIds).toEqual(['subnet-0bbbbbbbbbbbbbbbb']);
  });

  it("refuses even an admin a subnet or security group the stack's launch roles may not use", () => {
    const stack = { ...launch, launchSubnetIds: ['subnet-0aaaaaaaaaaaaaaaa', 'subnet-0bbbbbbbbbbbbbbbb'] };
    const subnet = refusal(() =>
      resolvePolicy(admin, 'shared', { allowedSubnetIds: ['subnet-0cccccccccccccccc'] }, stack, settings),
    );
    expect(subnet).toMatchObject({ code: 'Forbidden', field: 'policy.allowedSubnetIds' });
    expect(subnet.message).toContain('subnet-0cccccccccccccccc');
    expect(
      refusal(() =>
        resolvePolicy(
          admin,
          'shared',
          { allowedSecurityGroupIds: ['sg-0bbbbbbbbbbbbbbbb'] },
          launch,
          settings,
        ),
      ),
    ).toMatchObject({ code: 'Forbidden', field: 'policy.allowedSecurityGroupIds' });
  });

  it("refuses a longest lease beyond the stack's with 422", () => {
    expect(
      refusal(() => resolvePolicy(admin, 'shared', { maxLeaseSeconds: 8 * 86400 }, launch, settings)),
    ).toMatchObject({ code: 'LimitExceeded', field: 'policy.maxLeaseSeconds' });
  });
});

describe('checkCreate on a shared pool with the default policy', () => {
  const policy: LaunchPolicy = defaultPolicy('shared', launch, settings);

  it('admits the stack defaults', () => {
    expect(() => checkCreate(pool, policy, request())).not.toThrow();
  });

  it.each([
    ['user data', { userData: '#!/bin/sh\n' }, 'userData'],
    ['a key pair', { keyName: 'mine' }, 'keyName'],
    ['an image of its own', { imageId: 'ami-0bbbbbbbbbbbbbbbb' }, 'imageId'],
    ['a foreign subnet', { subnetIds: ['subnet-0bbbbbbbbbbbbbbbb'] }, 'subnetIds'],
    [
      'zones instead of the subnets',
      { subnetIds: [], availabilityZones: ['us-east-1a'] },
      'availabilityZones',
    ],
    ['a foreign security group', { securityGroupIds: ['sg-0bbbbbbbbbbbbbbbb'] }, 'securityGroupIds'],
  ])('refuses %s with 403 naming the field', (_what, over, field) => {
    expect(refusal(() => checkCreate(pool, policy, request(over)))).toMatchObject({
      code: 'Forbidden',
      field,
    });
  });

  it('names the rule: the images the pool allows', () => {
    expect(
      refusal(() => checkCreate(pool, policy, request({ imageId: 'ami-0bbbbbbbbbbbbbbbb' }))).message,
    ).toBe('imageId: pool "gpu" allows only ami-0aaaaaaaaaaaaaaaa');
  });

  it('requires maxSpend when the pool says so', () => {
    const strict = { ...policy, requireMaxSpend: true };
    expect(refusal(() => checkCreate(pool, strict, request()))).toMatchObject({
      code: 'Forbidden',
      field: 'maxSpend',
    });
    expect(() => checkCreate(pool, strict, request({ maxSpend: 10 }))).not.toThrow();
  });
});

describe('checkHardware', () => {
  const policy: LaunchPolicy = {
    ...defaultPolicy('shared', launch, settings),
    allowedInstanceTypes: ['g5.*', 'm5.large'],
    maxVCpusPerInstance: 8,
    maxGpusPerInstance: 1,
  };

  it('matches patterns: g5.* covers g5.xlarge, not g4dn.xlarge', () => {
    expect(typeMatches('g5.*', 'g5.xlarge')).toBe(true);
    expect(typeMatches('g5.*', 'g4dn.xlarge')).toBe(false);
    expect(typeMatches('m5.large', 'm5.large')).toBe(true);
    expect(typeMatches('m5.large', 'm5.xlarge')).toBe(false);
  });

  it('refuses a type outside the patterns with 403', () => {
    expect(refusal(() => checkHardware(pool, policy, ['p3.2xlarge'], undefined))).toMatchObject({
      code: 'Forbidden',
      field: 'instanceTypes',
    });
  });

  it('refuses a type over the vCPU or GPU limit with 422', () => {
    expect(refusal(() => checkHardware(pool, policy, ['g5.12xlarge'], undefined))).toMatchObject({
      code: 'LimitExceeded',
      field: 'instanceTypes',
    });
    expect(() => checkHardware(pool, policy, ['g5.2xlarge'], undefined)).not.toThrow();
  });

  it('requires hardware needs to name their types and bound their vCPUs and GPUs', () => {
    const needs = { vCpus: { min: 2, max: 8 }, memoryMiB: { min: 1024 }, gpus: { max: 1 } };
    expect(refusal(() => checkHardware(pool, policy, [], needs))).toMatchObject({
      field: 'instanceRequirements.allowedInstanceTypes',
    });
    expect(() => checkHardware(pool, policy, [], { ...needs, allowedInstanceTypes: ['g5.*'] })).not.toThrow();
    expect(
      refusal(() =>
        checkHardware(pool, policy, [], { ...needs, vCpus: { min: 2 }, allowedInstanceTypes: ['g5.*'] }),
      ),
    ).toMatchObject({ code: 'LimitExceeded', field: 'instanceRequirements.vCpus.max' });
  });
});

describe('checkLease', () => {
  const policy = {
    ...defaultPolicy('shared', launch, settings),
    maxLeaseSeconds: 7200,
    maxLifetimeSeconds: 10_800,
  };

  it('refuses a lease over the longest lease, and a life over the longest lifetime, with 422', () => {
    expect(refusal(() => checkLease(pool, policy, 7201, 7201, 'durationSeconds'))).toMatchObject({
      code: 'LimitExceeded',
      field: 'durationSeconds',
    });
    expect(refusal(() => checkLease(pool, policy, 3600, 10_801, 'expiresAt'))).toMatchObject({
      code: 'LimitExceeded',
      field: 'expiresAt',
    });
    expect(() => checkLease(pool, policy, 7200, 10_800, 'durationSeconds')).not.toThrow();
  });
});
