import { describe, expect, it } from 'vitest';
import { isAnnexError } from '../../../shared/domain/errors.ts';
import { parseCommand, parseDuration } from '../../../shared/slack/command.ts';

const refusal = (text: string): string | undefined => {
  try {
    parseCommand(text);
  } catch (e) {
    if (isAnnexError(e, 'ValidationError')) return e.field;
    throw e;
  }
  return undefined;
};

describe('parseCommand', () => {
  it('reads create with every option', () => {
    expect(
      parseCommand('create gpu count=2 type=p3.2xlarge,g5.xlarge spot duration=2h idle=15m pool=lab'),
    ).toEqual({
      kind: 'create',
      name: 'gpu',
      count: 2,
      instanceTypes: ['p3.2xlarge', 'g5.xlarge'],
      spot: true,
      durationSeconds: 7200,
      idleSeconds: 900,
      pool: 'lab',
    });
    expect(parseCommand('  create  gpu   count=1 type=m5.large ')).toEqual({
      kind: 'create',
      name: 'gpu',
      count: 1,
      instanceTypes: ['m5.large'],
      spot: false,
    });
  });

  it('reads the other subcommands', () => {
    expect(parseCommand('')).toEqual({ kind: 'help' });
    expect(parseCommand('help')).toEqual({ kind: 'help' });
    expect(parseCommand('list')).toEqual({ kind: 'list' });
    expect(parseCommand('status gpu')).toEqual({ kind: 'status', name: 'gpu' });
    expect(parseCommand('extend gpu 90m')).toEqual({ kind: 'extend', name: 'gpu', bySeconds: 5400 });
    expect(parseCommand('extend gpu')).toEqual({ kind: 'extend', name: 'gpu', bySeconds: 3600 });
    expect(parseCommand('terminate gpu')).toEqual({ kind: 'terminate', name: 'gpu' });
  });

  it.each([
    ['launch gpu', 'command'],
    ['create', 'name'],
    ['create -bad count=1 type=m5.large', 'name'],
    ['create gpu type=m5.large', 'count'],
    ['create gpu count=0 type=m5.large', 'count'],
    ['create gpu count=two type=m5.large', 'count'],
    ['create gpu count=1', 'type'],
    ['create gpu count=1 type=M5.LARGE', 'type'],
    ['create gpu count=1 type=m5.large duration=2', 'duration'],
    ['create gpu count=1 type=m5.large idle=soon', 'idle'],
    ['create gpu count=1 type=m5.large pool=a/b', 'pool'],
    ['create gpu count=1 type=m5.large colour=red', 'colour'],
    ['create gpu count=1 type=m5.large now', 'now'],
    ['status', 'name'],
    ['status gpu extra', 'extra'],
    ['extend gpu forever', 'duration'],
  ])('refuses %j naming %s', (text, field) => {
    expect(refusal(text)).toBe(field);
  });
});

describe('parseDuration', () => {
  it.each([
    ['90m', 5400],
    ['2h', 7200],
    ['1h30m', 5400],
    ['1d', 86400],
    ['45s', 45],
    ['1H', 3600],
  ])('%s is %d seconds', (text, seconds) => {
    expect(parseDuration(text, 'duration')).toBe(seconds);
  });

  it.each(['', '0m', '2', 'h', '1h 30m', '-1h'])('refuses %j', (text) => {
    expect(() => parseDuration(text, 'duration')).toThrow(/^duration: /);
  });
});
