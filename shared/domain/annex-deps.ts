/** The ports each annex use case takes as `deps`, and how a request names an annex. */
import type {
  Clock,
  Compute,
  ExpirySchedules,
  LaunchSettings,
  LeaseStore,
  Logger,
  PriceBook,
  SecretStore,
  Settings,
} from './ports.ts';

export interface ReadDeps {
  store: LeaseStore;
  clock: Clock;
  settings: Settings;
  log: Logger;
}

export interface ExtendDeps extends ReadDeps {
  compute: Pick<Compute, 'retag'>;
  schedules: ExpirySchedules;
  /** The stack's defaults, for the policy of a pool registered before pools had one. */
  launch: LaunchSettings;
  /** Prices for the spend quota (its on-demand table); absent: estimated per vCPU (see quota.ts). */
  prices?: PriceBook;
}

export interface TerminateDeps extends ReadDeps {
  compute: Pick<Compute, 'listAnnexInstances' | 'terminate' | 'deleteLaunchTemplate'>;
  secrets: Pick<SecretStore, 'deleteAnnexCredential'>;
  schedules: ExpirySchedules;
}

export interface LaunchDeps extends ReadDeps {
  compute: Compute;
  secrets: SecretStore;
  schedules: ExpirySchedules;
  launch: LaunchSettings;
  /** Prices for the spend quota (its on-demand table); absent: estimated per vCPU (see quota.ts). */
  prices?: PriceBook;
}

/** Which annex a name-addressed request is about: the caller's own, or (admins) `owner`'s. */
export interface AnnexRef {
  name: string;
  owner?: string;
}
