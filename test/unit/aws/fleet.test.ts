// Exact call shapes of fleet launches (aws-sdk-client-mock): the per-annex launch template, the
// instant CreateFleet and how its answer (instances and Errors) is read, and template clean-up.
import {
  CreateFleetCommand,
  CreateLaunchTemplateCommand,
  DeleteLaunchTemplateCommand,
  DescribeLaunchTemplatesCommand,
  EC2Client,
  RunInstancesCommand,
  type CreateFleetCommandInput,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { Ec2Compute, TAG } from '../../../shared/aws/ec2.ts';
import { AnnexError } from '../../../shared/domain/errors.ts';
import type { LaunchRequest } from '../../../shared/domain/ports.ts';
import { useMockedRegion, MOCKED_CLIENT_CONFIG, ec2Error } from '../../support/aws-mocks.ts';

const USER_DATA = '#!/bin/bash\necho "héllo" > /tmp/x\n';

const request = (
  spec: Partial<LaunchRequest['spec']> = {},
  over: Partial<LaunchRequest> = {},
): LaunchRequest => ({
  annexId: 'ax-0123456789abcdef0123',
  annexName: 'cheap',
  owner: 'arn:aws:iam::123456789012:user/alice',
  stage: 'test',
  batch: 2,
  count: 3,
  expiresAt: '2030-01-01T01:00:00.000Z',
  instanceProfileArn: 'arn:aws:iam::123456789012:instance-profile/annex-test',
  ...over,
  spec: {
    market: 'spot',
    instanceTypes: ['m5.large', 'm5a.large', 'm6i.large'],
    imageId: 'ami-0123456789abcdef0',
    subnetIds: ['subnet-11111111', 'subnet-22222222'],
    securityGroupIds: ['sg-22222222'],
    keyName: 'alice',
    userData: USER_DATA,
    tags: { project: 'htc' },
    ...spec,
  },
});

const ec2Mock = mockClient(EC2Client);
const fleetInput = (): CreateFleetCommandInput => {
  const call = ec2Mock.commandCalls(CreateFleetCommand)[0];
  if (call === undefined) throw new Error('no CreateFleet');
  return call.args[0].input;
};

describe('Ec2Compute fleet launches', () => {
  let compute: Ec2Compute;

  useMockedRegion();

  beforeEach(() => {
    ec2Mock.reset();
    ec2Mock.on(CreateLaunchTemplateCommand).resolves({});
    ec2Mock.on(CreateFleetCommand).resolves({
      FleetId: 'fleet-1',
      Instances: [
        {
          InstanceIds: ['i-0aaa', 'i-0bbb'],
          InstanceType: 'm5a.large',
          Lifecycle: 'spot',
          LaunchTemplateAndOverrides: {
            Overrides: { InstanceType: 'm5a.large', SubnetId: 'subnet-22222222' },
          },
        },
        { InstanceIds: ['i-0ccc'], InstanceType: 'm5.large', Lifecycle: 'on-demand' },
      ],
      Errors: [],
    });
    compute = new Ec2Compute(new EC2Client(MOCKED_CLIENT_CONFIG), 'test');
  });

  it('creates the annex’s launch template: image, network, key, user data byte for byte, IMDSv2, terminate, role, tags', async () => {
    // Act
    await compute.launch(request());

    // Assess
    expect(ec2Mock).toHaveReceivedCommandOnce(CreateLaunchTemplateCommand);
    const input = ec2Mock.commandCalls(CreateLaunchTemplateCommand)[0]?.args[0].input;
    const annexTags = [
      { Key: 'project', Value: 'htc' },
      { Key: TAG.id, Value: 'ax-0123456789abcdef0123' },
      { Key: TAG.name, Value: 'cheap' },
      { Key: TAG.owner, Value: 'arn:aws:iam::123456789012:user/alice' },
      { Key: TAG.stage, Value: 'test' },
    ];
    expect(input).toEqual({
      LaunchTemplateName: 'annex-test-ax-0123456789abcdef0123',
      VersionDescription: 'annex cheap',
      LaunchTemplateData: {
        ImageId: 'ami-0123456789abcdef0',
        SecurityGroupIds: ['sg-22222222'],
        KeyName: 'alice',
        UserData: Buffer.from(USER_DATA, 'utf8').toString('base64'),
        IamInstanceProfile: { Arn: 'arn:aws:iam::123456789012:instance-profile/annex-test' },
        InstanceInitiatedShutdownBehavior: 'terminate',
        MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled', HttpPutResponseHopLimit: 1 },
        TagSpecifications: [{ ResourceType: 'volume', Tags: annexTags }],
      },
      TagSpecifications: [{ ResourceType: 'launch-template', Tags: annexTags }],
    });
    expect(Buffer.from(input?.LaunchTemplateData?.UserData ?? '', 'base64').toString('utf8')).toBe(USER_DATA);
  });

  it('launches one instant fleet with the batch’s client token, every type × subnet, price-capacity-optimized', async () => {
    // Act
    await compute.launch(request());

    // Assess
    expect(ec2Mock).not.toHaveReceivedCommand(RunInstancesCommand);
    const input = fleetInput();
    expect(input).toMatchObject({
      Type: 'instant',
      ClientToken: 'ax-0123456789abcdef0123-b2-a0',
      LaunchTemplateConfigs: [
        {
          LaunchTemplateSpecification: {
            LaunchTemplateName: 'annex-test-ax-0123456789abcdef0123',
            Version: '$Latest',
          },
        },
      ],
      TargetCapacitySpecification: {
        TotalTargetCapacity: 3,
        OnDemandTargetCapacity: 0,
        SpotTargetCapacity: 3,
        DefaultTargetCapacityType: 'spot',
      },
      SpotOptions: {
        AllocationStrategy: 'price-capacity-optimized',
        InstanceInterruptionBehavior: 'terminate',
      },
    });
    expect(input.LaunchTemplateConfigs?.[0]?.Overrides).toEqual([
      { InstanceType: 'm5.large', SubnetId: 'subnet-11111111' },
      { InstanceType: 'm5.large', SubnetId: 'subnet-22222222' },
      { InstanceType: 'm5a.large', SubnetId: 'subnet-11111111' },
      { InstanceType: 'm5a.large', SubnetId: 'subnet-22222222' },
      { InstanceType: 'm6i.large', SubnetId: 'subnet-11111111' },
      { InstanceType: 'm6i.large', SubnetId: 'subnet-22222222' },
    ]);
  });

  it('tags the fleet and its instances with the annex, its expiry and the batch', async () => {
    // Act
    await compute.launch(request());

    // Assess
    const tags = [
      { Key: 'Name', Value: 'annex-cheap' },
      { Key: 'project', Value: 'htc' },
      { Key: TAG.id, Value: 'ax-0123456789abcdef0123' },
      { Key: TAG.name, Value: 'cheap' },
      { Key: TAG.owner, Value: 'arn:aws:iam::123456789012:user/alice' },
      { Key: TAG.stage, Value: 'test' },
      { Key: TAG.expiresAt, Value: '2030-01-01T01:00:00.000Z' },
      { Key: TAG.batch, Value: '2' },
    ];
    expect(fleetInput().TagSpecifications).toEqual([
      { ResourceType: 'fleet', Tags: tags },
      { ResourceType: 'instance', Tags: tags },
    ]);
  });

  it('sends the chosen strategy and max price; a mixed batch asks for its on-demand base', async () => {
    // Act
    await compute.launch(
      request({
        market: 'mixed',
        onDemandBaseCount: 1,
        allocationStrategy: 'lowest-price',
        maxPrice: '0.05',
      }),
    );

    // Assess
    const input = fleetInput();
    expect(input.SpotOptions?.AllocationStrategy).toBe('lowest-price');
    expect(input.OnDemandOptions).toEqual({ AllocationStrategy: 'lowest-price' });
    expect(input.TargetCapacitySpecification).toEqual({
      TotalTargetCapacity: 3,
      OnDemandTargetCapacity: 1,
      SpotTargetCapacity: 2,
      DefaultTargetCapacityType: 'spot',
    });
    expect(input.LaunchTemplateConfigs?.[0]?.Overrides?.every((o) => o.MaxPrice === '0.05')).toBe(true);
  });

  it('turns hardware needs into InstanceRequirements overrides (no types), one per subnet', async () => {
    // Act
    await compute.launch(
      request({
        market: 'on-demand',
        instanceTypes: [],
        instanceRequirements: {
          vCpus: { min: 4, max: 8 },
          memoryMiB: { min: 16384 },
          gpus: { min: 1, max: 2 },
          gpuManufacturers: ['nvidia'],
          excludedInstanceTypes: ['p2.*'],
        },
      }),
    );

    // Assess
    const input = fleetInput();
    expect(input.SpotOptions).toBeUndefined();
    expect(input.TargetCapacitySpecification?.DefaultTargetCapacityType).toBe('on-demand');
    expect(input.LaunchTemplateConfigs?.[0]?.Overrides).toEqual(
      ['subnet-11111111', 'subnet-22222222'].map((SubnetId) => ({
        SubnetId,
        InstanceRequirements: {
          VCpuCount: { Min: 4, Max: 8 },
          MemoryMiB: { Min: 16384 },
          AcceleratorCount: { Min: 1, Max: 2 },
          AcceleratorTypes: ['gpu'],
          AcceleratorManufacturers: ['nvidia'],
          ExcludedInstanceTypes: ['p2.*'],
        },
      })),
    );
  });

  it('launches into zones when the annex names zones instead of subnets', async () => {
    // Act
    await compute.launch(
      request({ subnetIds: [], availabilityZones: ['us-west-2a'], instanceTypes: ['c5.large'] }),
    );

    // Assess
    expect(fleetInput().LaunchTemplateConfigs?.[0]?.Overrides).toEqual([
      { InstanceType: 'c5.large', AvailabilityZone: 'us-west-2a' },
    ]);
  });

  it('returns the fleet’s instances with their market and placement, and its errors', async () => {
    // Prepare
    ec2Mock.on(CreateFleetCommand).resolves({
      Instances: [
        {
          InstanceIds: ['i-0aaa'],
          InstanceType: 'm5a.large',
          Lifecycle: 'spot',
          LaunchTemplateAndOverrides: {
            Overrides: { InstanceType: 'm5a.large', SubnetId: 'subnet-22222222' },
          },
        },
      ],
      Errors: [
        {
          ErrorCode: 'InsufficientInstanceCapacity',
          ErrorMessage: 'no m5.large',
          Lifecycle: 'spot',
          LaunchTemplateAndOverrides: {
            Overrides: { InstanceType: 'm5.large', SubnetId: 'subnet-11111111' },
          },
        },
        { ErrorCode: 'MaxSpotInstanceCountExceeded', ErrorMessage: 'max spot', Lifecycle: 'spot' },
      ],
    });

    // Act
    const result = await compute.launch(request());

    // Assess
    expect(result.instances).toEqual([
      {
        instanceId: 'i-0aaa',
        instanceType: 'm5a.large',
        market: 'spot',
        state: 'pending',
        batch: 2,
        launchedAt: expect.any(String),
        subnetId: 'subnet-22222222',
      },
    ]);
    expect(result.fleetErrors).toEqual([
      {
        code: 'InsufficientInstanceCapacity',
        message: 'no m5.large',
        market: 'spot',
        instanceType: 'm5.large',
        subnetId: 'subnet-11111111',
      },
      { code: 'MaxSpotInstanceCountExceeded', message: 'max spot', market: 'spot' },
    ]);
  });

  it('uses the existing template when an earlier batch or attempt created it', async () => {
    // Prepare
    ec2Mock
      .on(CreateLaunchTemplateCommand)
      .rejects(ec2Error('InvalidLaunchTemplateName.AlreadyExistsException'));

    // Act
    const result = await compute.launch(request());

    // Assess
    expect(ec2Mock).toHaveReceivedCommandOnce(CreateFleetCommand);
    expect(result.instances).toHaveLength(3);
  });

  it('a fleet that launched nothing is a definite refusal: LimitExceeded for capacity', async () => {
    // Prepare
    ec2Mock.on(CreateFleetCommand).resolves({
      Instances: [],
      Errors: [{ ErrorCode: 'InsufficientInstanceCapacity', ErrorMessage: 'none' }],
    });

    // Act / Assess
    await expect(compute.launch(request())).rejects.toMatchObject({ code: 'LimitExceeded' });
  });

  it('a fleet that launched nothing for a bad parameter names the field', async () => {
    // Prepare
    ec2Mock.on(CreateFleetCommand).resolves({
      Errors: [{ ErrorCode: 'InvalidParameterValue', ErrorMessage: 'bad' }],
    });

    // Act
    const e = await compute.launch(request()).catch((err: unknown) => err);

    // Assess
    expect(e).toBeInstanceOf(AnnexError);
    expect(e).toMatchObject({ code: 'ValidationError', field: 'request' });
  });

  it('translates a refused CreateFleet call like RunInstances (throttling → 503)', async () => {
    // Prepare
    ec2Mock.on(CreateFleetCommand).rejects(ec2Error('RequestLimitExceeded'));

    // Act / Assess
    await expect(compute.launch(request())).rejects.toMatchObject({ code: 'UpstreamUnavailable' });
  });

  it('deletes the annex’s template by name; a missing one counts as deleted', async () => {
    // Prepare
    ec2Mock.on(DeleteLaunchTemplateCommand).rejects(ec2Error('InvalidLaunchTemplateName.NotFoundException'));

    // Act
    await compute.deleteLaunchTemplate('ax-1');

    // Assess
    expect(ec2Mock).toHaveReceivedCommandWith(DeleteLaunchTemplateCommand, {
      LaunchTemplateName: 'annex-test-ax-1',
    });
  });

  it('lists the stage’s templates by tag with their annex ids', async () => {
    // Prepare
    ec2Mock
      .on(DescribeLaunchTemplatesCommand)
      .resolvesOnce({
        LaunchTemplates: [
          {
            LaunchTemplateName: 'annex-test-ax-1',
            CreateTime: new Date('2030-01-01T00:00:00Z'),
            Tags: [{ Key: TAG.id, Value: 'ax-1' }],
          },
          { LaunchTemplateName: 'someone-elses', Tags: [] },
        ],
        NextToken: 'n',
      })
      .resolvesOnce({
        LaunchTemplates: [{ LaunchTemplateName: 'annex-test-ax-2', Tags: [{ Key: TAG.id, Value: 'ax-2' }] }],
      });

    // Act
    const templates = await compute.listLaunchTemplates();

    // Assess
    expect(templates).toEqual([
      { annexId: 'ax-1', createdAt: '2030-01-01T00:00:00.000Z' },
      { annexId: 'ax-2' },
    ]);
    expect(ec2Mock).toHaveReceivedCommandWith(DescribeLaunchTemplatesCommand, {
      Filters: [{ Name: `tag:${TAG.stage}`, Values: ['test'] }],
    });
  });
});
