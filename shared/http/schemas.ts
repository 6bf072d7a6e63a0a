/** Request body schemas (zod). A refused request gets a 400 that names the field, and nothing is written. */
import * as z from 'zod/mini';
import { CONDOR_USER, MAX_ALLOWED_USERS } from '../boot/condor-config.ts';
import { MAX_REPLACEMENTS_LIMIT } from '../domain/replacement.ts';
import { name } from './params.ts';

export { IDEMPOTENCY_KEY, NAME, NamePath, OwnerQuery, PoolPath } from './params.ts';

const instanceType = z
  .string()
  .check(z.regex(/^[a-z][a-z0-9-]*\.[a-z0-9-]+$/, 'must be an EC2 instance type'));
const seconds = (min: number, max: number) => z.int().check(z.gte(min), z.lte(max));
const utf8Bytes = (max: number) =>
  z.string().check(z.refine((s) => Buffer.byteLength(s, 'utf8') <= max, `must be at most ${max} bytes`));

const tagKey = z.string().check(
  z.minLength(1),
  z.maxLength(128),
  z.refine((k) => !/^(aws|annex):/i.test(k), 'keys starting with aws: or annex: are reserved'),
);
const tags = z
  .record(tagKey, z.string().check(z.maxLength(256)))
  .check(z.refine((t) => Object.keys(t).length <= 40, 'at most 40 tags'));

const condorUser = z
  .string()
  .check(z.regex(CONDOR_USER, 'must be an HTCondor user name: user or user@domain ([A-Za-z0-9._-])'));
const host = z
  .string()
  .check(z.regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/, 'must be a host name or IPv4 address'));

export const CreateAnnexBody = z.strictObject({
  name,
  pool: z.optional(name),
  count: z.int().check(z.gte(1), z.lte(1000)),
  instanceTypes: z.array(instanceType).check(z.minLength(1), z.maxLength(10)),
  market: z.optional(z.literal('on-demand')),
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
  durationSeconds: z.optional(z.int().check(z.gte(1))),
  idleSeconds: z.optional(seconds(60, 7 * 24 * 3600)),
  userData: z.optional(utf8Bytes(16384)),
  tags: z.optional(tags),
  allowedUsers: z.optional(z.array(condorUser).check(z.maxLength(MAX_ALLOWED_USERS))),
  replaceInterrupted: z.optional(z.boolean()),
  maxReplacements: z.optional(z.int().check(z.gte(0), z.lte(MAX_REPLACEMENTS_LIMIT))),
  maxSpend: z.optional(
    z.number().check(
      z.gt(0),
      z.lte(1_000_000),
      z.refine(
        (n) => Math.abs(Math.round(n * 100) - n * 100) < 1e-6,
        'must be in USD with at most 2 decimals',
      ),
    ),
  ),
});

export const ExtendAnnexBody = z
  .strictObject({
    durationSeconds: z.optional(z.int().check(z.gte(1))),
    expiresAt: z.optional(z.iso.datetime({ offset: true })),
    idleSeconds: z.optional(seconds(60, 7 * 24 * 3600)),
  })
  .check(
    z.refine((b) => (b.durationSeconds === undefined) !== (b.expiresAt === undefined), {
      message: 'give exactly one of durationSeconds or expiresAt',
      path: ['durationSeconds'],
    }),
  );

export const AddNodesBody = z.strictObject({
  count: z.int().check(z.gte(1), z.lte(1000)),
  instanceTypes: z.optional(z.array(instanceType).check(z.minLength(1), z.maxLength(10))),
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
});
