/**
 * The sweep's vocabulary, shared by its steps: what it depends on, the actions it reports, the
 * report itself, and the two callbacks every step gets (record an action; run a guarded step).
 */
import type { TerminateDeps } from './annex-deps.ts';
import type { EndReason } from './model.ts';
import type {
  Compute,
  ExpirySchedules,
  LaunchSettings,
  PriceBook,
  SecretStore,
  SweepSettings,
} from './ports.ts';

export interface SweepDeps extends TerminateDeps {
  compute: Pick<
    Compute,
    | 'listAnnexInstances'
    | 'terminate'
    | 'listStageInstances'
    | 'retag'
    | 'findBatchInstances'
    | 'deleteLaunchTemplate'
    | 'listLaunchTemplates'
    | 'fleetClientToken'
  >;
  secrets: Pick<SecretStore, 'deleteAnnexCredential' | 'listAnnexCredentials'>;
  /** The stack's instance profile: every instance Annex launches runs with it (provenance). */
  launch: Pick<LaunchSettings, 'instanceProfileArn'>;
  schedules: ExpirySchedules;
  sweep: SweepSettings;
  /** Prices instance records that have none yet (for cost views and budgets); absent: no pricing. */
  prices?: PriceBook;
  /** Milliseconds the invocation has left (the Lambda's remaining time); absent: no time budget. */
  remainingMs?: () => number;
}

export type SweepActionKind =
  | 'end-annex'
  | 'finish-termination'
  | 'repair-launch'
  | 'terminate-instance'
  | 'terminate-orphan'
  | 'terminate-forged'
  | 'terminate-past-expiry'
  | 'record-instance-gone'
  | 'adopt-instance'
  | 'retag'
  | 'delete-parameter'
  | 'delete-launch-template'
  | 'delete-schedule'
  | 'schedule-expiry';

export interface SweepAction {
  action: SweepActionKind;
  reason: EndReason | 'launch-stuck' | 'drift' | 'leak' | 'forged';
  annexId: string;
  instanceIds?: string[];
}

export interface SweepReport {
  startedAt: string;
  finishedAt: string;
  liveAnnexes: number;
  taggedInstances: number;
  actions: SweepAction[];
  errors: number;
  /** The steps that failed (logged with their error; the next sweep retries them). */
  failedSteps: string[];
  /** Clean-up steps left for the next sweep: the invocation was running out of time. */
  skippedSteps: string[];
  /** The lease table could not be read: only the expiry tags were enforced. */
  tableUnavailable: boolean;
}

/** Records an action in the report and logs it. */
export type Act = (a: SweepAction) => void;

/** Runs one step; a failure is logged and counted in the report, and false is returned. */
export type Guard = (what: string, annexId: string, fn: () => Promise<void>) => Promise<boolean>;

export const groupBy = <T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> => {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const group = groups.get(key(item));
    if (group === undefined) groups.set(key(item), [item]);
    else group.push(item);
  }
  return groups;
};
