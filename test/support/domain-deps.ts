/**
 * The in-memory dependencies the domain tests start from: a fake clock, a lease store, compute,
 * secrets, schedules and a silent logger, wired as `LaunchDeps` with the test stage's settings. A
 * test file takes what it needs from `domainDeps()` and adds only what is specific to it.
 */
import type { LaunchDeps } from '../../shared/domain/annex-deps.ts';
import type { Caller } from '../../shared/domain/model.ts';
import { putPool, type PoolDeps, type PutPoolInput } from '../../shared/domain/pools.ts';
import type { LaunchSettings, Settings, SweepSettings } from '../../shared/domain/ports.ts';
import {
  FakeClock,
  FakeCompute,
  FakeSchedules,
  FakeSecrets,
  InMemoryLeaseStore,
  silentLogger,
} from './fakes.ts';

/** The administrator the domain tests' settings name (`admin` in the test files). */
export const TEST_ADMIN: Caller = { principalArn: 'arn:aws:iam::123456789012:user/admin', admin: true };

export const TEST_LAUNCH: LaunchSettings = {
  defaultImageId: 'ami-0123456789abcdef0',
  defaultSubnetIds: [],
  defaultSecurityGroupIds: [],
};

export const TEST_SWEEP: SweepSettings = {
  bootGraceSeconds: 900,
  orphanMinAgeSeconds: 60,
  stuckAfterSeconds: 600,
  concurrency: 4,
};

export interface DomainDepsOptions<S extends InMemoryLeaseStore, E extends object> {
  /** The lease store, made on the fake clock; an `InMemoryLeaseStore` when absent. */
  store?: (clock: FakeClock) => S;
  /** Changes to the test stage's settings (stage `test`, the admin, a week, 10 instances). */
  settings?: Partial<Settings>;
  /** Changes to the launch settings (a default image, no subnets, no security groups). */
  launch?: Partial<LaunchSettings>;
  /** Further dependencies (sweep settings, prices, instance settings) added to `deps`. */
  with?: E;
}

export interface DomainDeps<S extends InMemoryLeaseStore, E extends object> {
  clock: FakeClock;
  store: S;
  compute: FakeCompute;
  secrets: FakeSecrets;
  schedules: FakeSchedules;
  log: ReturnType<typeof silentLogger>;
  deps: LaunchDeps & E;
}

export function domainDeps<S extends InMemoryLeaseStore = InMemoryLeaseStore, E extends object = object>(
  options: DomainDepsOptions<S, E> = {},
): DomainDeps<S, E> {
  const clock = new FakeClock();
  const store = options.store === undefined ? (new InMemoryLeaseStore() as S) : options.store(clock);
  const compute = new FakeCompute(clock);
  const secrets = new FakeSecrets('test');
  const schedules = new FakeSchedules();
  const log = silentLogger();
  const deps = {
    store,
    compute,
    secrets,
    schedules,
    clock,
    log,
    settings: {
      stage: 'test',
      maxDurationSeconds: 7 * 86400,
      maxInstancesPerAnnex: 10,
      ...options.settings,
    },
    launch: { ...TEST_LAUNCH, ...options.launch },
    ...(options.with ?? ({} as E)),
  };
  return { clock, store, compute, secrets, schedules, log, deps };
}

/**
 * Registers the shared pool `default` (cm.example.org:9618, a password) as the administrator,
 * with a policy that lets users bring their own image, user data and key pair (the domain tests
 * exercise launching; the launch policy's own refusals are tested in launch-policy.test.ts).
 */
export const putDefaultPool = (deps: PoolDeps, over: Partial<PutPoolInput> = {}) =>
  putPool(deps, TEST_ADMIN, 'default', {
    collectorHost: 'cm.example.org',
    collectorPort: 9618,
    credential: { type: 'password', value: 'pool-password-123' },
    policy: { allowUserImage: true, allowUserData: true, allowKeyPair: true },
    ...over,
  });
