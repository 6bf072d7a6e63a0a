/**
 * How big an instance type is (vCPUs, GPUs), for a pool's per-instance limits and its vCPU quota.
 *
 * A small table rather than EC2's DescribeInstanceTypes: the policy check runs before anything is
 * written and must not depend on (or be slowed by) an EC2 call, and the moto emulator answers
 * DescribeInstanceTypes with a partial catalogue. EC2's naming is regular for current x86
 * families (`large` is 2 vCPUs, `xlarge` 4, `Nxlarge` 4N; the smaller sizes of burstable and
 * general families 2), so vCPUs come from the size; GPUs from the table of accelerated types
 * below. A type whose size cannot be read (`metal`, a new naming) is unknown: a pool that limits
 * vCPUs or GPUs refuses it rather than guess.
 */

export interface InstanceSize {
  vCpus: number;
  gpus: number;
}

/** Accelerated types and their GPU count (AWS EC2 accelerated computing instance pages). */
const GPUS: Record<string, number> = {
  'p2.xlarge': 1,
  'p2.8xlarge': 8,
  'p2.16xlarge': 16,
  'p3.2xlarge': 1,
  'p3.8xlarge': 4,
  'p3.16xlarge': 8,
  'p4d.24xlarge': 8,
  'p5.48xlarge': 8,
  'g4dn.xlarge': 1,
  'g4dn.2xlarge': 1,
  'g4dn.4xlarge': 1,
  'g4dn.8xlarge': 1,
  'g4dn.12xlarge': 4,
  'g4dn.16xlarge': 1,
  'g5.xlarge': 1,
  'g5.2xlarge': 1,
  'g5.4xlarge': 1,
  'g5.8xlarge': 1,
  'g5.12xlarge': 4,
  'g5.16xlarge': 1,
  'g5.24xlarge': 4,
  'g5.48xlarge': 8,
  'g6.xlarge': 1,
  'g6.2xlarge': 1,
  'g6.4xlarge': 1,
  'g6.8xlarge': 1,
  'g6.12xlarge': 4,
  'g6.48xlarge': 8,
};

/** Families with accelerators: a size of theirs missing from GPUS has an unknown GPU count. */
const ACCELERATED = /^(p\d|g\d|dl\d|inf\d|trn\d|f\d|vt\d)/;

const SMALL_SIZES = new Set(['nano', 'micro', 'small', 'medium', 'large']);

export const instanceSize = (instanceType: string): InstanceSize | undefined => {
  const [family, size] = instanceType.split('.');
  if (family === undefined || size === undefined) return undefined;
  let vCpus: number | undefined;
  if (SMALL_SIZES.has(size)) vCpus = 2;
  else if (size === 'xlarge') vCpus = 4;
  else {
    const multiple = /^(\d+)xlarge$/.exec(size);
    if (multiple !== null) vCpus = 4 * Number(multiple[1]);
  }
  if (vCpus === undefined) return undefined;
  const gpus = GPUS[instanceType] ?? (ACCELERATED.test(family) ? undefined : 0);
  return gpus === undefined ? undefined : { vCpus, gpus };
};
