/**
 * Response body schemas (zod): what each route answers, the error bodies included. No handler
 * imports this module (responses are not re-validated at run time); docs/openapi.yaml is generated
 * from it (scripts/openapi.ts), the CLI takes its types from it, and the integration tests check the
 * real handlers' answers against it.
 */
import * as z from 'zod/mini';
import { ANNEX_STATES } from '../domain/model.ts';
import { allocationStrategy, capacityPolicy, instanceRequirements, market } from './schemas.ts';

const time = z.iso.datetime({ offset: true });
const described = <T extends z.ZodMiniType>(schema: T, description: string): T =>
  schema.check(z.describe(description)) as T;

export const annexState = z.enum(ANNEX_STATES);

export const EndReason = described(
  z.enum(['user', 'expired', 'idle', 'boot-timeout', 'orphan', 'launch-failed', 'budget', 'interrupted']),
  'why an annex ended or an enforcement action was taken; budget: its spend reached maxSpend; ' +
    'interrupted: EC2 took a spot instance back',
);

export const Annex = z.object({
  id: z.string(),
  name: z.string(),
  owner: z.string(),
  pool: z.string(),
  state: annexState,
  market,
  instanceTypes: z.array(z.string()),
  instanceRequirements: z.optional(instanceRequirements),
  allocationStrategy: z.optional(allocationStrategy),
  maxPrice: z.optional(z.string()),
  onDemandBaseCount: z.optional(z.int()),
  capacityPolicy,
  imageId: z.string(),
  subnetIds: z.array(z.string()),
  availabilityZones: z.optional(z.array(z.string())),
  securityGroupIds: z.array(z.string()),
  keyName: z.optional(z.string()),
  tags: z.record(z.string(), z.string()),
  allowedUsers: z.optional(
    described(
      z.array(z.string()),
      'HTCondor users whose jobs its instances run (empty: any user of the pool)',
    ),
  ),
  userDataBytes: z.int(),
  requestedCount: described(z.int(), 'instances asked for over all batches'),
  runningCount: z.optional(
    described(
      z.int(),
      'pending or running now; present when the instances were read (GET of one annex, and the listing). ' +
        'Below requestedCount when EC2 filled a batch only in part (capacity-error events say why) or ' +
        'an instance left (an instance-state event says so)',
    ),
  ),
  idleSeconds: z.int(),
  createdAt: time,
  updatedAt: time,
  expiresAt: time,
  endedAt: z.optional(time),
  endReason: z.optional(EndReason),
  replaceInterrupted: z.optional(z.boolean()),
  maxReplacements: z.optional(z.int()),
  replacements: z.optional(described(z.int(), 'replacement batches started so far')),
  maxSpend: z.optional(z.number()),
  estimatedHourlyUsd: z.optional(
    described(
      z.number(),
      'USD per hour of its pending and running instances (0 once ended). Each instance is priced by ' +
        'the sweep within a minute of launch: on-demand from the configured price table, spot from ' +
        "EC2's spot price history (the on-demand price when EC2 has none)",
    ),
  ),
  spendSoFarUsd: z.optional(
    described(
      z.number(),
      "estimated USD spent: each instance's price × its time from launch to termination (per second, " +
        'one-minute minimum); kept when the annex ends',
    ),
  ),
  unpricedInstances: z.optional(
    described(
      z.int().check(z.gte(1)),
      'present only while some of its live instances have no price yet: estimatedHourlyUsd and ' +
        'spendSoFarUsd leave them out, so they are lower bounds',
    ),
  ),
  version: z.int(),
});

export const Interruption = described(
  z.object({ action: z.enum(['terminate', 'stop', 'hibernate']), time }),
  "the first interruption notice, from EC2's EventBridge warning (time: two minutes after the " +
    "warning) or the instance's own report, whichever came first",
);

export const Instance = z.object({
  instanceId: z.string(),
  batch: z.int(),
  instanceType: z.string(),
  market: z.enum(['on-demand', 'spot']),
  state: z.enum(['pending', 'running', 'shutting-down', 'terminated', 'stopping', 'stopped']),
  launchedAt: time,
  updatedAt: time,
  availabilityZone: z.optional(z.string()),
  privateIpAddress: z.optional(z.string()),
  publicIpAddress: z.optional(z.string()),
  bootstrappedAt: z.optional(time),
  lastHeartbeatAt: described(
    z.nullable(time),
    "the instance agent's last heartbeat; null until the first (the instance has not joined yet)",
  ),
  agentState: z.optional(z.enum(['booting', 'joined', 'draining'])),
  claimedSlots: z.optional(z.int()),
  totalSlots: z.optional(z.int()),
  idleSince: z.optional(described(time, 'since when no slot has been claimed (absent while one is)')),
  interruption: z.optional(Interruption),
  rebalanceRecommendedAt: z.optional(
    described(time, 'when EC2 recommended rebalancing this spot instance (elevated interruption risk)'),
  ),
  terminatedAt: z.optional(time),
  hourlyUsd: z.optional(described(z.number(), 'its estimated price per hour (see Annex.estimatedHourlyUsd)')),
  priceSource: z.optional(
    z.enum(['on-demand-table', 'spot-price-history', 'on-demand-table (no spot price)']),
  ),
});

export const AnnexEvent = z.object({
  at: time,
  type: z.string(),
  message: z.string(),
  reason: z.optional(EndReason),
  detail: z.optional(z.record(z.string(), z.unknown())),
});

export const AnnexEnvelope = z.object({ annex: Annex });
export const AnnexList = z.object({ annexes: z.array(Annex) });
export const AnnexDetail = z.object({
  annex: Annex,
  instances: z.array(Instance),
  events: z.array(AnnexEvent),
});
export const CondorConfigResponse = z.object({ condorConfig: z.string() });

const poolScope = z.enum(['shared', 'private']);
const credentialType = z.enum(['password', 'idtokens-signing-key']);

export const LaunchPolicy = z.object({
  allowedImageIds: z.array(z.string()),
  allowedSubnetIds: z.array(z.string()),
  allowedSecurityGroupIds: z.array(z.string()),
  allowedInstanceTypes: z.array(z.string()),
  maxVCpusPerInstance: z.optional(z.int()),
  maxGpusPerInstance: z.optional(z.int()),
  maxLeaseSeconds: z.int(),
  maxLifetimeSeconds: z.int(),
  allowUserImage: z.boolean(),
  allowUserData: z.boolean(),
  allowKeyPair: z.boolean(),
  requireMaxSpend: z.boolean(),
  quota: z.object({
    maxInstances: z.optional(z.int()),
    maxVCpus: z.optional(z.int()),
    maxMonthlySpendUsd: z.optional(z.number()),
  }),
});

export const Pool = z.object({
  name: z.string(),
  scope: poolScope,
  owner: z.string(),
  collectorHost: z.string(),
  collectorPort: z.int(),
  credentialType,
  condorUser: z.optional(z.string()),
  trustDomain: z.optional(z.string()),
  policy: LaunchPolicy,
  createdAt: time,
  updatedAt: time,
});
export const PoolEnvelope = z.object({ pool: Pool });
export const PoolList = z.object({ pools: z.array(Pool) });

export const PoolCheck = z.object({
  pool: z.string(),
  scope: poolScope,
  collectorHost: z.string(),
  collectorPort: z.int(),
  reachable: z.boolean(),
  latencyMs: described(z.int(), 'until the connection was made, refused or given up (name lookup included)'),
  timeoutMs: described(z.int(), 'how long the attempt may take (5000)'),
  checkedAt: time,
  error: z.optional(
    described(
      z.object({ code: z.enum(['refused', 'timeout', 'dns', 'unreachable', 'other']), message: z.string() }),
      'present when the collector is unreachable',
    ),
  ),
});
export const PoolCheckResponse = z.object({ check: PoolCheck });

const InstanceToken = z.object({
  value: described(z.string(), 'the IDTOKEN (a JWT)'),
  tokenId: described(z.string(), "the token's jti (revocable with SEC_TOKEN_REVOCATION_EXPR)"),
  expiresAt: described(time, 'when the token expires: the lease end plus a grace'),
});

export const BootstrapResponse = z.object({
  annexId: z.string(),
  annexName: z.string(),
  instanceId: z.string(),
  expiresAt: time,
  idleSeconds: z.int(),
  heartbeatIntervalSeconds: z.int(),
  collector: z.object({ host: z.string(), port: z.int() }),
  credential: described(
    z.discriminatedUnion('type', [
      z.object({ type: z.literal('password'), value: z.string() }),
      z.object({ type: z.literal('idtoken'), ...InstanceToken.shape }),
    ]),
    'how the instance joins its pool. IDTOKENS pools: its own token (written to ' +
      '/etc/condor/tokens.d/annex, owner root, mode 0600), minted for this instance with a scope ' +
      'limited to an execute point and expiring with the lease plus a grace; the signing key never ' +
      'leaves the control plane. Password pools: the pool password, written to ' +
      '/etc/condor/passwords.d/POOL as condor_store_cred writes it (a pool-wide secret)',
  ),
  condorConfig: described(
    z.string(),
    'the HTCondor configuration fragment (see GET /v1/annexes/{name}/condor-config)',
  ),
});

export const HeartbeatResponse = z.object({
  expiresAt: described(time, 'follows an extension'),
  idleSeconds: z.int(),
  action: described(
    z.enum(['continue', 'shutdown']),
    'shutdown when the annex has ended, is ending or expired, or the instance is terminated',
  ),
  token: z.optional(
    described(
      InstanceToken,
      'IDTOKENS pools: a renewed token after the lease moved (install it in place of the old)',
    ),
  ),
});

export const EmptyResponse = z.object({});

/** The API's own error body for one error code: `{ error: { code, message, field?, requestId? } }`. */
export const apiError = <C extends string>(code: C) =>
  z.object({
    error: z.object({
      code: z.literal(code),
      message: z.string(),
      field: z.optional(described(z.string(), 'the refused field (400)')),
      requestId: z.optional(described(z.string(), 'the request, to quote to an operator (5xx)')),
    }),
  });

/** API Gateway's own answer, before any function runs: e.g. `{"message":"Forbidden"}`. */
export const gatewayMessage = <M extends string>(message: M) => z.object({ message: z.literal(message) });

export type AnnexView = z.infer<typeof Annex>;
export type InstanceView = z.infer<typeof Instance>;
export type AnnexEventView = z.infer<typeof AnnexEvent>;
export type AnnexDetailView = z.infer<typeof AnnexDetail>;
export type PoolView = z.infer<typeof Pool>;
export type PoolCheckView = z.infer<typeof PoolCheck>;
