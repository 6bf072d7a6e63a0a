/**
 * Waiting for instances after create and add: until the annex is RUNNING and the instances asked
 * for are running in the API (counted as the API's `runningCount` counts them: EC2 state pending
 * or running, since the table keeps the state EC2 reported at launch); and, when the API reports
 * heartbeats (instances carry `lastHeartbeatAt`, null until the first one), until each has been
 * seen in the pool.
 */
import { CliError } from './errors.ts';
import { formatSpan } from './time.ts';
import { isEnded, type AnnexDetail, type Instance } from './types.ts';

export type WaitPhase = 'launching' | 'joining';

export interface WaitProgress {
  phase: WaitPhase;
  detail: AnnexDetail;
  /** The instances this wait is about (all of them after create, the new ones after add). */
  running: number;
  joined: number;
  wanted: number;
  elapsedMs: number;
}

export interface WaitResult {
  detail: AnnexDetail;
  /** `joined`: heartbeats seen; `running`: the API does not report heartbeats yet. */
  outcome: 'joined' | 'running';
  /** How many instances EC2 gave, when it gave fewer than asked (partial capacity, policy keep). */
  given?: number;
}

/**
 * What EC2 gave the batches this wait is about, from their `launched` events (each lists the
 * instance ids it launched), once every one of them has launched; undefined before that.
 */
export const launchedInstances = (
  detail: AnnexDetail,
  before: ReadonlySet<string> | undefined,
): number | undefined => {
  if (detail.annex.state !== 'RUNNING') return undefined;
  let given: number | undefined;
  for (const e of detail.events) {
    const ids = e.type === 'launched' ? e.detail?.instanceIds : undefined;
    if (!Array.isArray(ids) || ids.some((id) => before?.has(String(id)) ?? false)) continue;
    given = (given ?? 0) + ids.length;
  }
  return given;
};

export interface WaitOptions {
  /** How many new instances to wait for. */
  wanted: number;
  /** Instances that existed before (add waits only for the new ones). */
  before?: ReadonlySet<string>;
  timeoutMs: number;
  intervalMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  onProgress?: (progress: WaitProgress) => void;
}

const isLive = (i: Instance) => i.state === 'pending' || i.state === 'running';

export const waitForInstances = async (
  get: () => Promise<AnnexDetail>,
  options: WaitOptions,
): Promise<WaitResult> => {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const interval = options.intervalMs ?? 2000;
  const started = now();
  for (;;) {
    const detail = await get();
    const { annex } = detail;
    const mine = detail.instances.filter((i) => !(options.before?.has(i.instanceId) ?? false));
    const running = mine.filter(isLive);
    const tracksHeartbeats = detail.instances.some((i) => 'lastHeartbeatAt' in i);
    const joined = running.filter((i) => typeof i.lastHeartbeatAt === 'string').length;
    // EC2 may give fewer than asked (a fleet short of capacity, policy keep): wait for those.
    const given = launchedInstances(detail, options.before);
    const short = given !== undefined && given < options.wanted ? given : undefined;
    const wanted = short ?? options.wanted;
    const launched = annex.state === 'RUNNING' && running.length >= wanted;
    const elapsedMs = now() - started;
    options.onProgress?.({
      phase: launched && tracksHeartbeats ? 'joining' : 'launching',
      detail,
      running: running.length,
      joined,
      wanted,
      elapsedMs,
    });

    if (isEnded(annex.state) || annex.state === 'TERMINATING') {
      const last = [...detail.events].sort((a, b) => a.at.localeCompare(b.at)).at(-1);
      throw new CliError(
        `annex ${annex.name} is ${annex.state}${annex.endReason === undefined ? '' : ` (${annex.endReason})`}${last === undefined ? '' : `: ${last.message}`}`,
        { code: 'AnnexEnded', hint: `see what happened with annex events ${annex.name}` },
      );
    }
    const partial = short === undefined ? {} : { given: short };
    if (launched && !tracksHeartbeats) return { detail, outcome: 'running', ...partial };
    if (launched && joined >= running.length) return { detail, outcome: 'joined', ...partial };
    if (elapsedMs >= options.timeoutMs) {
      const what = launched
        ? `${joined} of ${running.length} instance(s) to join the pool`
        : `${running.length} of ${options.wanted} instance(s) to run (annex ${annex.state})`;
      throw new CliError(`gave up after ${formatSpan(options.timeoutMs / 1000)} waiting for ${what}`, {
        code: 'Timeout',
        hint: `the annex exists and its lease runs: follow it with annex status ${annex.name} --watch, or end it with annex terminate ${annex.name}`,
      });
    }
    await sleep(Math.min(interval, Math.max(0, options.timeoutMs - elapsedMs)));
  }
};
