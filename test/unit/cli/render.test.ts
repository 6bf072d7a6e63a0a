import { describe, expect, it } from 'vitest';
import { colourAllowed, Output } from '../../../cli/src/output.ts';
import { costText, renderAnnexList, renderStatus, table } from '../../../cli/src/render.ts';
import type { Annex } from '../../../cli/src/types.ts';

const plain = new Output(
  {
    stdout: { write: () => true },
    stderr: { write: () => true },
    stdin: [] as never,
    env: {},
    now: () => new Date(),
  },
  { json: false, quiet: false, noColor: false },
).paint;
const colours = new Output(
  {
    stdout: { write: () => true, isTTY: true },
    stderr: { write: () => true },
    stdin: [] as never,
    env: {},
    now: () => new Date(),
  },
  { json: false, quiet: false, noColor: false },
).paint;

/** Removes ANSI SGR sequences (ESC [ … m). */
const stripAnsi = (s: string): string =>
  s
    .split(String.fromCharCode(27))
    .map((part, i) => (i === 0 ? part : part.replace(/^\[[0-9;]*m/, '')))
    .join('');

const annex: Annex = {
  id: 'ax-1',
  name: 'ToddsGPU',
  owner: 'arn:aws:iam::123456789012:user/alice',
  pool: 'default',
  state: 'RUNNING',
  market: 'on-demand',
  instanceTypes: ['p2.xlarge'],
  capacityPolicy: 'keep',
  imageId: 'ami-12345678',
  subnetIds: [],
  securityGroupIds: [],
  tags: { project: 'gpu' },
  userDataBytes: 0,
  requestedCount: 1,
  runningCount: 1,
  idleSeconds: 900,
  createdAt: '2025-06-01T12:00:00.000Z',
  updatedAt: '2025-06-01T12:00:00.000Z',
  expiresAt: '2025-06-01T12:50:00.000Z',
  version: 3,
};
const now = new Date('2025-06-01T12:00:08.000Z');

describe('tables', () => {
  it('aligns columns by their visible width, colours or not', () => {
    const rows = [
      ['a', colours.green('RUNNING'), 'x'],
      ['longer', 'FAILED', 'y'],
    ];
    const coloured = table(['NAME', 'STATE', 'END'], rows, colours);
    expect(coloured).toContain(colours.green('RUNNING'));
    const lines = coloured.split('\n').map(stripAnsi);
    expect(lines).toEqual(['NAME    STATE    END', 'a       RUNNING  x', 'longer  FAILED   y']);
  });

  it('cuts the last column to the terminal width', () => {
    const text = table(['A', 'MESSAGE'], [['x', 'm'.repeat(200)]], plain, 40);
    expect(Math.max(...text.split('\n').map((l) => [...l].length))).toBeLessThanOrEqual(40);
    expect(text).toContain('…');
  });
});

describe('colour', () => {
  it('is used only on a terminal, never with NO_COLOR, --no-color or TERM=dumb', () => {
    expect(colourAllowed({ write: () => true, isTTY: true }, {}, false)).toBe(true);
    expect(colourAllowed({ write: () => true, isTTY: false }, {}, false)).toBe(false);
    expect(colourAllowed({ write: () => true, isTTY: true }, { NO_COLOR: '1' }, false)).toBe(false);
    expect(colourAllowed({ write: () => true, isTTY: true }, { NO_COLOR: '' }, false)).toBe(true);
    expect(colourAllowed({ write: () => true, isTTY: true }, {}, true)).toBe(false);
    expect(colourAllowed({ write: () => true, isTTY: true }, { TERM: 'dumb' }, false)).toBe(false);
  });
});

describe('annex views', () => {
  it('lists annexes with a countdown to expiry', () => {
    expect(renderAnnexList([annex], now, plain)).toBe(
      [
        'NAME      STATE    INSTANCES  TYPES      POOL     EXPIRES',
        'ToddsGPU  RUNNING  1/1        p2.xlarge  default  in 49m 52s',
      ].join('\n'),
    );
    expect(renderAnnexList([], now, plain)).toBe('No annexes.');
  });

  it('shows the control plane’s cost estimate and the budget, never a number it did not give', () => {
    expect(costText(annex)).toBeUndefined();
    expect(costText({ ...annex, maxSpend: 25 })).toBe('budget $25.00 (no estimate yet)');
    expect(costText({ ...annex, estimatedHourlyUsd: 0.288, spendSoFarUsd: 0.0512, maxSpend: 25 })).toBe(
      '≈ $0.288/h, $0.051 so far (budget $25.00)',
    );
    expect(costText({ ...annex, estimatedHourlyUsd: 2.5 })).toBe('≈ $2.50/h');
    expect(costText({ ...annex, estimatedHourlyUsd: 0, spendSoFarUsd: 0, unpricedInstances: 2 })).toBe(
      'not priced yet (the control plane prices new instances within a minute)',
    );
    expect(costText({ ...annex, estimatedHourlyUsd: 0.096, spendSoFarUsd: 0.01, unpricedInstances: 1 })).toBe(
      '≈ $0.096/h, $0.01 so far, 1 instance(s) not priced yet',
    );
  });

  it('shows the status with instances, heartbeats and the expiry countdown', () => {
    const text = renderStatus(
      {
        annex,
        instances: [
          {
            instanceId: 'i-0123',
            batch: 1,
            instanceType: 'p2.xlarge',
            market: 'on-demand',
            state: 'running',
            launchedAt: '2025-06-01T12:00:01.000Z',
            updatedAt: '2025-06-01T12:00:01.000Z',
            lastHeartbeatAt: '2025-06-01T12:00:05.000Z',
          },
        ],
        events: [
          { at: '2025-06-01T12:00:00.000Z', type: 'created', message: 'annex requested: 1 × p2.xlarge' },
        ],
      },
      now,
      plain,
    );
    expect(text).toContain('ToddsGPU  ax-1');
    expect(text).toContain('instances  1 of 1 running · p2.xlarge · on-demand');
    expect(text).toContain('heartbeats 1 of 1 instance(s) reported');
    expect(text).toMatch(/expires {4}in 49m 52s at \d\d:50:00/);
    expect(text).toContain('tags       project=gpu');
    expect(
      text
        .split('\n')
        .find((l) => l.startsWith('i-0123'))
        ?.split(/ {2,}/),
    ).toEqual(['i-0123', 'p2.xlarge', 'running', '—', '—', '—', '7s ago', '3s ago']);
    expect(text).toContain('annex requested: 1 × p2.xlarge');
  });
});
