/**
 * Block Kit messages: the status card (name, instances running/requested, expiry countdown,
 * estimated spend when the view carries it) with Extend 1h and Terminate buttons, and the
 * list, help, warning and end messages. Pure functions of the annex view and the time.
 */
import { isLive } from '../domain/lease.ts';
import type { Annex, InstanceRecord } from '../domain/model.ts';
import { annexView, type AnnexView } from '../domain/views.ts';
import { USAGE } from './command.ts';
import type { SlackAnnexRef, SlackMessage } from './model.ts';

export const ACTION_EXTEND = 'annex_extend';
export const ACTION_TERMINATE = 'annex_terminate';

/** What a card shows; the spend fields appear when the annex view has them. */
export type CardAnnex = Pick<
  AnnexView,
  'id' | 'name' | 'owner' | 'state' | 'pool' | 'instanceTypes' | 'requestedCount' | 'expiresAt'
> &
  Partial<Pick<AnnexView, 'runningCount' | 'endReason' | 'endedAt'>> & {
    market?: string;
    estimatedHourlyUsd?: number;
    spendSoFarUsd?: number;
  };

/** Slack mrkdwn: only &, < and > need escaping. */
export const escape = (text: string): string =>
  text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

/** `1d 2h`, `1h 23m`, `9m`, `45s`. */
export const formatDuration = (seconds: number): string => {
  // A countdown reads best in whole minutes, rounded up: 59m59s left is "1h".
  const s = seconds >= 60 ? Math.ceil(seconds / 60) * 60 : Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return h > 0 ? `${d}d ${h}h` : `${d}d`;
  if (h > 0) return m > 0 ? `${h}h ${m}m` : `${h}h`;
  if (m > 0) return `${m}m`;
  return `${s}s`;
};

const slackDate = (iso: string): string =>
  `<!date^${Math.floor(Date.parse(iso) / 1000)}^{date_short_pretty} {time}|${iso}>`;

const usd = (n: number): string => `$${n < 10 ? n.toFixed(2) : n.toFixed(0)}`;

const END_REASONS: Record<string, string> = {
  expired: 'its lease expired',
  idle: 'its instances sat idle',
  user: 'it was terminated',
  budget: 'it reached its budget',
  interrupted: 'EC2 took its spot capacity back',
  'boot-timeout': 'its instances never joined the pool',
  orphan: 'its lease was missing',
  'launch-failed': 'it could not be launched',
};

export const endReasonText = (reason: string | undefined): string =>
  reason === undefined ? 'it ended' : (END_REASONS[reason] ?? `it ended (${reason})`);

const refOf = (a: CardAnnex): SlackAnnexRef => ({ id: a.id, name: a.name, owner: a.owner });

export const buttons = (a: CardAnnex) => ({
  type: 'actions',
  block_id: `annex:${a.id}`,
  elements: [
    {
      type: 'button',
      action_id: ACTION_EXTEND,
      text: { type: 'plain_text', text: 'Extend 1h' },
      value: JSON.stringify(refOf(a)),
    },
    {
      type: 'button',
      action_id: ACTION_TERMINATE,
      style: 'danger',
      text: { type: 'plain_text', text: 'Terminate' },
      value: JSON.stringify(refOf(a)),
      confirm: {
        title: { type: 'plain_text', text: 'Terminate this annex?' },
        text: {
          type: 'mrkdwn',
          text: `Terminate *${escape(a.name)}* now? Its instances stop and its jobs are lost.`,
        },
        confirm: { type: 'plain_text', text: 'Terminate' },
        deny: { type: 'plain_text', text: 'Keep it' },
        style: 'danger',
      },
    },
  ],
});

/** One line about an annex's lease, relative to now. */
const leaseLine = (a: CardAnnex, now: Date): string => {
  if (!isLive(a.state)) {
    return `Ended${a.endedAt === undefined ? '' : ` ${slackDate(a.endedAt)}`}: ${endReasonText(a.endReason)}`;
  }
  const left = (Date.parse(a.expiresAt) - now.getTime()) / 1000;
  return left > 0
    ? `Expires in *${formatDuration(left)}* (${slackDate(a.expiresAt)})`
    : `Expired ${slackDate(a.expiresAt)}; ending now`;
};

const cardText = (a: CardAnnex, now: Date): string => {
  const running = a.runningCount === undefined ? '?' : String(a.runningCount);
  const lines = [
    `*${escape(a.name)}* · ${a.state}${a.market === undefined || a.market === 'on-demand' ? '' : ` · ${a.market}`}`,
    `${running}/${a.requestedCount} instances running · ${a.instanceTypes.map(escape).join(', ')} · pool ${escape(a.pool)}`,
    leaseLine(a, now),
  ];
  const spend = [
    a.estimatedHourlyUsd === undefined ? undefined : `~${usd(a.estimatedHourlyUsd)}/h`,
    a.spendSoFarUsd === undefined ? undefined : `${usd(a.spendSoFarUsd)} so far`,
  ].filter((s) => s !== undefined);
  if (spend.length > 0) lines.push(`Estimated spend: ${spend.join(' · ')}`);
  return lines.join('\n');
};

/** The status card blocks: a section, and the buttons while the annex is live. */
export const cardBlocks = (a: CardAnnex, now: Date): unknown[] => [
  { type: 'section', block_id: `card:${a.id}`, text: { type: 'mrkdwn', text: cardText(a, now) } },
  ...(isLive(a.state) && a.state !== 'TERMINATING' ? [buttons(a)] : []),
];

/** A card with an optional headline (mrkdwn, so a caller escapes what it did not write itself). */
export const statusCard = (
  a: CardAnnex,
  now: Date,
  options: { headline?: string; inChannel?: boolean; replace?: boolean } = {},
): SlackMessage => ({
  ...(options.inChannel === true
    ? { response_type: 'in_channel' as const }
    : { response_type: 'ephemeral' as const }),
  ...(options.replace === true ? { replace_original: true } : {}),
  text: options.headline ?? `${a.name}: ${a.state}`,
  blocks: [
    ...(options.headline === undefined
      ? []
      : [{ type: 'section', text: { type: 'mrkdwn', text: options.headline } }]),
    ...cardBlocks(a, now),
  ],
});

export const listMessage = (annexes: CardAnnex[], now: Date): SlackMessage => {
  const live = annexes.filter((a) => isLive(a.state));
  if (live.length === 0) {
    return { response_type: 'ephemeral', text: 'You have no live annexes. Create one with `/annex create`.' };
  }
  return {
    response_type: 'ephemeral',
    text: `${live.length} live annex${live.length === 1 ? '' : 'es'}`,
    blocks: [
      {
        type: 'section',
        text: { type: 'mrkdwn', text: `*${live.length} live annex${live.length === 1 ? '' : 'es'}*` },
      },
      ...live.slice(0, 20).flatMap((a) => [{ type: 'divider' }, ...cardBlocks(a, now)]),
    ],
  };
};

export const helpMessage = (): SlackMessage => ({
  response_type: 'ephemeral',
  text: `Annex rents EC2 instances that join your HTCondor pool for a fixed lease.\n${USAGE}`,
});

export const ephemeral = (text: string): SlackMessage => ({ response_type: 'ephemeral', text });

/** The 10-minute warning, posted to the channel the annex was created from. */
export const warningMessage = (a: CardAnnex, now: Date): SlackMessage => {
  const left = formatDuration((Date.parse(a.expiresAt) - now.getTime()) / 1000);
  const headline = `:hourglass: Annex *${escape(a.name)}* expires in ${left}. Extend it to keep its instances.`;
  return {
    text: `Annex ${a.name} expires in ${left}`,
    blocks: [{ type: 'section', text: { type: 'mrkdwn', text: headline } }, ...cardBlocks(a, now)],
  };
};

/** The notice that an annex ended, and why. */
export const endedMessage = (a: CardAnnex): SlackMessage => {
  const text = `Annex *${escape(a.name)}* ended: ${endReasonText(a.endReason)}.`;
  return {
    text: `Annex ${a.name} ended: ${endReasonText(a.endReason)}`,
    blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }],
  };
};

const ACTIVE = new Set(['pending', 'running']);

/** The annex as the API shows it (with its estimated spend, when the view has one) for a card. */
export const cardAnnex = (annex: Annex, instances: InstanceRecord[] | undefined, now: Date): CardAnnex => {
  const view: CardAnnex = annexView(annex, instances, now);
  return instances === undefined
    ? view
    : { ...view, runningCount: instances.filter((i) => ACTIVE.has(i.state)).length };
};
