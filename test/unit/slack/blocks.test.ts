import { describe, expect, it } from 'vitest';
import {
  cardBlocks,
  endReasonText,
  escape,
  formatDuration,
  listMessage,
  statusCard,
  warningMessage,
  type CardAnnex,
} from '../../../shared/slack/blocks.ts';

const now = new Date('2026-11-25T12:00:00.000Z');
const annex = (over: Partial<CardAnnex> = {}): CardAnnex => ({
  id: 'ax-0123456789abcdef0123',
  name: 'gpu',
  owner: 'arn:aws:iam::123456789012:user/alice',
  state: 'RUNNING',
  pool: 'default',
  instanceTypes: ['p3.2xlarge'],
  requestedCount: 2,
  runningCount: 1,
  expiresAt: '2026-11-25T13:23:00.000Z',
  ...over,
});

const text = (blocks: unknown[]): string => JSON.stringify(blocks);

describe('the status card', () => {
  it('shows name, state, instances running/requested, the countdown and both buttons', () => {
    const blocks = cardBlocks(annex(), now) as {
      type: string;
      text?: { text: string };
      elements?: unknown[];
    }[];

    expect(blocks[0]?.text?.text).toBe(
      '*gpu* · RUNNING\n1/2 instances running · p3.2xlarge · pool default\n' +
        `Expires in *1h 23m* (<!date^${Date.parse('2026-11-25T13:23:00.000Z') / 1000}^{date_short_pretty} {time}|2026-11-25T13:23:00.000Z>)`,
    );
    expect(blocks[1]).toMatchObject({
      type: 'actions',
      elements: [
        { action_id: 'annex_extend', text: { text: 'Extend 1h' } },
        {
          action_id: 'annex_terminate',
          style: 'danger',
          confirm: { confirm: { text: 'Terminate' }, deny: { text: 'Keep it' } },
        },
      ],
    });
    const value = JSON.parse((blocks[1]?.elements?.[0] as { value: string }).value) as unknown;
    expect(value).toEqual({
      id: 'ax-0123456789abcdef0123',
      name: 'gpu',
      owner: 'arn:aws:iam::123456789012:user/alice',
    });
  });

  it('shows the estimated spend when the view has it', () => {
    expect(text(cardBlocks(annex({ estimatedHourlyUsd: 3.06, spendSoFarUsd: 1.5 }), now))).toContain(
      'Estimated spend: ~$3.06/h · $1.50 so far',
    );
    expect(text(cardBlocks(annex(), now))).not.toContain('Estimated spend');
  });

  it('has no buttons once the annex is ending or ended, and says why it ended', () => {
    expect(cardBlocks(annex({ state: 'TERMINATING' }), now)).toHaveLength(1);
    const ended = cardBlocks(
      annex({ state: 'TERMINATED', endReason: 'idle', endedAt: '2026-11-25T11:00:00.000Z' }),
      now,
    );
    expect(ended).toHaveLength(1);
    expect(text(ended)).toContain('its instances sat idle');
  });

  it('escapes what users wrote', () => {
    expect(escape('a<b>&c')).toBe('a&lt;b&gt;&amp;c');
    expect(text(cardBlocks(annex({ pool: '<!channel>' }), now))).toContain('pool &lt;!channel&gt;');
  });

  it('is ephemeral unless asked otherwise, and can replace the original message', () => {
    expect(statusCard(annex(), now)).toMatchObject({ response_type: 'ephemeral', text: 'gpu: RUNNING' });
    expect(
      statusCard(annex(), now, { inChannel: true, replace: true, headline: 'Extended gpu' }),
    ).toMatchObject({
      response_type: 'in_channel',
      replace_original: true,
      text: 'Extended gpu',
    });
  });
});

describe('other messages', () => {
  it('lists only live annexes', () => {
    expect(listMessage([annex({ state: 'TERMINATED' })], now).text).toMatch(/no live annexes/);
    expect(listMessage([annex(), annex({ id: 'ax-1', name: 'cpu' })], now).text).toBe('2 live annexes');
  });

  it('warns with the countdown and the Extend button', () => {
    const warning = warningMessage(annex({ expiresAt: '2026-11-25T12:09:30.000Z' }), now);
    expect(warning.text).toBe('Annex gpu expires in 10m');
    expect(text(warning.blocks ?? [])).toContain('annex_extend');
  });

  it.each([
    ['expired', 'its lease expired'],
    ['idle', 'its instances sat idle'],
    ['budget', 'it reached its budget'],
    ['interrupted', 'EC2 took its spot capacity back'],
    ['user', 'it was terminated'],
    ['something-new', 'it ended (something-new)'],
    [undefined, 'it ended'],
  ])('says why an annex ended: %s', (reason, said) => {
    expect(endReasonText(reason)).toBe(said);
  });

  it('counts down in whole minutes, rounded up', () => {
    expect(formatDuration(3599.5)).toBe('1h');
    expect(formatDuration(5000)).toBe('1h 24m');
    expect(formatDuration(90000)).toBe('1d 1h');
    expect(formatDuration(42)).toBe('42s');
  });
});
