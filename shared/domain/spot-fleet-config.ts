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
import { validationError } from './errors.ts';
import {
  GPU_MANUFACTURERS,
  type AllocationStrategy,
  type GpuManufacturer,
  type InstanceRequirements,
  type Market,
} from './model.ts';

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

type Json = Record<string, unknown>;

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

const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\.[a-z0-9-]+$/;
const AMI = /^ami-[0-9a-f]{8,17}$/;
const SUBNET = /^subnet-[0-9a-f]{8,17}$/;
const GROUP = /^sg-[0-9a-f]{8,17}$/;
const ZONE = /^[a-z]{2}(-[a-z]+)+-\d[a-z]$/;
const PRICE = /^\d{1,5}(\.\d{1,6})?$/;

const refuse = (field: string, message: string): never => {
  throw validationError(field, message);
};

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

const object = (v: unknown, field: string): Json => (isObject(v) ? v : refuse(field, 'must be an object'));

const array = (v: unknown, field: string): unknown[] =>
  Array.isArray(v) ? v : refuse(field, 'must be an array');

const text = (v: unknown, field: string, pattern?: RegExp, what = 'a valid value'): string => {
  if (typeof v !== 'string') return refuse(field, 'must be a string');
  if (pattern !== undefined && !pattern.test(v)) return refuse(field, `must be ${what}`);
  return v;
};

/** Spot Fleet numbers are sometimes strings ("TargetCapacity": "50" in AWS's examples). */
const integer = (v: unknown, field: string, min: number): number => {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min) {
    return refuse(field, `must be an integer of at least ${min}`);
  }
  return n;
};

const price = (v: unknown, field: string): string =>
  text(typeof v === 'number' ? String(v) : v, field, PRICE, 'a price in USD per hour, e.g. "0.05"');

/** A comma-separated list, as Spot Fleet takes SubnetId and AvailabilityZone. */
const commaList = (v: unknown, field: string, pattern: RegExp, what: string): string[] =>
  text(v, field)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => (pattern.test(s) ? s : refuse(field, `must be ${what}`)));

const checkKeys = (o: Json, field: string, read: Set<string>, ignored: Set<string> = new Set()): void => {
  for (const key of Object.keys(o)) {
    if (!read.has(key) && !ignored.has(key)) {
      refuse(`${field}.${key}`, 'is not supported by Annex (see the README, "Spot Fleet configs")');
    }
  }
};

/** Collects a value that every launch specification must agree on. */
class Same<T> {
  value: T | undefined;
  constructor(private readonly what: string) {}
  set(v: T, field: string): void {
    if (this.value !== undefined && JSON.stringify(this.value) !== JSON.stringify(v)) {
      refuse(field, `differs between launch specifications; Annex launches one ${this.what} per annex`);
    }
    this.value = v;
  }
}

const addUnique = (list: string[], values: string[]): void => {
  for (const v of values) if (!list.includes(v)) list.push(v);
};

const tagsFrom = (v: unknown, field: string, into: Record<string, string>): void => {
  array(v, field).forEach((spec, i) => {
    const f = `${field}[${i}]`;
    const s = object(spec, f);
    checkKeys(s, f, new Set(['ResourceType', 'Tags']));
    array(s.Tags ?? [], `${f}.Tags`).forEach((tag, j) => {
      const tf = `${f}.Tags[${j}]`;
      const t = object(tag, tf);
      const key = text(t.Key, `${tf}.Key`);
      if (key.length === 0 || key.length > 128) refuse(`${tf}.Key`, 'must be 1 to 128 characters');
      if (/^(aws|annex):/i.test(key)) refuse(`${tf}.Key`, 'keys starting with aws: or annex: are reserved');
      const value = t.Value === undefined ? '' : text(t.Value, `${tf}.Value`);
      if (value.length > 256) refuse(`${tf}.Value`, 'must be at most 256 characters');
      into[key] = value;
    });
  });
};

const rangeOf = (v: unknown, field: string, required: boolean): { min?: number; max?: number } => {
  const r = object(v, field);
  checkKeys(r, field, new Set(['Min', 'Max']));
  if (required && r.Min === undefined) refuse(`${field}.Min`, 'is required');
  return {
    ...(r.Min === undefined ? {} : { min: integer(r.Min, `${field}.Min`, 0) }),
    ...(r.Max === undefined ? {} : { max: integer(r.Max, `${field}.Max`, 0) }),
  };
};

const isGpuManufacturer = (m: string): m is GpuManufacturer =>
  (GPU_MANUFACTURERS as readonly string[]).includes(m);

/** EC2's InstanceRequirements (the parts Annex takes) as the annex's hardware needs. */
const requirementsFrom = (v: unknown, field: string): InstanceRequirements => {
  const r = object(v, field);
  checkKeys(
    r,
    field,
    new Set([
      'VCpuCount',
      'MemoryMiB',
      'AcceleratorCount',
      'AcceleratorTypes',
      'AcceleratorManufacturers',
      'InstanceGenerations',
      'BurstablePerformance',
      'AllowedInstanceTypes',
      'ExcludedInstanceTypes',
    ]),
  );
  if (r.VCpuCount === undefined) refuse(`${field}.VCpuCount`, 'is required');
  if (r.MemoryMiB === undefined) refuse(`${field}.MemoryMiB`, 'is required');
  const vCpus = rangeOf(r.VCpuCount, `${field}.VCpuCount`, true);
  const memoryMiB = rangeOf(r.MemoryMiB, `${field}.MemoryMiB`, true);
  if (r.AcceleratorTypes !== undefined) {
    const types = array(r.AcceleratorTypes, `${field}.AcceleratorTypes`);
    if (types.some((t) => t !== 'gpu')) refuse(`${field}.AcceleratorTypes`, 'only ["gpu"] is supported');
  }
  const strings = (key: string, pattern?: RegExp): string[] | undefined =>
    r[key] === undefined
      ? undefined
      : array(r[key], `${field}.${key}`).map((x, i) => text(x, `${field}.${key}[${i}]`, pattern, 'valid'));
  const manufacturers = strings('AcceleratorManufacturers')?.map((m, i) =>
    isGpuManufacturer(m) ? m : refuse(`${field}.AcceleratorManufacturers[${i}]`, 'is not a GPU manufacturer'),
  );
  const generations = strings('InstanceGenerations');
  generations?.forEach((g, i) => {
    if (g !== 'current' && g !== 'previous')
      refuse(`${field}.InstanceGenerations[${i}]`, 'must be current or previous');
  });
  const burstable = r.BurstablePerformance;
  if (
    burstable !== undefined &&
    burstable !== 'included' &&
    burstable !== 'excluded' &&
    burstable !== 'required'
  ) {
    refuse(`${field}.BurstablePerformance`, 'must be included, excluded or required');
  }
  const allowed = strings('AllowedInstanceTypes', /^[a-z0-9.*-]+$/);
  const excluded = strings('ExcludedInstanceTypes', /^[a-z0-9.*-]+$/);
  return {
    vCpus: vCpus as { min: number; max?: number },
    memoryMiB: memoryMiB as { min: number; max?: number },
    ...(r.AcceleratorCount === undefined
      ? {}
      : { gpus: rangeOf(r.AcceleratorCount, `${field}.AcceleratorCount`, false) }),
    ...(manufacturers === undefined ? {} : { gpuManufacturers: manufacturers }),
    ...(generations === undefined ? {} : { instanceGenerations: generations as ('current' | 'previous')[] }),
    ...(burstable === undefined ? {} : { burstablePerformance: burstable as 'included' }),
    ...(allowed === undefined ? {} : { allowedInstanceTypes: allowed }),
    ...(excluded === undefined ? {} : { excludedInstanceTypes: excluded }),
  };
};

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
