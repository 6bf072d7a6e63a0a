import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AnnexError } from '../../../shared/domain/errors.ts';
import { translateSpotFleetConfig } from '../../../shared/domain/spot-fleet-config.ts';

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../../fixtures/spot-fleet/${name}`, import.meta.url), 'utf8'));

const refusedField = (config: unknown): string | undefined => {
  try {
    translateSpotFleetConfig(config);
  } catch (e) {
    expect(e).toBeInstanceOf(AnnexError);
    expect((e as AnnexError).code).toBe('ValidationError');
    return (e as AnnexError).field;
  }
  throw new Error('the config was translated');
};

const minimal = (spec: Record<string, unknown> = {}, top: Record<string, unknown> = {}) => ({
  TargetCapacity: 2,
  LaunchSpecifications: [{ ImageId: 'ami-1a2b3c4d', InstanceType: 'm5.large', ...spec }],
  ...top,
});

describe('translateSpotFleetConfig: the AWS documentation’s examples', () => {
  it('diversified over three instance types in one subnet, with a max price', () => {
    expect(translateSpotFleetConfig(fixture('diversified.json'))).toEqual({
      market: 'spot',
      count: 30,
      instanceTypes: ['c4.2xlarge', 'm3.2xlarge', 'r3.2xlarge'],
      allocationStrategy: 'diversified',
      maxPrice: '0.70',
      imageId: 'ami-1a2b3c4d',
      subnetIds: ['subnet-1a2b3c4d'],
    });
  });

  it('lowest price over a comma-separated list of subnets, with key pair and security group', () => {
    expect(translateSpotFleetConfig(fixture('lowest-price-subnets.json'))).toEqual({
      market: 'spot',
      count: 20,
      instanceTypes: ['m3.medium'],
      // Spot Fleet's default strategy, kept: the config asked for nothing else.
      allocationStrategy: 'lowest-price',
      imageId: 'ami-1a2b3c4d',
      subnetIds: ['subnet-1a2b3c4d', 'subnet-3c4d5e6f'],
      securityGroupIds: ['sg-1a2b3c4d'],
      keyName: 'my-key-pair',
    });
  });

  it('capacity-optimized from a launch template’s overrides, wrapped in SpotFleetRequestConfig', () => {
    expect(translateSpotFleetConfig(fixture('capacity-optimized-launch-template.json'))).toEqual({
      market: 'spot',
      count: 50,
      instanceTypes: ['r4.2xlarge', 'm4.2xlarge', 'c5.2xlarge'],
      allocationStrategy: 'capacity-optimized',
      availabilityZones: ['us-west-2a', 'us-west-2b'],
    });
  });
});

describe('translateSpotFleetConfig: what else it takes', () => {
  it('an on-demand part makes the annex mixed with that base', () => {
    expect(
      translateSpotFleetConfig(minimal({}, { TargetCapacity: 5, OnDemandTargetCapacity: 2 })),
    ).toMatchObject({ market: 'mixed', count: 5, onDemandBaseCount: 2 });
  });

  it('decodes base64 user data to the bytes the user wrote', () => {
    const userData = '#!/bin/bash\necho "héllo"\n';
    expect(
      translateSpotFleetConfig(minimal({ UserData: Buffer.from(userData).toString('base64') })).userData,
    ).toBe(userData);
  });

  it('takes instance tags and hardware needs', () => {
    const out = translateSpotFleetConfig({
      TargetCapacity: '4',
      AllocationStrategy: 'priceCapacityOptimized',
      LaunchSpecifications: [
        {
          ImageId: 'ami-1a2b3c4d',
          InstanceRequirements: {
            VCpuCount: { Min: 4, Max: 16 },
            MemoryMiB: { Min: 8192 },
            AcceleratorCount: { Min: 1 },
            AcceleratorTypes: ['gpu'],
          },
          TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'project', Value: 'ligo' }] }],
        },
      ],
    });
    expect(out).toMatchObject({
      count: 4,
      allocationStrategy: 'price-capacity-optimized',
      instanceTypes: [],
      instanceRequirements: { vCpus: { min: 4, max: 16 }, memoryMiB: { min: 8192 }, gpus: { min: 1 } },
      tags: { project: 'ligo' },
    });
  });
});

describe('translateSpotFleetConfig: refusals name the field', () => {
  it.each([
    [
      'block device mappings',
      minimal({ BlockDeviceMappings: [] }),
      'spotFleetConfig.LaunchSpecifications[0].BlockDeviceMappings',
    ],
    [
      'network interfaces',
      minimal({ NetworkInterfaces: [] }),
      'spotFleetConfig.LaunchSpecifications[0].NetworkInterfaces',
    ],
    [
      'a weight other than 1',
      minimal({ WeightedCapacity: 2 }),
      'spotFleetConfig.LaunchSpecifications[0].WeightedCapacity',
    ],
    [
      'a security group by name',
      minimal({ SecurityGroups: [{ GroupName: 'default' }] }),
      'spotFleetConfig.LaunchSpecifications[0].SecurityGroups[0].GroupName',
    ],
    [
      'no target capacity',
      { LaunchSpecifications: minimal().LaunchSpecifications },
      'spotFleetConfig.TargetCapacity',
    ],
    [
      'an unknown strategy',
      minimal({}, { AllocationStrategy: 'capacityOptimizedPrioritized' }),
      'spotFleetConfig.AllocationStrategy',
    ],
    ['a validity window', minimal({}, { ValidUntil: '2030-01-01T00:00:00Z' }), 'spotFleetConfig.ValidUntil'],
    ['a spend cap', minimal({}, { SpotMaxTotalPrice: '10' }), 'spotFleetConfig.SpotMaxTotalPrice'],
    [
      'capacity in vCPUs',
      minimal({}, { TargetCapacityUnitType: 'vcpu' }),
      'spotFleetConfig.TargetCapacityUnitType',
    ],
    [
      'a stop on interruption',
      minimal({}, { InstanceInterruptionBehavior: 'stop' }),
      'spotFleetConfig.InstanceInterruptionBehavior',
    ],
    [
      'reserved tag keys',
      minimal({ TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'annex:id', Value: 'x' }] }] }),
      'spotFleetConfig.LaunchSpecifications[0].TagSpecifications[0].Tags[0].Key',
    ],
    [
      'two images',
      {
        TargetCapacity: 1,
        LaunchSpecifications: [
          { ImageId: 'ami-1a2b3c4d', InstanceType: 'm5.large' },
          { ImageId: 'ami-5e6f7a8b', InstanceType: 'c5.large' },
        ],
      },
      'spotFleetConfig.LaunchSpecifications[1].ImageId',
    ],
    [
      'a launch template without overrides',
      {
        TargetCapacity: 1,
        LaunchTemplateConfigs: [{ LaunchTemplateSpecification: { LaunchTemplateName: 'lt' } }],
      },
      'spotFleetConfig.LaunchTemplateConfigs[0].Overrides',
    ],
    [
      'a tag value too long',
      minimal(
        {},
        {
          TagSpecifications: [
            { ResourceType: 'spot-fleet-request', Tags: [{ Key: 'k', Value: 'v'.repeat(257) }] },
          ],
        },
      ),
      'spotFleetConfig.TagSpecifications[0].Tags[0].Value',
    ],
    ['nothing to launch', { TargetCapacity: 1 }, 'spotFleetConfig.LaunchSpecifications'],
    ['a non-object', 'ami-1a2b3c4d', 'spotFleetConfig'],
  ])('%s', (_, config, field) => {
    expect(refusedField(config)).toBe(field);
  });
});
