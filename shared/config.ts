/**
 * Configuration, read from the environment and validated once per cold start. A missing or bad
 * value fails fast with its name. Settings every function needs are in `settings()`; the launch
 * settings only functions that launch instances read.
 */
import * as z from 'zod/mini';
import { adminOwnerOf, DEFAULT_SESSION_OWNED_ROLES, type IdentityRules } from './domain/identity.ts';
import type { InstanceSettings, LaunchSettings, Settings, SweepSettings } from './domain/ports.ts';
import type { ScheduleTarget } from './aws/schedules.ts';
import type { SlackSettings } from './slack/ports.ts';

const list = z.pipe(
  z.optional(z.string()),
  z.transform((v) =>
    (v ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
  ),
);
const positiveInt = (fallback: number) =>
  z.pipe(
    z.pipe(
      z.optional(z.string()),
      z.transform((v) => (v === undefined || v === '' ? fallback : Number(v))),
    ),
    z.int().check(z.gte(1)),
  );
const optionalPositiveInt = z.pipe(
  z.pipe(
    z.optional(z.string()),
    z.transform((v) => (v === undefined || v === '' ? undefined : Number(v))),
  ),
  z.optional(z.int().check(z.gte(1))),
);
const optionalText = z.pipe(
  z.optional(z.string()),
  z.transform((v) => (v === undefined || v === '' ? undefined : v)),
);

const SettingsSchema = z.object({
  ANNEX_STAGE: z.string().check(z.regex(/^[a-z0-9][a-z0-9-]{0,30}$/)),
  ANNEX_TABLE_NAME: z.string().check(z.regex(/^[A-Za-z0-9_.-]{3,255}$/)),
  ANNEX_MAX_DURATION_SECONDS: positiveInt(7 * 24 * 3600),
  ANNEX_MAX_INSTANCES_PER_ANNEX: positiveInt(50),
});

// Who owns what (shared/domain/identity.ts). Unset: IAM Identity Center's roles only; empty: none.
const sessionOwnedRoles = z.pipe(
  z.optional(z.string()),
  z.transform((v) =>
    v === undefined
      ? [...DEFAULT_SESSION_OWNED_ROLES]
      : v
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s.length > 0),
  ),
);
const IdentitySchema = z.pipe(
  z.object({
    ANNEX_ADMIN_ARNS: list,
    ANNEX_SESSION_OWNED_ROLES: z.pipe(
      sessionOwnedRoles,
      z.array(z.string().check(z.regex(/^[\w+=,.@-]{1,64}\*?$|^\*$/))),
    ),
  }),
  z.transform((c, ctx) => {
    const adminArns = c.ANNEX_ADMIN_ARNS.map((arn) => adminOwnerOf(arn, c.ANNEX_SESSION_OWNED_ROLES));
    if (adminArns.some((a) => a === undefined)) {
      // An assumed-role ARN of a role whose sessions anyone who may assume it can name, or no
      // principal at all: matching it would either be spoofable or widen it to the whole role.
      ctx.issues.push({
        code: 'custom',
        message: 'not an admin identity',
        input: c,
        path: ['ANNEX_ADMIN_ARNS'],
      });
      return z.NEVER;
    }
    return { adminArns: adminArns as string[], sessionOwnedRoles: c.ANNEX_SESSION_OWNED_ROLES };
  }),
);

const LaunchSchema = z.object({
  ANNEX_INSTANCE_PROFILE_ARN: optionalText,
  ANNEX_DEFAULT_IMAGE_ID: optionalText,
  ANNEX_DEFAULT_SUBNET_IDS: list,
  ANNEX_DEFAULT_SECURITY_GROUP_IDS: list,
  ANNEX_ALLOWED_SUBNET_IDS: list,
  ANNEX_ALLOWED_SECURITY_GROUP_IDS: list,
});

const ScheduleSchema = z.object({
  ANNEX_SCHEDULE_GROUP: z.string().check(z.regex(/^[0-9a-zA-Z-_.]{1,64}$/)),
  ANNEX_EXPIRE_FUNCTION_ARN: z.string().check(z.regex(/^arn:aws[a-z-]*:lambda:/)),
  ANNEX_SCHEDULER_ROLE_ARN: z.string().check(z.regex(/^arn:aws[a-z-]*:iam::\d{12}:role\//)),
});

const SweepSchema = z.object({
  ANNEX_BOOT_GRACE_SECONDS: positiveInt(900),
  ANNEX_ORPHAN_MIN_AGE_SECONDS: positiveInt(60),
  // Unset: the orphan age (one setting served all three before they were split).
  ANNEX_TERMINATION_STALLED_SECONDS: optionalPositiveInt,
  ANNEX_INSTANCE_GONE_SECONDS: optionalPositiveInt,
  ANNEX_OUTAGE_EXPIRY_GRACE_SECONDS: positiveInt(300),
  ANNEX_STUCK_AFTER_SECONDS: positiveInt(600),
  ANNEX_SWEEP_CONCURRENCY: positiveInt(16),
});

const usdPerHour = z.number().check(z.gt(0), z.lt(1000));
const PriceSchema = z.object({
  // A JSON object { "<instance type>": <USD per hour> } laid over the bundled on-demand table.
  ANNEX_ON_DEMAND_PRICES: z.pipe(
    z.pipe(
      z.optional(z.string()),
      z.transform((v, ctx) => {
        if (v === undefined || v.trim() === '') return {};
        try {
          return JSON.parse(v) as unknown;
        } catch {
          ctx.issues.push({ code: 'custom', message: 'must be JSON', input: v });
          return z.NEVER;
        }
      }),
    ),
    z.record(z.string().check(z.regex(/^[a-z][a-z0-9-]*\.[a-z0-9-]+$/)), usdPerHour),
  ),
});

const InstanceSchema = z.object({
  // An IAM role name (the instance role): what instance callers' assumed-role ARNs must name.
  ANNEX_INSTANCE_ROLE_NAME: z.string().check(z.regex(/^[\w+=,.@-]{1,64}$/)),
});

/** How often an instance agent heartbeats (the API tells it; the sweep's idle check reads the result). */
export const HEARTBEAT_INTERVAL_SECONDS = 60;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const parse = <S extends z.ZodMiniType>(schema: S, env: NodeJS.ProcessEnv): z.infer<S> => {
  const result = schema.safeParse(env);
  if (!result.success) {
    const names = [...new Set(result.error.issues.map((i) => String(i.path[0])))];
    throw new ConfigError(`invalid configuration: ${names.join(', ')}`);
  }
  return result.data as z.infer<S>;
};

export interface AppSettings extends Settings {
  tableName: string;
}

let cachedSettings: AppSettings | undefined;
let cachedLaunch: LaunchSettings | undefined;

export const settings = (env: NodeJS.ProcessEnv = process.env): AppSettings => {
  if (cachedSettings !== undefined && env === process.env) return cachedSettings;
  const c = parse(SettingsSchema, env);
  const value: AppSettings = {
    stage: c.ANNEX_STAGE,
    tableName: c.ANNEX_TABLE_NAME,
    maxDurationSeconds: c.ANNEX_MAX_DURATION_SECONDS,
    maxInstancesPerAnnex: c.ANNEX_MAX_INSTANCES_PER_ANNEX,
  };
  if (env === process.env) cachedSettings = value;
  return value;
};

let cachedIdentity: IdentityRules | undefined;

/**
 * How a request's signer becomes its owner and who is an admin: ANNEX_ADMIN_ARNS in owner form and
 * ANNEX_SESSION_OWNED_ROLES (role names or `Prefix*`; unset means `AWSReservedSSO_*`, empty none).
 */
export const identityRules = (env: NodeJS.ProcessEnv = process.env): IdentityRules => {
  if (cachedIdentity !== undefined && env === process.env) return cachedIdentity;
  const value = parse(IdentitySchema, env);
  if (env === process.env) cachedIdentity = value;
  return value;
};

export const launchSettings = (env: NodeJS.ProcessEnv = process.env): LaunchSettings => {
  if (cachedLaunch !== undefined && env === process.env) return cachedLaunch;
  const c = parse(LaunchSchema, env);
  const value: LaunchSettings = {
    defaultSubnetIds: c.ANNEX_DEFAULT_SUBNET_IDS,
    defaultSecurityGroupIds: c.ANNEX_DEFAULT_SECURITY_GROUP_IDS,
    ...(c.ANNEX_INSTANCE_PROFILE_ARN === undefined
      ? {}
      : { instanceProfileArn: c.ANNEX_INSTANCE_PROFILE_ARN }),
    ...(c.ANNEX_DEFAULT_IMAGE_ID === undefined ? {} : { defaultImageId: c.ANNEX_DEFAULT_IMAGE_ID }),
    ...(c.ANNEX_ALLOWED_SUBNET_IDS.length === 0 ? {} : { launchSubnetIds: c.ANNEX_ALLOWED_SUBNET_IDS }),
    ...(c.ANNEX_ALLOWED_SECURITY_GROUP_IDS.length === 0
      ? {}
      : { launchSecurityGroupIds: c.ANNEX_ALLOWED_SECURITY_GROUP_IDS }),
  };
  // The launch roles allow only the ANNEX_ALLOWED_* lists: a default outside them could never launch.
  const strays = (defaults: string[], allowed: string[]) =>
    allowed.length === 0 ? [] : defaults.filter((d) => !allowed.includes(d));
  if (strays(c.ANNEX_DEFAULT_SUBNET_IDS, c.ANNEX_ALLOWED_SUBNET_IDS).length > 0)
    throw new ConfigError(
      'invalid configuration: ANNEX_DEFAULT_SUBNET_IDS (not within ANNEX_ALLOWED_SUBNET_IDS)',
    );
  if (strays(c.ANNEX_DEFAULT_SECURITY_GROUP_IDS, c.ANNEX_ALLOWED_SECURITY_GROUP_IDS).length > 0)
    throw new ConfigError(
      'invalid configuration: ANNEX_DEFAULT_SECURITY_GROUP_IDS (not within ANNEX_ALLOWED_SECURITY_GROUP_IDS)',
    );
  if (env === process.env) cachedLaunch = value;
  return value;
};

let cachedSchedule: ScheduleTarget | undefined;

/** Where expiry schedules live and what they invoke (functions that create or cancel them). */
export const scheduleSettings = (env: NodeJS.ProcessEnv = process.env): ScheduleTarget => {
  if (cachedSchedule !== undefined && env === process.env) return cachedSchedule;
  const c = parse(ScheduleSchema, env);
  const value: ScheduleTarget = {
    group: c.ANNEX_SCHEDULE_GROUP,
    functionArn: c.ANNEX_EXPIRE_FUNCTION_ARN,
    roleArn: c.ANNEX_SCHEDULER_ROLE_ARN,
  };
  if (env === process.env) cachedSchedule = value;
  return value;
};

/** The sweep's thresholds. */
export const sweepSettings = (env: NodeJS.ProcessEnv = process.env): SweepSettings => {
  const c = parse(SweepSchema, env);
  return {
    bootGraceSeconds: c.ANNEX_BOOT_GRACE_SECONDS,
    orphanMinAgeSeconds: c.ANNEX_ORPHAN_MIN_AGE_SECONDS,
    terminationStalledSeconds: c.ANNEX_TERMINATION_STALLED_SECONDS ?? c.ANNEX_ORPHAN_MIN_AGE_SECONDS,
    instanceGoneSeconds: c.ANNEX_INSTANCE_GONE_SECONDS ?? c.ANNEX_ORPHAN_MIN_AGE_SECONDS,
    outageExpiryGraceSeconds: c.ANNEX_OUTAGE_EXPIRY_GRACE_SECONDS,
    stuckAfterSeconds: c.ANNEX_STUCK_AFTER_SECONDS,
    concurrency: c.ANNEX_SWEEP_CONCURRENCY,
  };
};

/** On-demand price overrides (USD per hour by instance type), for the sweep's pricing. */
export const priceOverrides = (env: NodeJS.ProcessEnv = process.env): Record<string, number> =>
  parse(PriceSchema, env).ANNEX_ON_DEMAND_PRICES as Record<string, number>;

let cachedInstance: InstanceSettings | undefined;

/** Who annex instances are (functions behind /v1/instances/self/*). */
export const instanceSettings = (env: NodeJS.ProcessEnv = process.env): InstanceSettings => {
  if (cachedInstance !== undefined && env === process.env) return cachedInstance;
  const c = parse(InstanceSchema, env);
  const value: InstanceSettings = {
    instanceRoleName: c.ANNEX_INSTANCE_ROLE_NAME,
    heartbeatIntervalSeconds: HEARTBEAT_INTERVAL_SECONDS,
  };
  if (env === process.env) cachedInstance = value;
  return value;
};

const url = (fallback: string) =>
  z.pipe(
    z.pipe(
      z.optional(z.string()),
      z.transform((v) => (v === undefined || v === '' ? fallback : v)),
    ),
    // https, or plain http to the loopback interface only (the local stand-in for Slack).
    z.string().check(z.regex(/^(https:\/\/[^\s/@]+|http:\/\/(127\.0\.0\.1|localhost)(:\d+)?)(\/\S*)?\/$/)),
  );

const SlackSchema = z.object({
  ANNEX_STAGE: z.string(),
  ANNEX_SLACK_TEAM_IDS: list,
  ANNEX_SLACK_SIGNING_SECRET_PARAMETER: optionalText,
  ANNEX_SLACK_BOT_TOKEN_PARAMETER: optionalText,
  ANNEX_SLACK_RESPONSE_URL_PREFIX: url('https://hooks.slack.com/'),
  ANNEX_SLACK_API_URL: url('https://slack.com/api/'),
  ANNEX_SLACK_WORKER_FUNCTION: z.optional(z.string().check(z.regex(/^[\w:.-]{1,170}$/))),
  ANNEX_SLACK_WARN_BEFORE_SECONDS: positiveInt(600),
});

let cachedSlack: SlackSettings | undefined;

/** Slack support: allowed workspaces, where its secrets live, where answers may go. */
export const slackSettings = (env: NodeJS.ProcessEnv = process.env): SlackSettings => {
  if (cachedSlack !== undefined && env === process.env) return cachedSlack;
  const c = parse(SlackSchema, env);
  const value: SlackSettings = {
    teamIds: c.ANNEX_SLACK_TEAM_IDS,
    signingSecretParameter:
      c.ANNEX_SLACK_SIGNING_SECRET_PARAMETER ?? `/annex/${c.ANNEX_STAGE}/slack/signing-secret`,
    botTokenParameter: c.ANNEX_SLACK_BOT_TOKEN_PARAMETER ?? `/annex/${c.ANNEX_STAGE}/slack/bot-token`,
    responseUrlPrefix: c.ANNEX_SLACK_RESPONSE_URL_PREFIX,
    apiUrl: c.ANNEX_SLACK_API_URL,
    ...(c.ANNEX_SLACK_WORKER_FUNCTION === undefined ? {} : { workerFunction: c.ANNEX_SLACK_WORKER_FUNCTION }),
    warnBeforeSeconds: c.ANNEX_SLACK_WARN_BEFORE_SECONDS,
  };
  if (env === process.env) cachedSlack = value;
  return value;
};
