/**
 * Configuration, read from the environment and validated once per cold start. A missing or bad
 * value fails fast with its name. Settings every function needs are in `settings()`; the launch
 * settings only functions that launch instances read.
 */
import { z } from 'zod/mini';
import type { LaunchSettings, Settings } from './domain/ports.ts';

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
const optionalText = z.pipe(
  z.optional(z.string()),
  z.transform((v) => (v === undefined || v === '' ? undefined : v)),
);

const SettingsSchema = z.object({
  ANNEX_STAGE: z.string().check(z.regex(/^[a-z0-9][a-z0-9-]{0,30}$/)),
  ANNEX_TABLE_NAME: z.string().check(z.regex(/^[A-Za-z0-9_.-]{3,255}$/)),
  ANNEX_ADMIN_ARNS: list,
  ANNEX_MAX_DURATION_SECONDS: positiveInt(7 * 24 * 3600),
  ANNEX_MAX_INSTANCES_PER_ANNEX: positiveInt(50),
});

const LaunchSchema = z.object({
  ANNEX_INSTANCE_PROFILE_ARN: optionalText,
  ANNEX_DEFAULT_IMAGE_ID: optionalText,
  ANNEX_DEFAULT_SUBNET_IDS: list,
  ANNEX_DEFAULT_SECURITY_GROUP_IDS: list,
});

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
    adminArns: c.ANNEX_ADMIN_ARNS,
    maxDurationSeconds: c.ANNEX_MAX_DURATION_SECONDS,
    maxInstancesPerAnnex: c.ANNEX_MAX_INSTANCES_PER_ANNEX,
  };
  if (env === process.env) cachedSettings = value;
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
  };
  if (env === process.env) cachedLaunch = value;
  return value;
};
