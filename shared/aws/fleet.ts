/**
 * EC2 Fleet launches for the EC2 adapter: a per-annex launch template (created idempotently by
 * name, tagged `annex:id`/`annex:stage`, deleted when the annex ends) and one `CreateFleet` of type
 * `instant` per launch batch, with the instance types × subnets (or hardware needs) as overrides.
 * Only shared/aws/ec2.ts uses this module; it sees and translates EC2's errors like ec2.ts does.
 */
import {
  CreateFleetCommand,
  CreateLaunchTemplateCommand,
  DeleteLaunchTemplateCommand,
  DescribeLaunchTemplatesCommand,
  type CreateFleetCommandInput,
  type CreateFleetCommandOutput,
  type EC2Client,
  type FleetLaunchTemplateOverridesRequest,
  type InstanceRequirementsRequest,
  type Tag,
} from '@aws-sdk/client-ec2';
import { clientToken } from '../domain/lease.ts';
import type { InstanceMarket, InstanceRequirements, LaunchSpec } from '../domain/model.ts';
import type { AnnexLaunchTemplate, FleetError, LaunchedInstance, LaunchRequest } from '../domain/ports.ts';

/**
 * What every annex instance is launched with, by RunInstances or from the fleet's launch template:
 * image, network, key, the user's user data byte for byte, the instance profile, terminate on
 * shutdown, IMDSv2 only.
 */
export const instanceBasics = (req: Pick<LaunchRequest, 'spec' | 'instanceProfileArn'>) => {
  const { spec } = req;
  return {
    ImageId: spec.imageId,
    ...(spec.securityGroupIds.length > 0 ? { SecurityGroupIds: spec.securityGroupIds } : {}),
    ...(spec.keyName === undefined ? {} : { KeyName: spec.keyName }),
    // The user's bytes, untouched (base64 is EC2's transport encoding; SDK v3 does not add it).
    ...(spec.userData === undefined
      ? {}
      : { UserData: Buffer.from(spec.userData, 'utf8').toString('base64') }),
    ...(req.instanceProfileArn === undefined ? {} : { IamInstanceProfile: { Arn: req.instanceProfileArn } }),
    InstanceInitiatedShutdownBehavior: 'terminate' as const,
    MetadataOptions: {
      HttpTokens: 'required' as const,
      HttpEndpoint: 'enabled' as const,
      HttpPutResponseHopLimit: 1,
    },
  };
};

/** The launch template of one annex: derived from the stage and the annex id, nothing else. */
export const launchTemplateName = (stage: string, annexId: string): string => `annex-${stage}-${annexId}`;

/** The spot capacity in a batch of `count` (the rest is the on-demand base). */
export const batchSplit = (spec: LaunchSpec, count: number): { onDemand: number; spot: number } => {
  const onDemand =
    spec.market === 'on-demand'
      ? count
      : spec.market === 'spot'
        ? 0
        : Math.min(count, spec.onDemandBaseCount ?? 0);
  return { onDemand, spot: count - onDemand };
};

const range = (r: { min?: number; max?: number } | undefined) =>
  r === undefined
    ? undefined
    : { ...(r.min === undefined ? {} : { Min: r.min }), ...(r.max === undefined ? {} : { Max: r.max }) };

export const instanceRequirementsRequest = (r: InstanceRequirements): InstanceRequirementsRequest => ({
  VCpuCount: { Min: r.vCpus.min, ...(r.vCpus.max === undefined ? {} : { Max: r.vCpus.max }) },
  MemoryMiB: { Min: r.memoryMiB.min, ...(r.memoryMiB.max === undefined ? {} : { Max: r.memoryMiB.max }) },
  ...(r.gpus === undefined ? {} : { AcceleratorCount: range(r.gpus), AcceleratorTypes: ['gpu'] }),
  ...(r.gpuManufacturers === undefined
    ? {}
    : {
        AcceleratorManufacturers:
          r.gpuManufacturers as InstanceRequirementsRequest['AcceleratorManufacturers'],
      }),
  ...(r.instanceGenerations === undefined ? {} : { InstanceGenerations: r.instanceGenerations }),
  ...(r.burstablePerformance === undefined ? {} : { BurstablePerformance: r.burstablePerformance }),
  ...(r.allowedInstanceTypes === undefined ? {} : { AllowedInstanceTypes: r.allowedInstanceTypes }),
  ...(r.excludedInstanceTypes === undefined ? {} : { ExcludedInstanceTypes: r.excludedInstanceTypes }),
});

/** Instance types (or hardware needs) × subnets (or zones): where the fleet may launch. */
export const fleetOverrides = (spec: LaunchSpec): FleetLaunchTemplateOverridesRequest[] => {
  const places: { SubnetId?: string; AvailabilityZone?: string }[] =
    spec.subnetIds.length > 0
      ? spec.subnetIds.map((SubnetId) => ({ SubnetId }))
      : (spec.availabilityZones ?? []).length > 0
        ? (spec.availabilityZones ?? []).map((AvailabilityZone) => ({ AvailabilityZone }))
        : [{}];
  const what: FleetLaunchTemplateOverridesRequest[] =
    spec.instanceTypes.length > 0
      ? spec.instanceTypes.map((t) => ({ InstanceType: t as never }))
      : spec.instanceRequirements === undefined
        ? []
        : [{ InstanceRequirements: instanceRequirementsRequest(spec.instanceRequirements) }];
  const maxPrice =
    spec.market !== 'on-demand' && spec.maxPrice !== undefined ? { MaxPrice: spec.maxPrice } : {};
  return what.flatMap((w) => places.map((p) => ({ ...w, ...p, ...maxPrice })));
};

/** The CreateFleet request of one batch (`attempt` 0: the batch's one client token). */
export const createFleetInput = (
  req: LaunchRequest,
  templateName: string,
  tags: Tag[],
): CreateFleetCommandInput => {
  const { spec } = req;
  const { onDemand, spot } = batchSplit(spec, req.count);
  return {
    Type: 'instant',
    ClientToken: clientToken(req.annexId, req.batch, 0, req.launchSecret),
    LaunchTemplateConfigs: [
      {
        LaunchTemplateSpecification: { LaunchTemplateName: templateName, Version: '$Latest' },
        Overrides: fleetOverrides(spec),
      },
    ],
    TargetCapacitySpecification: {
      TotalTargetCapacity: req.count,
      OnDemandTargetCapacity: onDemand,
      SpotTargetCapacity: spot,
      DefaultTargetCapacityType: spot > 0 ? 'spot' : 'on-demand',
    },
    // moto answers 500 to SpotOptions without an AllocationStrategy: always send one.
    ...(spot > 0
      ? {
          SpotOptions: {
            AllocationStrategy: spec.allocationStrategy ?? 'price-capacity-optimized',
            InstanceInterruptionBehavior: 'terminate',
          },
        }
      : {}),
    OnDemandOptions: { AllocationStrategy: 'lowest-price' },
    TagSpecifications: [
      { ResourceType: 'fleet', Tags: tags },
      { ResourceType: 'instance', Tags: tags },
    ],
  };
};

/** The per-annex launch template: the annex's image, network, key, user data and instance role. */
export const createLaunchTemplateInput = (
  req: LaunchRequest,
  templateName: string,
  annexTags: Tag[],
): ConstructorParameters<typeof CreateLaunchTemplateCommand>[0] => {
  return {
    LaunchTemplateName: templateName,
    VersionDescription: `annex ${req.annexName}`,
    LaunchTemplateData: {
      ...instanceBasics(req),
      // Volumes are tagged from here (an instant fleet tags the fleet and its instances only).
      TagSpecifications: [{ ResourceType: 'volume', Tags: annexTags }],
    },
    TagSpecifications: [{ ResourceType: 'launch-template', Tags: annexTags }],
  };
};

const MARKETS = new Set<string>(['on-demand', 'spot']);

/** The instances and errors of an instant fleet's answer. */
export const fleetOutcome = (
  out: CreateFleetCommandOutput,
  batch: number,
  launchedAt: string,
): { instances: LaunchedInstance[]; errors: FleetError[] } => {
  const instances: LaunchedInstance[] = (out.Instances ?? []).flatMap((group) => {
    const overrides = group.LaunchTemplateAndOverrides?.Overrides;
    const market = MARKETS.has(group.Lifecycle ?? '') ? (group.Lifecycle as InstanceMarket) : undefined;
    return (group.InstanceIds ?? []).map((instanceId) => ({
      instanceId,
      instanceType: group.InstanceType ?? overrides?.InstanceType ?? 'unknown',
      ...(market === undefined ? {} : { market }),
      // An instant fleet answers before its instances run; the sweep and state events catch up.
      state: 'pending' as const,
      batch,
      launchedAt,
      ...(overrides?.SubnetId === undefined ? {} : { subnetId: overrides.SubnetId }),
      ...(overrides?.AvailabilityZone === undefined ? {} : { availabilityZone: overrides.AvailabilityZone }),
    }));
  });
  const errors: FleetError[] = (out.Errors ?? []).map((e) => {
    const overrides = e.LaunchTemplateAndOverrides?.Overrides;
    return {
      code: e.ErrorCode ?? 'Unknown',
      message: e.ErrorMessage ?? '',
      ...(MARKETS.has(e.Lifecycle ?? '') ? { market: e.Lifecycle as InstanceMarket } : {}),
      ...(overrides?.InstanceType === undefined ? {} : { instanceType: overrides.InstanceType }),
      ...(overrides?.SubnetId === undefined ? {} : { subnetId: overrides.SubnetId }),
      ...(overrides?.AvailabilityZone === undefined ? {} : { availabilityZone: overrides.AvailabilityZone }),
    };
  });
  return { instances, errors };
};

export const sendCreateLaunchTemplate = (
  ec2: EC2Client,
  input: ConstructorParameters<typeof CreateLaunchTemplateCommand>[0],
) => ec2.send(new CreateLaunchTemplateCommand(input));

export const sendCreateFleet = (ec2: EC2Client, input: CreateFleetCommandInput) =>
  ec2.send(new CreateFleetCommand(input));

export const sendDeleteLaunchTemplate = (ec2: EC2Client, LaunchTemplateName: string) =>
  ec2.send(new DeleteLaunchTemplateCommand({ LaunchTemplateName }));

/** Every launch template tagged for the stage, with the annex id its tag names. */
export const describeStageTemplates = async (
  ec2: EC2Client,
  stage: string,
  tagKeys: { id: string; stage: string },
): Promise<AnnexLaunchTemplate[]> => {
  const found: AnnexLaunchTemplate[] = [];
  let NextToken: string | undefined;
  do {
    const out = await ec2.send(
      new DescribeLaunchTemplatesCommand({
        Filters: [{ Name: `tag:${tagKeys.stage}`, Values: [stage] }],
        ...(NextToken === undefined ? {} : { NextToken }),
      }),
    );
    for (const t of out.LaunchTemplates ?? []) {
      const annexId = t.Tags?.find((tag) => tag.Key === tagKeys.id)?.Value;
      if (annexId === undefined) continue;
      found.push({
        annexId,
        ...(t.CreateTime === undefined ? {} : { createdAt: t.CreateTime.toISOString() }),
      });
    }
    NextToken = out.NextToken;
  } while (NextToken !== undefined && NextToken !== '');
  return found;
};
