/**
 * Slack use cases. The acknowledging side (`acceptCommand`, `acceptAction`) answers within
 * Slack's 3 seconds: it checks the workspace, the command and the user's mapping, records the
 * request's signature (a replay is refused), hands the work to the worker and says "working on
 * it". The worker (`runSlackJob`) acts as the mapped principal through the same domain functions
 * as the API, and posts the result to the response_url. The expiry warnings and end notices are in
 * notify.ts; the admin's Slack user mappings in identities.ts.
 */
import { createAnnex, DEFAULT_POOL } from '../domain/annex-create.ts';
import { deleteAnnex } from '../domain/annex-end.ts';
import { extendAnnex } from '../domain/annex-extend.ts';
import { getAnnexDetail, listAnnexes, resolveAnnex } from '../domain/annex-read.ts';
import type { LaunchDeps } from '../domain/annex-deps.ts';
import { AnnexError, isAnnexError, validationError } from '../domain/errors.ts';
import { mappedCallerOf, type IdentityRules } from '../domain/identity.ts';
import { isLive, toIso } from '../domain/lease.ts';
import type { Annex, Caller } from '../domain/model.ts';
import type { Clock, Logger } from '../domain/ports.ts';
import { CreateAnnexBody } from '../http/schemas.ts';
import {
  ephemeral,
  escape,
  helpMessage,
  listMessage,
  statusCard,
  cardAnnex,
  type CardAnnex,
} from './blocks.ts';
import { parseCommand, USAGE } from './command.ts';
import type { SlackAction, SlackCommand, SlackIdentity, SlackJob, SlackMessage } from './model.ts';
import type { SlackJobs, SlackMessenger, SlackSettings, SlackStore } from './ports.ts';
import { MAX_SKEW_SECONDS } from './signature.ts';
import { SlackAuthError } from './errors.ts';
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

const cardOf = async (deps: SlackWorkerDeps, annex: Annex): Promise<CardAnnex> =>
  cardAnnex(annex, await deps.store.listInstances(annex.id), deps.clock.now());

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
      return statusCard(cardAnnex(annex, instances, now()), now());
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
