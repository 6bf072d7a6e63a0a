import {
  CreateTagsCommand,
  DescribeFleetsCommand,
  DescribeInstancesCommand,
  EC2Client,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { Ec2Compute, TAG, classifyEc2Error } from '../../../shared/aws/ec2.ts';
import { AnnexError } from '../../../shared/domain/errors.ts';
import { clientToken } from '../../../shared/domain/lease.ts';
import type { LaunchRequest } from '../../../shared/domain/ports.ts';
import { useMockedRegion, MOCKED_CLIENT_CONFIG, ec2Error } from '../../support/aws-mocks.ts';

const request = (overrides: Partial<LaunchRequest> = {}, spec: Partial<LaunchRequest['spec']> = {}) =>
  ({
    annexId: 'ax-0123456789abcdef0123',
    annexName: 'burst',
    owner: 'arn:aws:iam::123456789012:user/alice',
    stage: 'test',
    batch: 2,
    count: 3,
    expiresAt: '2030-01-01T01:00:00.000Z',
    instanceProfileArn: 'arn:aws:iam::123456789012:instance-profile/annex-test',
    ...overrides,
    spec: {
      market: 'on-demand',
      instanceTypes: ['m5.large', 'c5.large'],
      imageId: 'ami-0123456789abcdef0',
      subnetIds: ['subnet-11111111'],
      securityGroupIds: ['sg-22222222'],
      tags: { project: 'htc', team: 'physics' },
      ...spec,
    },
  }) satisfies LaunchRequest;

const ec2Mock = mockClient(EC2Client);

const runInputs = (): RunInstancesCommandInput[] =>
  ec2Mock.commandCalls(RunInstancesCommand).map((call) => call.args[0].input);

describe('Ec2Compute', () => {
  let compute: Ec2Compute;

  useMockedRegion();

  beforeEach(() => {
    ec2Mock.reset();
    compute = new Ec2Compute(new EC2Client(MOCKED_CLIENT_CONFIG), 'test');
  });

  describe('launch', () => {
    it('launches exactly `count` instances with a client token for the batch and attempt', async () => {
      // Prepare
      ec2Mock.on(RunInstancesCommand).resolves({ Instances: [] });

      // Act
      await compute.launch(request());

      // Assess
      expect(ec2Mock).toHaveReceivedCommandOnce(RunInstancesCommand);
      expect(ec2Mock).toHaveReceivedCommandWith(RunInstancesCommand, {
        ClientToken: 'ax-0123456789abcdef0123-b2-a0',
        MinCount: 3,
        MaxCount: 3,
        ImageId: 'ami-0123456789abcdef0',
        InstanceType: 'm5.large',
        SubnetId: 'subnet-11111111',
        SecurityGroupIds: ['sg-22222222'],
      });
    });

    it('terminates on shutdown, requires IMDSv2 and attaches the instance profile', async () => {
      // Prepare
      ec2Mock.on(RunInstancesCommand).resolves({ Instances: [] });

      // Act
      await compute.launch(request());

      // Assess
      expect(ec2Mock).toHaveReceivedCommandWith(RunInstancesCommand, {
        InstanceInitiatedShutdownBehavior: 'terminate',
        MetadataOptions: expect.objectContaining({ HttpTokens: 'required' }),
        IamInstanceProfile: { Arn: 'arn:aws:iam::123456789012:instance-profile/annex-test' },
      });
    });

    it('tags instances and volumes with the annex tags, a Name and the user tags', async () => {
      // Prepare
      ec2Mock.on(RunInstancesCommand).resolves({ Instances: [] });
      const expected = [
        { Key: 'project', Value: 'htc' },
        { Key: 'team', Value: 'physics' },
        { Key: 'Name', Value: 'annex-burst' },
        { Key: TAG.id, Value: 'ax-0123456789abcdef0123' },
        { Key: TAG.name, Value: 'burst' },
        { Key: TAG.owner, Value: 'arn:aws:iam::123456789012:user/alice' },
        { Key: TAG.stage, Value: 'test' },
        { Key: TAG.expiresAt, Value: '2030-01-01T01:00:00.000Z' },
        { Key: TAG.batch, Value: '2' },
      ];

      // Act
      await compute.launch(request());

      // Assess
      const [input] = runInputs();
      expect(TAG).toEqual({
        id: 'annex:id',
        name: 'annex:name',
        owner: 'annex:owner',
        stage: 'annex:stage',
        expiresAt: 'annex:expires-at',
        batch: 'annex:batch',
      });
      expect(input?.TagSpecifications).toHaveLength(2);
      expect(input?.TagSpecifications?.map((s) => s.ResourceType).sort()).toEqual(['instance', 'volume']);
      for (const tagSpec of input?.TagSpecifications ?? []) {
        expect(tagSpec.Tags).toHaveLength(expected.length);
        expect(tagSpec.Tags).toEqual(expect.arrayContaining(expected));
      }
    });

    it('keeps a Name the user gave instead of adding its own', async () => {
      // Prepare
      ec2Mock.on(RunInstancesCommand).resolves({ Instances: [] });

      // Act
      await compute.launch(request({}, { tags: { Name: 'my-workers' } }));

      // Assess
      const names = runInputs()[0]?.TagSpecifications?.[0]?.Tags?.filter((t) => t.Key === 'Name');
      expect(names).toEqual([{ Key: 'Name', Value: 'my-workers' }]);
    });

    it('sends user data as base64 of exactly the UTF-8 bytes it was given', async () => {
      // Prepare
      ec2Mock.on(RunInstancesCommand).resolves({ Instances: [] });
      const userData = '#!/bin/bash\necho "Grüße, 世界 ✓ — naïve café" > /etc/motd\n';

      // Act
      await compute.launch(request({}, { userData }));

      // Assess
      const sent = runInputs()[0]?.UserData;
      expect(sent).toMatch(/^[A-Za-z0-9+/]+=*$/);
      const decoded = Buffer.from(sent ?? '', 'base64');
      expect(decoded.equals(Buffer.from(userData, 'utf8'))).toBe(true);
      expect(decoded.toString('utf8')).toBe(userData);
      expect(decoded.at(-1)).toBe(0x0a);
    });

    it('leaves out user data, instance profile, subnet, groups and key pair when none are given', async () => {
      // Prepare
      ec2Mock.on(RunInstancesCommand).resolves({ Instances: [] });

      // Act
      await compute.launch(
        request(
          { instanceProfileArn: undefined },
          { subnetIds: [], securityGroupIds: [], userData: undefined },
        ),
      );

      // Assess
      const [input] = runInputs();
      expect(input).toBeDefined();
      for (const key of ['UserData', 'IamInstanceProfile', 'SubnetId', 'SecurityGroupIds', 'KeyName']) {
        expect(input).not.toHaveProperty(key);
      }
    });

    it('returns the launched instances with their batch, placement and addresses', async () => {
      // Prepare
      const launchTime = new Date('2030-01-01T00:00:05.000Z');
      ec2Mock.on(RunInstancesCommand).resolves({
        Instances: [
          {
            InstanceId: 'i-0aaa',
            InstanceType: 'm5.large',
            State: { Name: 'pending' },
            LaunchTime: launchTime,
            SubnetId: 'subnet-11111111',
            Placement: { AvailabilityZone: 'us-east-1a' },
            PrivateIpAddress: '10.0.0.5',
            Tags: [{ Key: TAG.batch, Value: '2' }],
          },
          {
            InstanceId: 'i-0bbb',
            InstanceType: 'm5.large',
            State: { Name: 'running' },
            LaunchTime: launchTime,
          },
        ],
      });

      // Act
      const result = await compute.launch(request());

      // Assess
      expect(result).toEqual({
        instances: [
          {
            instanceId: 'i-0aaa',
            instanceType: 'm5.large',
            market: 'on-demand',
            state: 'pending',
            batch: 2,
            launchedAt: '2030-01-01T00:00:05.000Z',
            subnetId: 'subnet-11111111',
            availabilityZone: 'us-east-1a',
            privateIpAddress: '10.0.0.5',
          },
          {
            instanceId: 'i-0bbb',
            instanceType: 'm5.large',
            market: 'on-demand',
            state: 'running',
            batch: 2,
            launchedAt: '2030-01-01T00:00:05.000Z',
          },
        ],
        attempts: [],
      });
    });

    it('tries the next instance type with a new client token when the first has no capacity', async () => {
      // Prepare
      ec2Mock
        .on(RunInstancesCommand, { InstanceType: 'm5.large' })
        .rejects(ec2Error('InsufficientInstanceCapacity'))
        .on(RunInstancesCommand, { InstanceType: 'c5.large' })
        .resolves({
          Instances: [{ InstanceId: 'i-0ccc', InstanceType: 'c5.large', State: { Name: 'pending' } }],
        });

      // Act
      const result = await compute.launch(request());

      // Assess
      expect(runInputs().map((i) => [i.InstanceType, i.ClientToken])).toEqual([
        ['m5.large', 'ax-0123456789abcdef0123-b2-a0'],
        ['c5.large', 'ax-0123456789abcdef0123-b2-a1'],
      ]);
      expect(result.instances.map((i) => i.instanceId)).toEqual(['i-0ccc']);
      expect(result.attempts).toEqual([
        { instanceType: 'm5.large', subnetId: 'subnet-11111111', error: 'InsufficientInstanceCapacity' },
      ]);
    });

    it('tries every subnet of a type before the next type, each attempt with its own token', async () => {
      // Prepare
      ec2Mock
        .on(RunInstancesCommand)
        .rejectsOnce(ec2Error('InsufficientInstanceCapacity'))
        .rejectsOnce(ec2Error('Unsupported'))
        .resolves({ Instances: [] });

      // Act
      const result = await compute.launch(request({}, { subnetIds: ['subnet-11111111', 'subnet-33333333'] }));

      // Assess
      expect(runInputs().map((i) => [i.InstanceType, i.SubnetId, i.ClientToken])).toEqual([
        ['m5.large', 'subnet-11111111', 'ax-0123456789abcdef0123-b2-a0'],
        ['m5.large', 'subnet-33333333', 'ax-0123456789abcdef0123-b2-a1'],
        ['c5.large', 'subnet-11111111', 'ax-0123456789abcdef0123-b2-a2'],
      ]);
      expect(result.attempts).toEqual([
        { instanceType: 'm5.large', subnetId: 'subnet-11111111', error: 'InsufficientInstanceCapacity' },
        { instanceType: 'm5.large', subnetId: 'subnet-33333333', error: 'Unsupported' },
      ]);
    });

    it('reports LimitExceeded when no instance type has capacity', async () => {
      // Prepare
      ec2Mock.on(RunInstancesCommand).rejects(ec2Error('InsufficientInstanceCapacity'));

      // Act
      const failure = compute.launch(request());

      // Assess
      await expect(failure).rejects.toBeInstanceOf(AnnexError);
      await expect(failure).rejects.toMatchObject({ code: 'LimitExceeded' });
      await expect(failure).rejects.toThrow(/InsufficientInstanceCapacity/);
      const tokens = runInputs().map((i) => i.ClientToken);
      expect(tokens).toHaveLength(2);
      expect(new Set(tokens).size).toBe(2);
    });

    it('refuses an unknown AMI as a ValidationError on imageId without trying other types', async () => {
      // Prepare
      ec2Mock
        .on(RunInstancesCommand)
        .rejects(ec2Error('InvalidAMIID.NotFound', "The image id '[ami-x]' does not exist"));

      // Act
      const failure = compute.launch(request());

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'ValidationError', field: 'imageId' });
      expect(ec2Mock).toHaveReceivedCommandTimes(RunInstancesCommand, 1);
    });

    it('reports UpstreamUnavailable when EC2 throttles the launch', async () => {
      // Prepare
      const throttled = ec2Error('RequestLimitExceeded', 'Request limit exceeded.');
      ec2Mock.on(RunInstancesCommand).rejects(throttled);

      // Act
      const failure = compute.launch(request());

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'UpstreamUnavailable', cause: throttled });
      expect(ec2Mock).toHaveReceivedCommandTimes(RunInstancesCommand, 1);
    });

    it('reports a reused client token with other parameters as Conflict', async () => {
      // Prepare
      ec2Mock.on(RunInstancesCommand).rejects(ec2Error('IdempotentParameterMismatch'));

      // Act
      const failure = compute.launch(request());

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'Conflict' });
    });

    it('rethrows an EC2 error it does not know untouched', async () => {
      // Prepare
      const unknown = ec2Error('UnauthorizedOperation', 'You are not authorized');
      ec2Mock.on(RunInstancesCommand).rejects(unknown);

      // Act
      const failure = compute.launch(request());

      // Assess
      await expect(failure).rejects.toBe(unknown);
    });
  });

  describe('terminate', () => {
    it('terminates all ids in one call', async () => {
      // Prepare
      ec2Mock.on(TerminateInstancesCommand).resolves({});

      // Act
      await compute.terminate(['i-1', 'i-2']);

      // Assess
      expect(ec2Mock).toHaveReceivedCommandExactlyOnceWith(TerminateInstancesCommand, {
        InstanceIds: ['i-1', 'i-2'],
      });
    });

    it('falls back to one id at a time when the batch names a missing instance, and succeeds', async () => {
      // Prepare
      ec2Mock.on(TerminateInstancesCommand).callsFake((input: { InstanceIds: string[] }) => {
        if (input.InstanceIds.includes('i-gone')) throw ec2Error('InvalidInstanceID.NotFound');
        return {};
      });

      // Act
      const done = compute.terminate(['i-1', 'i-gone', 'i-3']);

      // Assess
      await expect(done).resolves.toBeUndefined();
      expect(ec2Mock.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input.InstanceIds)).toEqual(
        [['i-1', 'i-gone', 'i-3'], ['i-1'], ['i-gone'], ['i-3']],
      );
    });

    it('sends at most 500 ids per call', async () => {
      // Prepare
      ec2Mock.on(TerminateInstancesCommand).resolves({});
      const ids = Array.from({ length: 501 }, (_, i) => `i-${i}`);

      // Act
      await compute.terminate(ids);

      // Assess
      expect(
        ec2Mock.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input.InstanceIds?.length),
      ).toEqual([500, 1]);
    });

    it('reports UpstreamUnavailable when EC2 throttles the termination', async () => {
      // Prepare
      ec2Mock.on(TerminateInstancesCommand).rejects(ec2Error('RequestLimitExceeded'));

      // Act
      const failure = compute.terminate(['i-1']);

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'UpstreamUnavailable' });
    });
  });

  describe('retag', () => {
    it('overwrites the tags and skips instances that no longer exist', async () => {
      // Prepare
      ec2Mock.on(CreateTagsCommand).callsFake((input: { Resources: string[] }) => {
        if (input.Resources.includes('i-gone')) throw ec2Error('InvalidInstanceID.NotFound');
        return {};
      });

      // Act
      await compute.retag(['i-gone', 'i-2'], { [TAG.expiresAt]: '2030-01-02T00:00:00.000Z' });

      // Assess
      expect(ec2Mock).toHaveReceivedCommandWith(CreateTagsCommand, {
        Resources: ['i-2'],
        Tags: [{ Key: TAG.expiresAt, Value: '2030-01-02T00:00:00.000Z' }],
      });
      expect(ec2Mock).toHaveReceivedCommandTimes(CreateTagsCommand, 3);
    });
  });

  describe('finding instances', () => {
    it('finds a batch’s instances by tag and follows NextToken until it is absent', async () => {
      // Prepare
      ec2Mock
        .on(DescribeInstancesCommand)
        .resolvesOnce({
          Reservations: [
            { Instances: [{ InstanceId: 'i-1', State: { Name: 'running' } }] },
            { Instances: [{ InstanceId: 'i-2', State: { Name: 'pending' } }] },
          ],
          NextToken: 'page-2',
        })
        .resolvesOnce({ Reservations: [{ Instances: [{ InstanceId: 'i-3' }] }], NextToken: 'page-3' })
        .resolvesOnce({ Reservations: [{ Instances: [{ InstanceId: 'i-4' }] }] });

      // Act
      const found = await compute.findBatchInstances('ax-0123456789abcdef0123', 2);

      // Assess
      expect(found.map((i) => i.instanceId)).toEqual(['i-1', 'i-2', 'i-3', 'i-4']);
      expect(found.every((i) => i.batch === 2)).toBe(true);
      const calls = ec2Mock.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input);
      expect(calls.map((c) => c.NextToken)).toEqual([undefined, 'page-2', 'page-3']);
      for (const input of calls) {
        expect(input.Filters).toEqual([
          { Name: `tag:${TAG.id}`, Values: ['ax-0123456789abcdef0123'] },
          { Name: `tag:${TAG.stage}`, Values: ['test'] },
          { Name: `tag:${TAG.batch}`, Values: ['2'] },
          {
            Name: 'instance-state-name',
            Values: expect.arrayContaining(['pending', 'running', 'stopping', 'stopped', 'shutting-down']),
          },
        ]);
        expect(input.Filters?.[3]?.Values).not.toContain('terminated');
      }
    });

    it('stops paging at an empty NextToken', async () => {
      // Prepare
      ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [], NextToken: '' });

      // Act
      const found = await compute.findBatchInstances('ax-1', 1);

      // Assess
      expect(found).toEqual([]);
      expect(ec2Mock).toHaveReceivedCommandTimes(DescribeInstancesCommand, 1);
    });

    it('lists an annex’s instances that still need terminating, whatever their batch', async () => {
      // Prepare
      ec2Mock.on(DescribeInstancesCommand).resolves({
        Reservations: [
          {
            Instances: [
              { InstanceId: 'i-1', State: { Name: 'running' }, Tags: [{ Key: TAG.batch, Value: '3' }] },
            ],
          },
        ],
      });

      // Act
      const found = await compute.listAnnexInstances('ax-1');

      // Assess
      expect(found).toMatchObject([{ instanceId: 'i-1', batch: 3, state: 'running' }]);
      const [input] = ec2Mock.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input);
      expect(input?.Filters).toEqual([
        { Name: `tag:${TAG.id}`, Values: ['ax-1'] },
        { Name: `tag:${TAG.stage}`, Values: ['test'] },
        { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
      ]);
    });

    it('reports UpstreamUnavailable when the listing is throttled', async () => {
      // Prepare
      ec2Mock.on(DescribeInstancesCommand).rejects(ec2Error('RequestLimitExceeded'));

      // Act
      const failure = compute.listAnnexInstances('ax-1');

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'UpstreamUnavailable' });
    });
  });

  describe('provenance', () => {
    const SECRET = '00112233445566778899aabbccddeeff';

    it('launches with the batch’s client token keyed by the annex’s launch secret', async () => {
      // Prepare
      ec2Mock.on(RunInstancesCommand).resolves({ Instances: [] });

      // Act
      await compute.launch(request({ launchSecret: SECRET }));

      // Assess
      expect(runInputs()[0]?.ClientToken).toBe(clientToken('ax-0123456789abcdef0123', 2, 0, SECRET));
      expect(runInputs()[0]?.ClientToken).not.toBe('ax-0123456789abcdef0123-b2-a0');
    });

    it('reports each instance’s client token, instance profile and fleet id tag', async () => {
      // Prepare
      ec2Mock.on(DescribeInstancesCommand).resolves({
        Reservations: [
          {
            Instances: [
              {
                InstanceId: 'i-0aaaaaaaaaaaaaaa1',
                ClientToken: 'tok-1',
                IamInstanceProfile: { Arn: 'arn:aws:iam::123456789012:instance-profile/annex-test' },
                Tags: [
                  { Key: TAG.batch, Value: '1' },
                  { Key: 'aws:ec2:fleet-id', Value: 'fleet-1' },
                ],
              },
              { InstanceId: 'i-0aaaaaaaaaaaaaaa2', ClientToken: '' },
            ],
          },
        ],
      });

      // Act
      const [fleet, bare] = await compute.findBatchInstances('ax-1', 1);

      // Assess
      expect(fleet).toMatchObject({
        clientToken: 'tok-1',
        instanceProfileArn: 'arn:aws:iam::123456789012:instance-profile/annex-test',
        fleetId: 'fleet-1',
      });
      expect(bare).not.toHaveProperty('clientToken');
      expect(bare).not.toHaveProperty('instanceProfileArn');
      expect(bare).not.toHaveProperty('fleetId');
    });

    it('reads a fleet’s client token from DescribeFleets, and none for a fleet EC2 does not know', async () => {
      // Prepare
      ec2Mock
        .on(DescribeFleetsCommand, { FleetIds: ['fleet-1'] })
        .resolves({ Fleets: [{ FleetId: 'fleet-1', ClientToken: 'tok-f' }] })
        .on(DescribeFleetsCommand, { FleetIds: ['fleet-2'] })
        .rejects(ec2Error('InvalidFleetId.NotFound'));

      // Act
      const [known, unknown] = [
        await compute.fleetClientToken('fleet-1'),
        await compute.fleetClientToken('fleet-2'),
      ];

      // Assess
      expect(known).toBe('tok-f');
      expect(unknown).toBeUndefined();
    });
  });
});

describe('classifyEc2Error', () => {
  it.each([
    ['InsufficientInstanceCapacity', 'capacity'],
    ['InsufficientCapacity', 'capacity'],
    ['InsufficientHostCapacity', 'capacity'],
    ['Unsupported', 'capacity'],
    ['InstanceLimitExceeded', 'limit'],
    ['VcpuLimitExceeded', 'limit'],
    ['MaxSpotInstanceCountExceeded', 'limit'],
    ['ResourceLimitExceeded', 'limit'],
    ['InvalidInstanceID.NotFound', 'not-found'],
    ['InvalidInstanceID.Malformed', 'not-found'],
    ['RequestLimitExceeded', 'retryable'],
    ['Throttling', 'retryable'],
    ['InternalError', 'retryable'],
    ['InternalFailure', 'retryable'],
    ['ServiceUnavailable', 'retryable'],
    ['Unavailable', 'retryable'],
    ['IdempotentParameterMismatch', 'conflict'],
    ['InvalidAMIID.NotFound', { field: 'imageId' }],
    ['InvalidAMIID.Malformed', { field: 'imageId' }],
    ['InvalidSubnetID.NotFound', { field: 'subnetIds' }],
    ['InvalidGroup.NotFound', { field: 'securityGroupIds' }],
    ['InvalidGroupId.Malformed', { field: 'securityGroupIds' }],
    ['InvalidSecurityGroupID.NotFound', { field: 'securityGroupIds' }],
    ['InvalidKeyPair.NotFound', { field: 'keyName' }],
    ['InvalidInstanceType', { field: 'instanceTypes' }],
    ['InvalidUserData.Malformed', { field: 'userData' }],
    ['InvalidParameterValue', { field: 'request' }],
    ['UnauthorizedOperation', undefined],
    ['InsufficientInstanceCapacityX', undefined],
  ])('classifies %s as %o', (code, kind) => {
    // Act
    const classified = classifyEc2Error(ec2Error(code));

    // Assess
    expect(classified).toEqual(kind);
  });

  it('reads the code from a plain Error named like the SDK does', () => {
    // Prepare
    const error = Object.assign(new Error('no capacity'), { name: 'InsufficientInstanceCapacity' });

    // Act
    const classified = classifyEc2Error(error);

    // Assess
    expect(classified).toBe('capacity');
  });

  it('classifies nothing for a value that is not an error', () => {
    // Assess
    expect(classifyEc2Error(undefined)).toBeUndefined();
    expect(classifyEc2Error('InsufficientInstanceCapacity')).toBeUndefined();
  });
});
