/**
 * The field readers of a Spot Fleet request config (spot-fleet-config.ts): each reads one JSON
 * value or refuses with a ValidationError naming its path; and EC2's InstanceRequirements (the
 * parts Annex takes) as an annex's hardware needs. Pure.
 */
import { validationError } from './errors.ts';
import { GPU_MANUFACTURERS, type GpuManufacturer, type InstanceRequirements } from './model.ts';

export type Json = Record<string, unknown>;

export const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\.[a-z0-9-]+$/;
export const AMI = /^ami-[0-9a-f]{8,17}$/;
export const SUBNET = /^subnet-[0-9a-f]{8,17}$/;
export const GROUP = /^sg-[0-9a-f]{8,17}$/;
export const ZONE = /^[a-z]{2}(-[a-z]+)+-\d[a-z]$/;
const PRICE = /^\d{1,5}(\.\d{1,6})?$/;

export const refuse = (field: string, message: string): never => {
  throw validationError(field, message);
};

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

export const object = (v: unknown, field: string): Json =>
  isObject(v) ? v : refuse(field, 'must be an object');

export const array = (v: unknown, field: string): unknown[] =>
  Array.isArray(v) ? v : refuse(field, 'must be an array');

export const text = (v: unknown, field: string, pattern?: RegExp, what = 'a valid value'): string => {
  if (typeof v !== 'string') return refuse(field, 'must be a string');
  if (pattern !== undefined && !pattern.test(v)) return refuse(field, `must be ${what}`);
  return v;
};

/** Spot Fleet numbers are sometimes strings ("TargetCapacity": "50" in AWS's examples). */
export const integer = (v: unknown, field: string, min: number): number => {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min) {
    return refuse(field, `must be an integer of at least ${min}`);
  }
  return n;
};

export const price = (v: unknown, field: string): string =>
  text(typeof v === 'number' ? String(v) : v, field, PRICE, 'a price in USD per hour, e.g. "0.05"');

/** A comma-separated list, as Spot Fleet takes SubnetId and AvailabilityZone. */
export const commaList = (v: unknown, field: string, pattern: RegExp, what: string): string[] =>
  text(v, field)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => (pattern.test(s) ? s : refuse(field, `must be ${what}`)));

export const checkKeys = (
  o: Json,
  field: string,
  read: Set<string>,
  ignored: Set<string> = new Set(),
): void => {
  for (const key of Object.keys(o)) {
    if (!read.has(key) && !ignored.has(key)) {
      refuse(`${field}.${key}`, 'is not supported by Annex (see the README, "Spot Fleet configs")');
    }
  }
};

/** Collects a value that every launch specification must agree on. */
export class Same<T> {
  value: T | undefined;
  constructor(private readonly what: string) {}
  set(v: T, field: string): void {
    if (this.value !== undefined && JSON.stringify(this.value) !== JSON.stringify(v)) {
      refuse(field, `differs between launch specifications; Annex launches one ${this.what} per annex`);
    }
    this.value = v;
  }
}

export const addUnique = (list: string[], values: string[]): void => {
  for (const v of values) if (!list.includes(v)) list.push(v);
};

export const tagsFrom = (v: unknown, field: string, into: Record<string, string>): void => {
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
export const requirementsFrom = (v: unknown, field: string): InstanceRequirements => {
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
