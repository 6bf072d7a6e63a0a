/** Request body schemas (zod). A refused request gets a 400 that names the field, and nothing is written. */
import * as z from 'zod/mini';
import { CONDOR_USER, MAX_ALLOWED_USERS } from '../boot/condor-config.ts';
import { MIN_DURATION_SECONDS } from '../domain/lease.ts';
import { GPU_MANUFACTURERS } from '../domain/model.ts';
import { MAX_REPLACEMENTS_LIMIT } from '../domain/replacement.ts';
import { name } from './params.ts';

export { IDEMPOTENCY_KEY, NAME, NamePath, OwnerQuery, PoolPath } from './params.ts';

const instanceType = z
  .string()
  .check(z.regex(/^[a-z][a-z0-9-]*\.[a-z0-9-]+$/, 'must be an EC2 instance type'));
const seconds = (min: number, max: number) => z.int().check(z.gte(min), z.lte(max));
// Each refinement below carries its JSON Schema counterpart (z.meta), so that docs/openapi.yaml,
// generated from these schemas, refuses what the refinement refuses.
const utf8Bytes = (max: number) =>
  z.string().check(
    z.refine((s) => Buffer.byteLength(s, 'utf8') <= max, `must be at most ${max} bytes`),
    z.meta({ maxLength: max }),
  );

const tagKey = z.string().check(
  z.minLength(1),
  z.maxLength(128),
  z.refine((k) => !/^(aws|annex):/i.test(k), 'keys starting with aws: or annex: are reserved'),
  z.meta({ not: { pattern: '^([aA][wW][sS]|[aA][nN][nN][eE][xX]):' } }),
);
const tags = z.record(tagKey, z.string().check(z.maxLength(256))).check(
  z.refine((t) => Object.keys(t).length <= 40, 'at most 40 tags'),
  z.meta({ maxProperties: 40 }),
);

const instanceTypes = z.array(instanceType).check(z.minLength(1), z.maxLength(10));
export const market = z.enum(['on-demand', 'spot', 'mixed']);
export const allocationStrategy = z.enum([
  'price-capacity-optimized',
  'capacity-optimized',
  'lowest-price',
  'diversified',
]);
export const capacityPolicy = z.enum(['keep', 'all-or-nothing']);
const onDemandBaseCount = z.int().check(z.gte(0), z.lte(1000));
const count = z.int().check(z.gte(1), z.lte(1000));
const durationSeconds = z
  .int()
  .check(
    z.gte(MIN_DURATION_SECONDS),
    z.describe('at most ANNEX_MAX_DURATION_SECONDS (default 7 days; more is refused with 422)'),
  );
const mixed = { required: ['market'], properties: { market: { const: 'mixed' } } };
const spotOrMixed = { required: ['market'], properties: { market: { enum: ['spot', 'mixed'] } } };
const orFromSpotFleetConfig = (...alternatives: object[]) => ({
  anyOf: [...alternatives, { required: ['spotFleetConfig'] }],
});

/**
 * The rules between the create fields that the domain checks (shared/domain/annex-create.ts), as JSON
 * Schema. A spot fleet config may supply count, types and market itself, so each rule allows it.
 * Not expressible here, and refused with 400: onDemandBaseCount above count, and what a spot
 * fleet config's own content does not translate (named as `spotFleetConfig.<path>`).
 */
const createRules = {
  allOf: [
    orFromSpotFleetConfig({ required: ['count'] }),
    orFromSpotFleetConfig({ required: ['instanceTypes'] }, { required: ['instanceRequirements'] }),
    { not: { required: ['instanceTypes', 'instanceRequirements'] } },
    { if: mixed, then: orFromSpotFleetConfig({ required: ['onDemandBaseCount'] }) },
    { if: { required: ['onDemandBaseCount'] }, then: orFromSpotFleetConfig(mixed) },
    {
      if: { anyOf: [{ required: ['maxPrice'] }, { required: ['allocationStrategy'] }] },
      then: orFromSpotFleetConfig(spotOrMixed),
    },
    {
      if: { required: ['maxReplacements'] },
      then: { required: ['replaceInterrupted'], properties: { replaceInterrupted: { const: true } } },
    },
  ],
};
// Not expressible in JSON Schema: the fuzzer's hooks leave such bodies out (test/integration/).
const minNotAboveMax = () =>
  z.refine<{ min?: number; max?: number }>(
    (r) => r.min === undefined || r.max === undefined || r.min <= r.max,
    { message: 'min must not exceed max', path: ['min'] },
  );
const range = (max: number) =>
  z
    .strictObject({
      min: z.optional(z.int().check(z.gte(0), z.lte(max))),
      max: z.optional(z.int().check(z.gte(0), z.lte(max))),
    })
    .check(minNotAboveMax());
const typePattern = z
  .string()
  .check(z.regex(/^[a-z0-9.*-]{1,30}$/, 'must be an instance type or a pattern like m5.*'));

/** Hardware needs instead of instance types (EC2 attribute-based instance type selection). */
export const instanceRequirements = z
  .strictObject({
    vCpus: z
      .strictObject({
        min: z.int().check(z.gte(1), z.lte(1024)),
        max: z.optional(z.int().check(z.gte(1), z.lte(1024))),
      })
      .check(minNotAboveMax()),
    memoryMiB: z
      .strictObject({
        min: z.int().check(z.gte(0), z.lte(16_777_216)),
        max: z.optional(z.int().check(z.gte(1), z.lte(16_777_216))),
      })
      .check(minNotAboveMax()),
    gpus: z.optional(range(64)),
    gpuManufacturers: z.optional(z.array(z.enum(GPU_MANUFACTURERS)).check(z.minLength(1))),
    instanceGenerations: z.optional(z.array(z.enum(['current', 'previous'])).check(z.minLength(1))),
    burstablePerformance: z.optional(z.enum(['included', 'excluded', 'required'])),
    allowedInstanceTypes: z.optional(z.array(typePattern).check(z.minLength(1), z.maxLength(400))),
    excludedInstanceTypes: z.optional(z.array(typePattern).check(z.minLength(1), z.maxLength(400))),
  })
  .check(
    z.refine((r) => r.allowedInstanceTypes === undefined || r.excludedInstanceTypes === undefined, {
      message: 'give allowedInstanceTypes or excludedInstanceTypes, not both',
      path: ['excludedInstanceTypes'],
    }),
    z.meta({
      not: { required: ['allowedInstanceTypes', 'excludedInstanceTypes'] },
      description: 'hardware needs instead of instance types (EC2 attribute-based instance type selection)',
    }),
  );

const condorUser = z
  .string()
  .check(z.regex(CONDOR_USER, 'must be an HTCondor user name: user or user@domain ([A-Za-z0-9._-])'));
const host = z
  .string()
  .check(z.regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/, 'must be a host name or IPv4 address'));

export const CreateAnnexBody = z
  .strictObject({
    name,
    pool: z.optional(name),
    /** Required unless spotFleetConfig gives TargetCapacity (checked by the domain, field-named). */
    count: z.optional(count),
    instanceTypes: z.optional(instanceTypes),
    instanceRequirements: z.optional(instanceRequirements),
    market: z.optional(market),
    allocationStrategy: z.optional(allocationStrategy),
    maxPrice: z.optional(
      z.string().check(z.regex(/^\d{1,5}(\.\d{1,6})?$/, 'must be USD per hour, e.g. "0.05"')),
    ),
    onDemandBaseCount: z.optional(onDemandBaseCount),
    capacityPolicy: z.optional(capacityPolicy),
    /** condor_annex's -aws-spot-fleet-config-file; translated (or refused, field-named) by the domain. */
    spotFleetConfig: z.optional(
      z
        .record(z.string(), z.unknown())
        .check(z.refine((c) => JSON.stringify(c).length <= 65_536, 'must be at most 64 KiB of JSON')),
    ),
    imageId: z.optional(z.string().check(z.regex(/^ami-[0-9a-f]{8,17}$/, 'must be an AMI id (ami-…)'))),
    subnetIds: z.optional(
      z
        .array(z.string().check(z.regex(/^subnet-[0-9a-f]{8,17}$/, 'must be subnet ids')))
        .check(z.maxLength(16)),
    ),
    securityGroupIds: z.optional(
      z
        .array(z.string().check(z.regex(/^sg-[0-9a-f]{8,17}$/, 'must be security group ids')))
        .check(z.maxLength(5)),
    ),
    keyName: z.optional(z.string().check(z.regex(/^[\x20-\x7e]{1,255}$/, 'must be a key pair name'))),
    durationSeconds: z.optional(durationSeconds),
    idleSeconds: z.optional(seconds(60, 7 * 24 * 3600)),
    userData: z.optional(utf8Bytes(16384)),
    tags: z.optional(tags),
    allowedUsers: z.optional(z.array(condorUser).check(z.maxLength(MAX_ALLOWED_USERS))),
    replaceInterrupted: z.optional(z.boolean()),
    maxReplacements: z.optional(z.int().check(z.gte(0), z.lte(MAX_REPLACEMENTS_LIMIT))),
    maxSpend: z.optional(
      z.number().check(
        // At least a cent: a tinier positive number (5e-324) has no DynamoDB representation (500).
        z.gte(0.01),
        z.lte(1_000_000),
        z.refine(
          (n) => Math.abs(Math.round(n * 100) - n * 100) < 1e-6,
          'must be in USD with at most 2 decimals',
        ),
        z.meta({ multipleOf: 0.01 }),
      ),
    ),
  })
  .check(z.meta(createRules));

export const ExtendAnnexBody = z
  .strictObject({
    durationSeconds: z.optional(durationSeconds),
    expiresAt: z.optional(z.iso.datetime({ offset: true })),
    idleSeconds: z.optional(seconds(60, 7 * 24 * 3600)),
  })
  .check(
    z.refine((b) => (b.durationSeconds === undefined) !== (b.expiresAt === undefined), {
      message: 'give exactly one of durationSeconds or expiresAt',
      path: ['durationSeconds'],
    }),
    z.meta({
      oneOf: [{ required: ['durationSeconds'] }, { required: ['expiresAt'] }],
      description: 'exactly one of durationSeconds (from now) or expiresAt',
    }),
  );

export const AddNodesBody = z.strictObject({
  count,
  instanceTypes: z.optional(instanceTypes),
  market: z.optional(market),
  onDemandBaseCount: z.optional(onDemandBaseCount),
});

const imageId = z.string().check(z.regex(/^ami-[0-9a-f]{8,17}$/, 'must be an AMI id (ami-…)'));
const subnetId = z.string().check(z.regex(/^subnet-[0-9a-f]{8,17}$/, 'must be subnet ids'));
const securityGroupId = z.string().check(z.regex(/^sg-[0-9a-f]{8,17}$/, 'must be security group ids'));
const limit = (max: number) => z.nullable(z.int().check(z.gte(0), z.lte(max)));

/** A pool's launch policy as its registrar gives it: what is left out takes the scope's default. */
export const LaunchPolicyBody = z.strictObject({
  allowedImageIds: z.optional(z.array(imageId).check(z.maxLength(50))),
  allowedSubnetIds: z.optional(z.array(subnetId).check(z.maxLength(50))),
  allowedSecurityGroupIds: z.optional(z.array(securityGroupId).check(z.maxLength(50))),
  allowedInstanceTypes: z.optional(
    z
      .array(
        z
          .string()
          .check(
            z.regex(/^[a-z0-9*][a-z0-9*-]*(\.[a-z0-9*-]+)?$/, 'must be an instance type or a pattern (g5.*)'),
          ),
      )
      .check(z.maxLength(50)),
  ),
  maxVCpusPerInstance: z.optional(z.int().check(z.gte(1), z.lte(1024))),
  maxGpusPerInstance: z.optional(z.int().check(z.gte(0), z.lte(64))),
  maxLeaseSeconds: z.optional(
    z
      .int()
      .check(
        z.gte(MIN_DURATION_SECONDS),
        z.describe('at most ANNEX_MAX_DURATION_SECONDS (more is refused with 422)'),
      ),
  ),
  maxLifetimeSeconds: z.optional(z.int().check(z.gte(MIN_DURATION_SECONDS), z.lte(366 * 24 * 3600))),
  allowUserImage: z.optional(z.boolean()),
  allowUserData: z.optional(z.boolean()),
  allowKeyPair: z.optional(z.boolean()),
  requireMaxSpend: z.optional(z.boolean()),
  quota: z.optional(
    z.strictObject({
      maxInstances: z.optional(limit(100_000)),
      maxVCpus: z.optional(limit(1_000_000)),
      maxMonthlySpendUsd: z.optional(z.nullable(z.number().check(z.gte(0), z.lte(10_000_000)))),
    }),
  ),
});

export const PutPoolBody = z.strictObject({
  collectorHost: host,
  collectorPort: z.optional(z.int().check(z.gte(1), z.lte(65535))),
  credential: z.strictObject({
    type: z.enum(['password', 'idtokens-signing-key']),
    value: z.string().check(z.minLength(8), z.maxLength(4096)),
  }),
  scope: z.optional(z.enum(['shared', 'private'])),
  condorUser: z.optional(condorUser),
  trustDomain: z.optional(host),
  policy: z.optional(LaunchPolicyBody),
});
