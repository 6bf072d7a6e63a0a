/**
 * Slack use cases. The acknowledging side (`acceptCommand`, `acceptAction`) answers within
 * Slack's 3 seconds: it checks the workspace, the command and the user's mapping, records the
 * request's signature (a replay is refused), hands the work to the worker and says "working on
 * it". The worker (`runSlackJob`) acts as the mapped principal through the same domain functions
 * as the API, and posts the result to the response_url. `notifySlack` runs every minute: the
 * 10-minute expiry warning and the end notice for annexes created from Slack.
 */
import { createAnnex, DEFAULT_POOL } from '../domain/annex-create.ts';
import { deleteAnnex } from '../domain/annex-end.ts';
import { extendAnnex } from '../domain/annex-extend.ts';
import { getAnnexDetail, listAnnexes, resolveAnnex } from '../domain/annex-read.ts';
import type { LaunchDeps } from '../domain/annex-deps.ts';
import { AnnexError, forbidden, isAnnexError, validationError } from '../domain/errors.ts';
import { mappedCallerOf, ownerOf, type IdentityRules } from '../domain/identity.ts';
import { isEnded, isLive, toIso } from '../domain/lease.ts';
import type { Annex, Caller, InstanceRecord } from '../domain/model.ts';
import type { Clock, LeaseStore, Logger } from '../domain/ports.ts';
import { annexView } from '../domain/views.ts';
import { CreateAnnexBody } from '../http/schemas.ts';
import {
  ephemeral,
  endedMessage,
  escape,
  helpMessage,
  listMessage,
  statusCard,
  warningMessage,
  type CardAnnex,
} from './blocks.ts';
import { parseCommand, USAGE } from './command.ts';
import type { SlackAction, SlackCommand, SlackIdentity, SlackJob, SlackMessage } from './model.ts';
import type { SlackJobs, SlackMessenger, SlackSecrets, SlackSettings, SlackStore } from './ports.ts';
import { MAX_SKEW_SECONDS } from './signature.ts';
import { SlackAuthError, SlackPostError } from './errors.ts';
import { responseUrlAllowed } from './response-url.ts';

export interface SlackIngressDeps {
  slackStore: SlackStore;
  jobs: SlackJobs;
  clock: Clock;
  log: Logger;
  slack: SlackSettings;
}

export interface SlackWorkerDeps extends LaunchDeps {
  slackStore: SlackStore;
  messenger: SlackMessenger;
  slack: SlackSettings;
  /** The owner rule the mapped principal goes through, as a signed request's would. */
  identity: IdentityRules;
}

export interface SlackNotifyDeps {
  store: Pick<LeaseStore, 'getAnnex' | 'listInstances'>;
  slackStore: SlackStore;
  secrets: Pick<SlackSecrets, 'botToken'>;
  messenger: SlackMessenger;
  clock: Clock;
  log: Logger;
  slack: SlackSettings;
}

/** Who sent a verified request, and where to answer. */
export interface SlackRequest {
  teamId: string;
  userId: string;
  channelId?: string;
  responseUrl: string;
  triggerId: string;
  /** The verified X-Slack-Signature and its timestamp: recorded once, so a replay is refused. */
  signature: string;
  timestamp: number;
}

export const WORKING = 'Working on it…';
export const NOT_THIS_TEAM = 'Annex is not enabled for this Slack workspace.';

export const unmappedText = (teamId: string, userId: string): string =>
  `Your Slack account (${teamId}/${userId}) is not linked to an Annex identity, so nothing was done. ` +
  `Ask an Annex administrator to map it: \`PUT /v1/slack/users/${teamId}/${userId}\`.`;

// ---------------------------------------------------------------------------------------------
// Create input: the API's own schema decides, so Slack can never create what the API would refuse.

const SLACK_FIELD: Record<string, string> = {
  instanceTypes: 'type',
  durationSeconds: 'duration',
  idleSeconds: 'idle',
  market: 'spot',
};

export const poolFor = (identity: SlackIdentity, asked: string | undefined): string => {
  const pool = asked ?? (identity.pools.includes(DEFAULT_POOL) ? DEFAULT_POOL : identity.pools[0]);
  if (pool === undefined || !identity.pools.includes(pool)) {
    throw validationError(
      'pool',
      `you may use ${identity.pools.length === 0 ? 'no pool' : identity.pools.join(', ')} from Slack`,
    );
  }
  return pool;
};

export const createInput = (identity: SlackIdentity, command: Extract<SlackCommand, { kind: 'create' }>) => {
  const candidate = {
    name: command.name,
    pool: poolFor(identity, command.pool),
    count: command.count,
    instanceTypes: command.instanceTypes,
    ...(command.spot ? { market: 'spot' } : {}),
    ...(command.durationSeconds === undefined ? {} : { durationSeconds: command.durationSeconds }),
    ...(command.idleSeconds === undefined ? {} : { idleSeconds: command.idleSeconds }),
  };
  const parsed = CreateAnnexBody.safeParse(candidate);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = String(issue?.path[0] ?? 'command');
    throw validationError(SLACK_FIELD[field] ?? field, issue?.message ?? 'invalid');
  }
  return parsed.data;
};

// ---------------------------------------------------------------------------------------------
// Acknowledging side

const job = (req: SlackRequest, now: Date, work: SlackJob['work']): SlackJob => ({
  teamId: req.teamId,
  userId: req.userId,
  ...(req.channelId === undefined ? {} : { channelId: req.channelId }),
  responseUrl: req.responseUrl,
  idempotencyKey: `slack:${req.teamId}:${req.triggerId}`.slice(0, 128),
  receivedAt: toIso(now),
  work,
});

/** Checks that may refuse a request; nothing is written before all of them pass. */
const admit = async (
  deps: SlackIngressDeps,
  req: SlackRequest,
): Promise<{ refusal: SlackMessage } | { identity: SlackIdentity }> => {
  if (!deps.slack.teamIds.includes(req.teamId)) {
    deps.log.info('slack request from a workspace that is not allowed', { teamId: req.teamId });
    return { refusal: ephemeral(NOT_THIS_TEAM) };
  }
  if (!responseUrlAllowed(deps.slack.responseUrlPrefix, req.responseUrl)) {
    deps.log.warn('slack request with a response_url outside the allowed prefix', { teamId: req.teamId });
    throw validationError('response_url', `must start with ${deps.slack.responseUrlPrefix}`);
  }
  const identity = await deps.slackStore.getIdentity(req.teamId, req.userId);
  if (identity === undefined) {
    deps.log.info('slack request from an unmapped user', { teamId: req.teamId, userId: req.userId });
    return { refusal: ephemeral(unmappedText(req.teamId, req.userId)) };
  }
  return { identity };
};

/** Records the signature (conditional put, TTL past the 5-minute window): a replay is refused. */
const recordOnce = async (deps: SlackIngressDeps, req: SlackRequest): Promise<void> => {
  const outcome = await deps.slackStore.recordNonce(req.signature, req.timestamp + MAX_SKEW_SECONDS + 60);
  if (outcome === 'replay') throw new SlackAuthError('replayed request');
};

export const acceptCommand = async (
  deps: SlackIngressDeps,
  req: SlackRequest,
  text: string,
): Promise<SlackMessage> => {
  let command: SlackCommand;
  try {
    command = parseCommand(text);
  } catch (e) {
    if (!isAnnexError(e, 'ValidationError')) throw e;
    return ephemeral(`${e.message}\nUsage:\n${USAGE}`);
  }
  if (command.kind === 'help') return helpMessage();
  const admitted = await admit(deps, req);
  if ('refusal' in admitted) return admitted.refusal;
  if (command.kind === 'create') {
    try {
      createInput(admitted.identity, command);
    } catch (e) {
      if (!isAnnexError(e, 'ValidationError')) throw e;
      return ephemeral(e.message);
    }
  }
  await recordOnce(deps, req);
  await deps.jobs.enqueue(job(req, deps.clock.now(), { type: 'command', command }));
  return ephemeral(WORKING);
};

/** A button click; answered with an empty 200 (Slack keeps the card until the worker replaces it). */
export const acceptAction = async (
  deps: SlackIngressDeps,
  req: SlackRequest,
  action: SlackAction,
): Promise<SlackMessage | undefined> => {
  const admitted = await admit(deps, req);
  if ('refusal' in admitted) return { ...admitted.refusal, replace_original: false };
  await recordOnce(deps, req);
  await deps.jobs.enqueue(job(req, deps.clock.now(), { type: 'action', action }));
  return undefined;
};

// ---------------------------------------------------------------------------------------------
// Worker

const ACTIVE = new Set(['pending', 'running']);

/** The annex as the API shows it (with its estimated spend, when the view has one) for a card. */
const card = (annex: Annex, instances: InstanceRecord[] | undefined, now: Date): CardAnnex => {
  const view: CardAnnex = annexView(annex, instances, now);
  return instances === undefined
    ? view
    : { ...view, runningCount: instances.filter((i) => ACTIVE.has(i.state)).length };
};

const cardOf = async (deps: SlackWorkerDeps, annex: Annex): Promise<CardAnnex> =>
  card(annex, await deps.store.listInstances(annex.id), deps.clock.now());

const extendBy = async (
  deps: SlackWorkerDeps,
  caller: Caller,
  ref: { name: string; owner?: string },
  seconds: number,
  expectId?: string,
): Promise<Annex> => {
  const annex = await resolveAnnex(deps, caller, ref);
  if (expectId !== undefined && annex.id !== expectId) throw gone(ref.name);
  // Like `annex extend --by`: from the current expiry (or from now, if that has passed).
  const base = Math.max(deps.clock.now().getTime(), Date.parse(annex.expiresAt));
  return extendAnnex(
    deps,
    caller,
    { name: annex.name, owner: annex.owner },
    {
      expiresAt: toIso(new Date(base + seconds * 1000)),
    },
  );
};

const gone = (name: string): AnnexError =>
  new AnnexError('NotFound', `this card is about an earlier annex named ${name}, which has ended`);

const runCommand = async (
  deps: SlackWorkerDeps,
  caller: Caller,
  identity: SlackIdentity,
  job: SlackJob,
  command: SlackCommand,
): Promise<SlackMessage> => {
  const now = () => deps.clock.now();
  switch (command.kind) {
    case 'help':
      return helpMessage();
    case 'list': {
      const annexes = (await listAnnexes(deps, caller)).filter((a) => isLive(a.state)).slice(0, 20);
      const cards = await Promise.all(annexes.map((a) => cardOf(deps, a)));
      return listMessage(cards, now());
    }
    case 'status': {
      const { annex, instances } = await getAnnexDetail(deps, caller, { name: command.name });
      return statusCard(card(annex, instances, now()), now());
    }
    case 'create': {
      const { annex } = await createAnnex(deps, caller, createInput(identity, command), job.idempotencyKey);
      if (job.channelId !== undefined) {
        await deps.slackStore.putWatch({
          annexId: annex.id,
          teamId: job.teamId,
          userId: job.userId,
          channelId: job.channelId,
          createdAt: toIso(now()),
        });
      }
      return statusCard(await cardOf(deps, annex), now(), {
        headline: `<@${job.userId}> created annex ${escape(annex.name)}`,
        inChannel: true,
      });
    }
    case 'extend': {
      const annex = await extendBy(deps, caller, { name: command.name }, command.bySeconds);
      return statusCard(await cardOf(deps, annex), now(), { headline: `Extended ${escape(annex.name)}` });
    }
    case 'terminate': {
      const annex = await deleteAnnex(deps, caller, { name: command.name });
      return statusCard(await cardOf(deps, annex), now(), { headline: `Terminated ${escape(annex.name)}` });
    }
  }
};

const runAction = async (
  deps: SlackWorkerDeps,
  caller: Caller,
  action: SlackAction,
): Promise<SlackMessage> => {
  const ref = { name: action.annex.name, owner: action.annex.owner };
  if (action.kind === 'extend') {
    const annex = await extendBy(deps, caller, ref, 3600, action.annex.id);
    return statusCard(await cardOf(deps, annex), deps.clock.now(), {
      headline: `Extended ${escape(annex.name)} by 1h`,
      replace: true,
    });
  }
  const current = await resolveAnnex(deps, caller, ref);
  if (current.id !== action.annex.id) throw gone(ref.name);
  const annex = await deleteAnnex(deps, caller, ref);
  return statusCard(await cardOf(deps, annex), deps.clock.now(), {
    headline: `Terminated ${escape(annex.name)}`,
    replace: true,
  });
};

const failure = (deps: SlackWorkerDeps, job: SlackJob, e: unknown): SlackMessage => {
  if (e instanceof AnnexError && e.code !== 'Internal' && e.code !== 'UpstreamUnavailable') {
    return ephemeral(`:warning: ${e.message}`);
  }
  if (isAnnexError(e, 'UpstreamUnavailable')) {
    deps.log.warn('slack job: a dependency is unavailable', { teamId: job.teamId, detail: e.message });
    return ephemeral(':warning: AWS is not answering right now; try again in a minute.');
  }
  deps.log.error('slack job failed', {
    teamId: job.teamId,
    error: (e as Error | undefined)?.name,
    detail: (e as Error | undefined)?.message,
  });
  return ephemeral(
    ':warning: Something went wrong; nothing more is known here. Try again, or ask an Annex administrator.',
  );
};

/** Does a job as the mapped principal and posts the outcome to its response_url. */
export const runSlackJob = async (deps: SlackWorkerDeps, job: SlackJob): Promise<void> => {
  // Checked when the request came in; checked again before doing work nobody could be told of.
  if (!responseUrlAllowed(deps.slack.responseUrlPrefix, job.responseUrl)) {
    deps.log.error('slack job with a response_url outside the allowed prefix; not done', {
      teamId: job.teamId,
    });
    return;
  }
  let message: SlackMessage;
  const identity = await deps.slackStore.getIdentity(job.teamId, job.userId);
  // A mapping made before the owner rule (to a role session, say) acts as that rule's owner.
  const caller = identity === undefined ? undefined : mappedCallerOf(identity.principalArn, deps.identity);
  if (identity === undefined || caller === undefined) {
    message = ephemeral(unmappedText(job.teamId, job.userId));
  } else {
    try {
      message =
        job.work.type === 'command'
          ? await runCommand(deps, caller, identity, job, job.work.command)
          : await runAction(deps, caller, job.work.action);
    } catch (e) {
      message = failure(deps, job, e);
    }
  }
  await deps.messenger.respond(job.responseUrl, message);
};

// ---------------------------------------------------------------------------------------------
// Admin: the Slack user → principal mapping

export interface PutSlackIdentityInput {
  principalArn: string;
  pools: string[];
}

/** Maps a Slack user to the OWNER identity of `input.principalArn` (a role session → its role). */
export const putSlackIdentity = async (
  deps: { slackStore: SlackStore; clock: Clock; identity: IdentityRules },
  caller: Caller,
  teamId: string,
  userId: string,
  input: PutSlackIdentityInput,
): Promise<SlackIdentity> => {
  if (!caller.admin) throw forbidden('only an administrator may map Slack users');
  const owner = ownerOf(input.principalArn, deps.identity.sessionOwnedRoles);
  if (!owner.ok) throw validationError('principalArn', owner.reason);
  const identity: SlackIdentity = {
    teamId,
    userId,
    principalArn: owner.owner,
    pools: [...new Set(input.pools)],
    updatedAt: toIso(deps.clock.now()),
    updatedBy: caller.principalArn,
  };
  await deps.slackStore.putIdentity(identity);
  return identity;
};

export const getSlackIdentity = async (
  deps: { slackStore: SlackStore },
  caller: Caller,
  teamId: string,
  userId: string,
): Promise<SlackIdentity> => {
  if (!caller.admin) throw forbidden('only an administrator may read Slack user mappings');
  const identity = await deps.slackStore.getIdentity(teamId, userId);
  if (identity === undefined)
    throw new AnnexError('NotFound', `no mapping for Slack user ${teamId}/${userId}`);
  return identity;
};

export const deleteSlackIdentity = async (
  deps: { slackStore: SlackStore },
  caller: Caller,
  teamId: string,
  userId: string,
): Promise<void> => {
  if (!caller.admin) throw forbidden('only an administrator may remove Slack user mappings');
  if (!(await deps.slackStore.deleteIdentity(teamId, userId))) {
    throw new AnnexError('NotFound', `no mapping for Slack user ${teamId}/${userId}`);
  }
};

// ---------------------------------------------------------------------------------------------
// Warnings and end notices (every minute)

export interface NotifyReport {
  watched: number;
  warned: number;
  ended: number;
  failed: number;
}

/**
 * Convergent: whatever extended or ended an annex (Slack, the API, the CLI, the schedule, the
 * sweep), the next run sees the annex as the table has it. A warning is due once per expiry
 * (an extension makes a new one due); an end notice is sent once, then the watch is deleted.
 * A failed post is retried next minute; one Slack will never accept is given up and logged.
 */
export const notifySlack = async (deps: SlackNotifyDeps): Promise<NotifyReport> => {
  const report: NotifyReport = { watched: 0, warned: 0, ended: 0, failed: 0 };
  const watches = await deps.slackStore.listWatches();
  report.watched = watches.length;
  if (watches.length === 0) return report;
  const token = await deps.secrets.botToken();
  for (const watch of watches) {
    try {
      const annex = await deps.store.getAnnex(watch.annexId);
      if (annex === undefined) {
        await deps.slackStore.deleteWatch(watch.annexId);
        continue;
      }
      const now = deps.clock.now();
      const ended = isEnded(annex.state);
      const warnDue =
        !ended &&
        watch.warnedFor !== annex.expiresAt &&
        Date.parse(annex.expiresAt) - now.getTime() <= deps.slack.warnBeforeSeconds * 1000;
      if (!ended && !warnDue) continue;
      if (token === undefined) {
        deps.log.warn('no Slack bot token is configured; warnings and end notices are not sent', {
          annexId: annex.id,
        });
        if (ended) await deps.slackStore.deleteWatch(annex.id);
        continue;
      }
      const view = card(annex, await deps.store.listInstances(annex.id), now);
      try {
        await deps.messenger.postMessage(
          token,
          watch.channelId,
          ended ? endedMessage(view) : warningMessage(view, now),
        );
      } catch (e) {
        if (!(e instanceof SlackPostError) || !e.permanent) throw e;
        deps.log.warn('slack will not take this message; giving it up', {
          annexId: annex.id,
          error: e.message,
        });
      }
      if (ended) {
        await deps.slackStore.deleteWatch(annex.id);
        report.ended++;
      } else {
        await deps.slackStore.markWarned(annex.id, annex.expiresAt);
        report.warned++;
      }
    } catch (e) {
      report.failed++;
      deps.log.error('slack notice failed; retried next minute', {
        annexId: watch.annexId,
        error: (e as Error | undefined)?.name,
        detail: (e as Error | undefined)?.message,
      });
    }
  }
  return report;
};
