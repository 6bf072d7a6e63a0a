/**
 * condor_annex's `-aws-spot-fleet-config-file`: a Spot Fleet request config (what
 * `aws ec2 request-spot-fleet --spot-fleet-request-config` takes, optionally wrapped in
 * `SpotFleetRequestConfig`) translated into an annex's launch: market, count, instance types or
 * hardware needs, subnets or zones, allocation strategy and max price, image, security groups,
 * key, user data and tags. Pure: no AWS, no I/O.
 *
 * What cannot be translated is refused with a ValidationError naming the field, e.g.
 * `spotFleetConfig.LaunchSpecifications[0].BlockDeviceMappings`. Deliberately ignored (they have
 * no meaning for an annex, or Annex does it its own way): IamFleetRole, ClientToken, Type,
 * ExcessCapacityTerminationPolicy, TerminateInstancesWithExpiration, ReplaceUnhealthyInstances,
 * FulfilledCapacity, OnDemandFulfilledCapacity, IamInstanceProfile (instances always run with the
 * annex instance role), Monitoring, EbsOptimized, and a LaunchTemplateConfigs entry's
 * LaunchTemplateSpecification (Annex launches from its own per-annex template built from the
 * request; only the entry's Overrides are read).
 *
 * Spot Fleet pairs a type with a subnet per launch specification; EC2 Fleet here gets every type
 * in every subnet (or zone) named anywhere in the config.
 */
import {
  AMI,
  GROUP,
  INSTANCE_TYPE,
  SUBNET,
  Same,
  ZONE,
  addUnique,
  array,
  checkKeys,
  commaList,
  integer,
  object,
  price,
  refuse,
  requirementsFrom,
  tagsFrom,
  text,
  type Json,
} from './spot-fleet-fields.ts';
import type { AllocationStrategy, InstanceRequirements, Market } from './model.ts';

export interface SpotFleetLaunch {
  market: Market;
  count: number;
  onDemandBaseCount?: number;
  instanceTypes: string[];
  instanceRequirements?: InstanceRequirements;
  allocationStrategy: AllocationStrategy;
  maxPrice?: string;
  imageId?: string;
  subnetIds?: string[];
  availabilityZones?: string[];
  securityGroupIds?: string[];
  keyName?: string;
  userData?: string;
  tags?: Record<string, string>;
}

const ROOT = 'spotFleetConfig';

const STRATEGIES: Record<string, AllocationStrategy> = {
  lowestPrice: 'lowest-price',
  diversified: 'diversified',
  capacityOptimized: 'capacity-optimized',
  priceCapacityOptimized: 'price-capacity-optimized',
};

const IGNORED_TOP = new Set([
  'IamFleetRole',
  'ClientToken',
  'Type',
  'ExcessCapacityTerminationPolicy',
  'TerminateInstancesWithExpiration',
  'ReplaceUnhealthyInstances',
  'FulfilledCapacity',
  'OnDemandFulfilledCapacity',
]);
const READ_TOP = new Set([
  'AllocationStrategy',
  'OnDemandAllocationStrategy',
  'SpotPrice',
  'TargetCapacity',
  'OnDemandTargetCapacity',
  'TargetCapacityUnitType',
  'InstanceInterruptionBehavior',
  'LaunchSpecifications',
  'LaunchTemplateConfigs',
  'TagSpecifications',
]);
const IGNORED_SPEC = new Set(['IamInstanceProfile', 'Monitoring', 'EbsOptimized']);
const READ_SPEC = new Set([
  'ImageId',
  'InstanceType',
  'InstanceRequirements',
  'SubnetId',
  'Placement',
  'SecurityGroups',
  'KeyName',
  'UserData',
  'SpotPrice',
  'WeightedCapacity',
  'TagSpecifications',
]);
const READ_OVERRIDE = new Set([
  'InstanceType',
  'InstanceRequirements',
  'SubnetId',
  'AvailabilityZone',
  'SpotPrice',
  'WeightedCapacity',
  'Priority',
]);

/** Translates a Spot Fleet request config into an annex launch, or refuses naming the field. */
export const translateSpotFleetConfig = (input: unknown): SpotFleetLaunch => {
  let config = object(input, ROOT);
  let root = ROOT;
  if (Object.keys(config).length === 1 && config.SpotFleetRequestConfig !== undefined) {
    root = `${ROOT}.SpotFleetRequestConfig`;
    config = object(config.SpotFleetRequestConfig, root);
  }
  checkKeys(config, root, READ_TOP, IGNORED_TOP);
  const f = (key: string) => `${root}.${key}`;

  if (config.TargetCapacity === undefined) refuse(f('TargetCapacity'), 'is required');
  const count = integer(config.TargetCapacity, f('TargetCapacity'), 1);
  const onDemand =
    config.OnDemandTargetCapacity === undefined
      ? 0
      : integer(config.OnDemandTargetCapacity, f('OnDemandTargetCapacity'), 0);
  if (onDemand > count) refuse(f('OnDemandTargetCapacity'), 'must not exceed TargetCapacity');
  if (config.TargetCapacityUnitType !== undefined && config.TargetCapacityUnitType !== 'units') {
    refuse(f('TargetCapacityUnitType'), 'only units are supported (one instance per unit)');
  }
  if (
    config.InstanceInterruptionBehavior !== undefined &&
    config.InstanceInterruptionBehavior !== 'terminate'
  ) {
    refuse(f('InstanceInterruptionBehavior'), 'only terminate is supported');
  }
  if (
    config.OnDemandAllocationStrategy !== undefined &&
    config.OnDemandAllocationStrategy !== 'lowestPrice'
  ) {
    refuse(f('OnDemandAllocationStrategy'), 'only lowestPrice is supported');
  }
  const strategyName = config.AllocationStrategy ?? 'lowestPrice';
  const allocationStrategy = typeof strategyName === 'string' ? STRATEGIES[strategyName] : undefined;
  if (allocationStrategy === undefined) {
    refuse(f('AllocationStrategy'), `must be one of ${Object.keys(STRATEGIES).join(', ')}`);
  }

  const instanceTypes: string[] = [];
  const subnetIds: string[] = [];
  const zones: string[] = [];
  const image = new Same<string>('image');
  const groups = new Same<string[]>('set of security groups');
  const key = new Same<string>('key pair');
  const userData = new Same<string>('user data');
  const requirements = new Same<InstanceRequirements>('set of hardware needs');
  const prices = new Same<string>('max price');
  const tags: Record<string, string> = {};
  if (config.SpotPrice !== undefined) prices.set(price(config.SpotPrice, f('SpotPrice')), f('SpotPrice'));
  if (config.TagSpecifications !== undefined)
    tagsFrom(config.TagSpecifications, f('TagSpecifications'), tags);

  const weight = (v: unknown, field: string) => {
    if (v !== undefined && Number(v) !== 1) refuse(field, 'only 1 is supported (one instance per unit)');
  };
  const typeOrNeeds = (o: Json, field: string) => {
    if (o.InstanceType !== undefined && o.InstanceRequirements !== undefined) {
      refuse(`${field}.InstanceRequirements`, 'give InstanceType or InstanceRequirements, not both');
    }
    if (o.InstanceType !== undefined) {
      addUnique(instanceTypes, [
        text(o.InstanceType, `${field}.InstanceType`, INSTANCE_TYPE, 'an EC2 instance type'),
      ]);
    } else if (o.InstanceRequirements !== undefined) {
      requirements.set(
        requirementsFrom(o.InstanceRequirements, `${field}.InstanceRequirements`),
        `${field}.InstanceRequirements`,
      );
    } else {
      refuse(`${field}.InstanceType`, 'is required (or InstanceRequirements)');
    }
  };

  const specs =
    config.LaunchSpecifications === undefined
      ? []
      : array(config.LaunchSpecifications, f('LaunchSpecifications'));
  const templates =
    config.LaunchTemplateConfigs === undefined
      ? []
      : array(config.LaunchTemplateConfigs, f('LaunchTemplateConfigs'));
  if (specs.length === 0 && templates.length === 0) {
    refuse(f('LaunchSpecifications'), 'give LaunchSpecifications or LaunchTemplateConfigs');
  }
  if (specs.length > 0 && templates.length > 0) {
    refuse(f('LaunchTemplateConfigs'), 'give LaunchSpecifications or LaunchTemplateConfigs, not both');
  }

  specs.forEach((raw, i) => {
    const sf = `${f('LaunchSpecifications')}[${i}]`;
    const s = object(raw, sf);
    checkKeys(s, sf, READ_SPEC, IGNORED_SPEC);
    if (s.ImageId === undefined) refuse(`${sf}.ImageId`, 'is required');
    image.set(text(s.ImageId, `${sf}.ImageId`, AMI, 'an AMI id (ami-…)'), `${sf}.ImageId`);
    typeOrNeeds(s, sf);
    if (s.SubnetId !== undefined)
      addUnique(subnetIds, commaList(s.SubnetId, `${sf}.SubnetId`, SUBNET, 'subnet ids'));
    if (s.Placement !== undefined) {
      const p = object(s.Placement, `${sf}.Placement`);
      checkKeys(p, `${sf}.Placement`, new Set(['AvailabilityZone', 'Tenancy']));
      if (p.Tenancy !== undefined && p.Tenancy !== 'default')
        refuse(`${sf}.Placement.Tenancy`, 'only default is supported');
      if (p.AvailabilityZone !== undefined) {
        addUnique(
          zones,
          commaList(p.AvailabilityZone, `${sf}.Placement.AvailabilityZone`, ZONE, 'availability zones'),
        );
      }
    }
    if (s.SecurityGroups !== undefined) {
      const ids = array(s.SecurityGroups, `${sf}.SecurityGroups`).map((g, j) => {
        const gf = `${sf}.SecurityGroups[${j}]`;
        const group = object(g, gf);
        checkKeys(group, gf, new Set(['GroupId', 'GroupName']));
        if (group.GroupId === undefined)
          refuse(`${gf}.GroupName`, 'security groups must be given by GroupId');
        return text(group.GroupId, `${gf}.GroupId`, GROUP, 'a security group id (sg-…)');
      });
      groups.set(ids, `${sf}.SecurityGroups`);
    }
    if (s.KeyName !== undefined)
      key.set(text(s.KeyName, `${sf}.KeyName`, /^[\x20-\x7e]{1,255}$/, 'a key pair name'), `${sf}.KeyName`);
    if (s.UserData !== undefined) {
      const encoded = text(s.UserData, `${sf}.UserData`, /^[A-Za-z0-9+/\s]*={0,2}\s*$/, 'base64-encoded');
      userData.set(Buffer.from(encoded, 'base64').toString('utf8'), `${sf}.UserData`);
    }
    if (s.SpotPrice !== undefined) prices.set(price(s.SpotPrice, `${sf}.SpotPrice`), `${sf}.SpotPrice`);
    weight(s.WeightedCapacity, `${sf}.WeightedCapacity`);
    if (s.TagSpecifications !== undefined) tagsFrom(s.TagSpecifications, `${sf}.TagSpecifications`, tags);
  });

  templates.forEach((raw, i) => {
    const tf = `${f('LaunchTemplateConfigs')}[${i}]`;
    const t = object(raw, tf);
    checkKeys(t, tf, new Set(['Overrides']), new Set(['LaunchTemplateSpecification']));
    const overrides = t.Overrides === undefined ? [] : array(t.Overrides, `${tf}.Overrides`);
    if (overrides.length === 0) {
      refuse(
        `${tf}.Overrides`,
        "is required: Annex does not read your launch template, only the overrides' types and places",
      );
    }
    overrides.forEach((o, j) => {
      const of = `${tf}.Overrides[${j}]`;
      const override = object(o, of);
      checkKeys(override, of, READ_OVERRIDE);
      typeOrNeeds(override, of);
      if (override.SubnetId !== undefined) {
        addUnique(subnetIds, commaList(override.SubnetId, `${of}.SubnetId`, SUBNET, 'subnet ids'));
      }
      if (override.AvailabilityZone !== undefined) {
        addUnique(
          zones,
          commaList(override.AvailabilityZone, `${of}.AvailabilityZone`, ZONE, 'availability zones'),
        );
      }
      if (override.SpotPrice !== undefined)
        prices.set(price(override.SpotPrice, `${of}.SpotPrice`), `${of}.SpotPrice`);
      weight(override.WeightedCapacity, `${of}.WeightedCapacity`);
    });
  });

  if (instanceTypes.length > 0 && requirements.value !== undefined) {
    refuse(
      f('LaunchSpecifications'),
      'mixes InstanceType and InstanceRequirements; Annex takes one or the other',
    );
  }
  if (subnetIds.length > 0 && zones.length > 0) {
    refuse(f('LaunchSpecifications'), 'names both subnets and availability zones; give one or the other');
  }
  if (instanceTypes.length > 10) refuse(f('LaunchSpecifications'), 'names more than 10 instance types');
  if (subnetIds.length > 16) refuse(f('LaunchSpecifications'), 'names more than 16 subnets');

  return {
    market: onDemand === 0 ? 'spot' : 'mixed',
    count,
    ...(onDemand === 0 ? {} : { onDemandBaseCount: onDemand }),
    instanceTypes,
    ...(requirements.value === undefined ? {} : { instanceRequirements: requirements.value }),
    allocationStrategy: allocationStrategy as AllocationStrategy,
    ...(prices.value === undefined ? {} : { maxPrice: prices.value }),
    ...(image.value === undefined ? {} : { imageId: image.value }),
    ...(subnetIds.length === 0 ? {} : { subnetIds }),
    ...(zones.length === 0 ? {} : { availabilityZones: zones }),
    ...(groups.value === undefined ? {} : { securityGroupIds: groups.value }),
    ...(key.value === undefined ? {} : { keyName: key.value }),
    ...(userData.value === undefined ? {} : { userData: userData.value }),
    ...(Object.keys(tags).length === 0 ? {} : { tags }),
  };
};
