/** Human output: aligned tables and the annex, instance, event and pool views. */
import type { Paint } from './output.ts';
import { formatDuration, formatLocal, relativeTo } from './time.ts';
import type { Annex, AnnexDetail, AnnexEvent, AnnexState, Instance, Pool, PoolCheck } from './types.ts';

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;
const width = (s: string): number => [...s.replace(ANSI, '')].length;

/**
 * Columns separated by two spaces, a header row, no borders. When `maxWidth` is known (a
 * terminal), the last column is cut to fit.
 */
export const table = (header: string[], rows: string[][], paint: Paint, maxWidth?: number): string => {
  const widths = header.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ''))));
  const lastStart = widths.slice(0, -1).reduce((sum, w) => sum + w + 2, 0);
  const room = maxWidth === undefined ? undefined : Math.max(12, maxWidth - lastStart);
  const fit = (cell: string): string => {
    if (room === undefined || width(cell) <= room) return cell;
    return `${[...cell.replace(ANSI, '')].slice(0, room - 1).join('')}…`;
  };
  return [header.map((h) => paint.bold(h)), ...rows]
    .map((cells) =>
      cells
        .map((cell, i) =>
          i === cells.length - 1 ? fit(cell) : cell + ' '.repeat(Math.max(0, (widths[i] ?? 0) - width(cell))),
        )
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
};

export const stateColour = (state: AnnexState | string, paint: Paint): string => {
  switch (state) {
    case 'RUNNING':
    case 'running':
      return paint.green(state);
    case 'REQUESTED':
    case 'LAUNCHING':
    case 'TERMINATING':
    case 'pending':
    case 'shutting-down':
      return paint.yellow(state);
    case 'FAILED':
      return paint.red(state);
    default:
      return paint.dim(state);
  }
};

/** `in 49m 12s (14:47:02)`, `ended 3m ago (user)`. */
export const expiryText = (annex: Annex, now: Date): string => {
  if (annex.endedAt !== undefined) {
    const ended = new Date(annex.endedAt);
    return `ended ${relativeTo(ended, now)} at ${formatLocal(ended, now)}${annex.endReason === undefined ? '' : ` (${annex.endReason})`}`;
  }
  const expires = new Date(annex.expiresAt);
  return `${relativeTo(expires, now)} at ${formatLocal(expires, now)}`;
};

const heartbeatText = (i: Instance, now: Date): string =>
  typeof i.lastHeartbeatAt === 'string' ? relativeTo(new Date(i.lastHeartbeatAt), now) : '—';

const runningOf = (instances: Instance[]) => instances.filter((i) => i.state === 'running').length;

/** `$0.096`, `$0.90`, `$2.01`: cents, and a tenth of a cent below a dollar. */
export const usd = (n: number): string => `$${n < 1 ? n.toFixed(3).replace(/0$/, '') : n.toFixed(2)}`;

/** `≈ $0.29/h, $0.05 so far (budget $25.00)`: the control plane's estimate, when it has one. */
export const costText = (annex: Annex): string | undefined => {
  if (annex.estimatedHourlyUsd === undefined && annex.spendSoFarUsd === undefined) {
    return annex.maxSpend === undefined ? undefined : `budget ${usd(annex.maxSpend)} (no estimate yet)`;
  }
  const budget = annex.maxSpend === undefined ? '' : ` (budget ${usd(annex.maxSpend)})`;
  const unpriced = annex.unpricedInstances ?? 0;
  if (unpriced > 0 && !annex.estimatedHourlyUsd && !annex.spendSoFarUsd) {
    return `not priced yet (the control plane prices new instances within a minute)${budget}`;
  }
  const parts = [
    ...(annex.estimatedHourlyUsd === undefined ? [] : [`≈ ${usd(annex.estimatedHourlyUsd)}/h`]),
    ...(annex.spendSoFarUsd === undefined ? [] : [`${usd(annex.spendSoFarUsd)} so far`]),
    ...(unpriced > 0 ? [`${unpriced} instance(s) not priced yet`] : []),
  ];
  return `${parts.join(', ')}${budget}`;
};

export const renderAnnexList = (annexes: Annex[], now: Date, paint: Paint, maxWidth?: number): string => {
  if (annexes.length === 0) return 'No annexes.';
  const owners = new Set(annexes.map((a) => a.owner));
  // Live ones first, then the most recent.
  const sorted = [...annexes].sort(
    (a, b) =>
      Number(a.endedAt !== undefined) - Number(b.endedAt !== undefined) ||
      b.createdAt.localeCompare(a.createdAt),
  );
  const header = [
    'NAME',
    'STATE',
    'INSTANCES',
    'TYPES',
    'POOL',
    'EXPIRES',
    ...(owners.size > 1 ? ['OWNER'] : []),
  ];
  const rows = sorted.map((a) => [
    a.name,
    stateColour(a.state, paint),
    a.runningCount === undefined ? String(a.requestedCount) : `${a.runningCount}/${a.requestedCount}`,
    a.instanceTypes.join(','),
    a.pool,
    a.endedAt === undefined
      ? relativeTo(new Date(a.expiresAt), now)
      : `ended (${a.endReason ?? a.state.toLowerCase()})`,
    ...(owners.size > 1 ? [a.owner] : []),
  ]);
  return table(header, rows, paint, maxWidth);
};

export const renderInstances = (instances: Instance[], now: Date, paint: Paint, maxWidth?: number): string =>
  instances.length === 0
    ? 'No instances.'
    : table(
        ['INSTANCE', 'TYPE', 'STATE', 'ZONE', 'PRIVATE IP', 'PUBLIC IP', 'LAUNCHED', 'HEARTBEAT'],
        instances.map((i) => [
          i.instanceId,
          i.instanceType,
          stateColour(i.state, paint),
          i.availabilityZone ?? '—',
          i.privateIpAddress ?? '—',
          i.publicIpAddress ?? '—',
          relativeTo(new Date(i.launchedAt), now),
          heartbeatText(i, now),
        ]),
        paint,
        maxWidth,
      );

export const renderEvents = (events: AnnexEvent[], now: Date, paint: Paint, maxWidth?: number): string =>
  events.length === 0
    ? 'No events.'
    : table(
        ['TIME', 'EVENT', 'MESSAGE'],
        events.map((e) => [formatLocal(new Date(e.at), now), e.type, e.message.replace(/\s*\n\s*/g, ' ')]),
        paint,
        maxWidth,
      );

/** The latest events first in the API; shown oldest first, the latest `limit`. */
export const latestEvents = (events: AnnexEvent[], limit: number): AnnexEvent[] =>
  [...events].sort((a, b) => a.at.localeCompare(b.at)).slice(-limit);

export const renderStatus = (
  detail: AnnexDetail,
  now: Date,
  paint: Paint,
  maxWidth?: number,
  eventLimit = 10,
): string => {
  const { annex, instances, events } = detail;
  const running = runningOf(instances);
  const live = instances.filter((i) => i.state === 'pending' || i.state === 'running').length;
  const heartbeats = instances.filter(
    (i) => (i.state === 'pending' || i.state === 'running') && typeof i.lastHeartbeatAt === 'string',
  ).length;
  const tracksHeartbeats = instances.some((i) => 'lastHeartbeatAt' in i);
  const rows: [string, string][] = [
    ['state', stateColour(annex.state, paint)],
    ['pool', annex.pool],
    ...(costText(annex) === undefined ? [] : ([['cost', costText(annex)]] as [string, string][])),
    [
      'instances',
      `${live} of ${annex.requestedCount} running${live > running ? ` (EC2 state at launch: ${live - running} pending)` : ''} · ${annex.instanceTypes.join(' | ')} · ${annex.market}`,
    ],
    [
      'heartbeats',
      tracksHeartbeats
        ? `${heartbeats} of ${live} instance(s) reported`
        : 'none yet: instances report once the instance agent runs',
    ],
    [annex.endedAt === undefined ? 'expires' : 'ended', expiryText(annex, now)],
    ['idle', `an instance idle for ${formatDuration(annex.idleSeconds)} ends itself`],
    ['image', annex.imageId],
    [
      'created',
      `${formatLocal(new Date(annex.createdAt), now)} (${relativeTo(new Date(annex.createdAt), now)})`,
    ],
    ...(Object.keys(annex.tags).length === 0
      ? []
      : ([
          [
            'tags',
            Object.entries(annex.tags)
              .map(([k, v]) => `${k}=${v}`)
              .join(' '),
          ],
        ] as [string, string][])),
  ];
  const shown = latestEvents(events, eventLimit);
  return [
    `${paint.bold(annex.name)}  ${paint.dim(annex.id)}`,
    ...rows.map(([k, v]) => `  ${k.padEnd(11)}${v}`),
    '',
    renderInstances(instances, now, paint, maxWidth),
    '',
    paint.bold(
      events.length > shown.length
        ? `Events (latest ${shown.length} of ${events.length}; annex events ${annex.name} shows all)`
        : 'Events',
    ),
    renderEvents(shown, now, paint, maxWidth),
  ].join('\n');
};

/** What a pool's users may give of their own: image, user data, key pair (or nothing). */
const bringable = (policy: Pool['policy']): string => {
  const own = [
    policy.allowUserImage ? 'image' : undefined,
    policy.allowUserData ? 'user data' : undefined,
    policy.allowKeyPair ? 'key pair' : undefined,
  ].filter((x) => x !== undefined);
  return own.length === 0 ? 'nothing' : own.join(', ');
};

const quotaText = (quota: Pool['policy']['quota']): string =>
  [
    quota.maxInstances === undefined ? undefined : `${quota.maxInstances} inst`,
    quota.maxVCpus === undefined ? undefined : `${quota.maxVCpus} vCPU`,
    quota.maxMonthlySpendUsd === undefined ? undefined : `$${quota.maxMonthlySpendUsd}/mo`,
  ]
    .filter((x) => x !== undefined)
    .join(', ') || 'none';

export const renderPools = (pools: Pool[], now: Date, paint: Paint, maxWidth?: number): string =>
  pools.length === 0
    ? 'No pools.'
    : table(
        ['POOL', 'SCOPE', 'COLLECTOR', 'CREDENTIAL', 'USERS MAY BRING', 'QUOTA PER USER', 'UPDATED'],
        pools.map((p) => [
          p.name,
          p.scope,
          `${p.collectorHost}:${p.collectorPort}`,
          p.credentialType,
          bringable(p.policy),
          quotaText(p.policy.quota),
          relativeTo(new Date(p.updatedAt), now),
        ]),
        paint,
        maxWidth,
      );

export const checkText = (check: PoolCheck): string =>
  check.reachable
    ? `collector ${check.collectorHost}:${check.collectorPort} is reachable from the cloud (connected in ${check.latencyMs} ms)`
    : `collector ${check.collectorHost}:${check.collectorPort} is unreachable from the cloud: ${check.error?.message ?? 'no connection'} (${check.error?.code ?? 'error'}, after ${check.latencyMs} ms)`;
