/**
 * Parses the text of `/annex …` into a command. A refusal is a ValidationError naming the word of
 * the command that is wrong (`count`, `type`, `duration`, …); nothing is written for it.
 */
import { validationError } from '../domain/errors.ts';
import { NAME } from '../http/params.ts';
import type { SlackCommand } from './model.ts';

const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\.[a-z0-9-]+$/;
const DURATION = /^(?:(\d{1,4})d)?(?:(\d{1,5})h)?(?:(\d{1,6})m)?(?:(\d{1,7})s)?$/;

export const USAGE = [
  '`/annex create NAME count=N type=T [spot] [duration=2h] [idle=15m] [pool=P]`',
  '`/annex list`',
  '`/annex status NAME`',
  '`/annex extend NAME 1h`',
  '`/annex terminate NAME`',
  '`/annex help`',
].join('\n');

/** `90m`, `2h`, `1h30m`, `1d`, `45s` → seconds; the field is named when it is not one. */
export const parseDuration = (value: string, field: string): number => {
  const m = DURATION.exec(value.trim().toLowerCase());
  if (value.trim() === '' || m === null)
    throw validationError(field, 'must be a duration such as 90m, 2h or 1h30m');
  const [, d = '0', h = '0', min = '0', s = '0'] = m;
  const seconds = Number(d) * 86400 + Number(h) * 3600 + Number(min) * 60 + Number(s);
  if (seconds <= 0) throw validationError(field, 'must be longer than zero');
  return seconds;
};

const annexName = (value: string | undefined): string => {
  if (value === undefined) throw validationError('name', 'required');
  if (!NAME.test(value)) throw validationError('name', 'must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$');
  return value;
};

const noMore = (words: string[], from: number): void => {
  const extra = words[from];
  if (extra !== undefined) throw validationError(extra, 'unexpected word');
};

const parseCreate = (words: string[]): SlackCommand => {
  const name = annexName(words[1]);
  let count: number | undefined;
  let instanceTypes: string[] | undefined;
  let spot = false;
  const optional: { durationSeconds?: number; idleSeconds?: number; pool?: string } = {};
  for (const word of words.slice(2)) {
    if (word.toLowerCase() === 'spot') {
      spot = true;
      continue;
    }
    const eq = word.indexOf('=');
    const key = eq === -1 ? word : word.slice(0, eq).toLowerCase();
    const value = eq === -1 ? '' : word.slice(eq + 1);
    if (eq === -1) throw validationError(word, 'unexpected word (options are key=value)');
    switch (key) {
      case 'count':
        if (!/^\d{1,4}$/.test(value) || Number(value) < 1)
          throw validationError('count', 'must be a whole number ≥ 1');
        count = Number(value);
        break;
      case 'type':
      case 'types':
        instanceTypes = value.split(',').filter((t) => t !== '');
        if (
          instanceTypes.length === 0 ||
          instanceTypes.length > 10 ||
          !instanceTypes.every((t) => INSTANCE_TYPE.test(t))
        ) {
          throw validationError(
            'type',
            'must be 1-10 EC2 instance types, comma-separated (m5.large,m5a.large)',
          );
        }
        break;
      case 'duration':
        optional.durationSeconds = parseDuration(value, 'duration');
        break;
      case 'idle':
        optional.idleSeconds = parseDuration(value, 'idle');
        break;
      case 'pool':
        if (!NAME.test(value)) throw validationError('pool', 'must be a pool name');
        optional.pool = value;
        break;
      default:
        throw validationError(key, 'unknown option (count, type, duration, idle, pool, spot)');
    }
  }
  if (count === undefined) throw validationError('count', 'required (count=N)');
  if (instanceTypes === undefined) throw validationError('type', 'required (type=T)');
  return { kind: 'create', name, count, instanceTypes, spot, ...optional };
};

export const parseCommand = (text: string): SlackCommand => {
  const words = text
    .trim()
    .split(/\s+/)
    .filter((w) => w !== '');
  const sub = (words[0] ?? 'help').toLowerCase();
  switch (sub) {
    case 'help':
      return { kind: 'help' };
    case 'list':
    case 'ls':
      noMore(words, 1);
      return { kind: 'list' };
    case 'status': {
      const name = annexName(words[1]);
      noMore(words, 2);
      return { kind: 'status', name };
    }
    case 'extend': {
      const name = annexName(words[1]);
      const bySeconds = words[2] === undefined ? 3600 : parseDuration(words[2], 'duration');
      noMore(words, 3);
      return { kind: 'extend', name, bySeconds };
    }
    case 'terminate':
    case 'end': {
      const name = annexName(words[1]);
      noMore(words, 2);
      return { kind: 'terminate', name };
    }
    case 'create':
      return parseCreate(words);
    default:
      throw validationError('command', `unknown subcommand ${sub}`);
  }
};
