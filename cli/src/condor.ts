/**
 * condor_annex's command line, translated into annex's: the classic
 * `condor_annex -count 1 -annex-name ToddsGPU -aws-on-demand-instance-type p2.xlarge` works
 * unchanged with `annex` in its place. Options for something the control plane now does (setup,
 * lease functions, endpoints) are refused with a message naming them, never silently dropped.
 * `-slots N` and `-aws-spot-fleet-config-file F` ask for a Spot Fleet, as they did. `-owner a,b` and
 * `-no-owner` become `--owner a,b` and `--no-owner`: who may run jobs on the annex (its START
 * expression), as in condor_annex. CONDOR_OPTIONS is the one table: `annex help condor_annex` prints
 * it and a test holds the README's copy to it.
 */
import { COMMANDS, GLOBAL_OPTIONS, splitList, type OptionSpec } from './args.ts';
import { usageError } from './errors.ts';
import { parseDecimalHours } from './time.ts';

type Handler =
  | { kind: 'value'; to: (value: string, out: Translation, flag: string) => void }
  | { kind: 'flag'; to: (out: Translation) => void }
  | { kind: 'tag' }
  | { kind: 'refuse'; values: number; message: string; hint?: string };

/** One condor_annex option: how it is parsed, and what `annex help condor_annex` and the README say of it. */
type CondorOption = Handler & {
  /** What follows the option, for help: `N`, `FILE`. */
  arg?: string;
  /** What it does in annex. */
  does: string;
};

interface Translation {
  name?: string;
  command?: 'status' | 'check-setup' | 'off' | 'help';
  count?: string;
  /** A Spot Fleet request (-slots, -aws-spot-fleet, -aws-spot-fleet-config-file). */
  fleet?: boolean;
  fleetConfig?: string;
  duration?: number;
  idle?: number;
  userData?: string[];
  defaultUserData?: string[];
  args: string[];
}

const value = (
  arg: string,
  does: string,
  to: (value: string, out: Translation, flag: string) => void,
): CondorOption => ({ kind: 'value', to, arg, does });
const flag = (does: string, to: (out: Translation) => void): CondorOption => ({ kind: 'flag', to, does });
const modern = (arg: string, option: string, does: string): CondorOption =>
  value(arg, `${does} (annex's --${option})`, (v, out) => {
    out.args.push(`--${option}`, v);
  });
const refuse = (values: number, message: string, hint?: string): CondorOption => ({
  kind: 'refuse',
  values,
  message,
  ...(hint === undefined ? {} : { hint }),
  ...(values === 0 ? {} : { arg: 'X' }),
  does: `refused: ${message.replace(/^is (not \w+): /, '$1, ')}`,
});
const managed = (what: string) =>
  refuse(1, `is not needed: the Annex control plane manages ${what}`, 'leave it out');

const setName = (v: string, out: Translation): void => {
  out.name = v;
};

/** Every condor_annex option annex understands, by its exact spelling: the parser, the help and the README read it. */
export const CONDOR_OPTIONS: Record<string, CondorOption> = {
  '-count': value('N', 'how many instances; with -annex-name, creates the annex', (v, out) => {
    out.count = v;
  }),
  '-annex-name': value('NAME', 'the annex', setName),
  '-annex': value('NAME', 'the same as -annex-name', setName),
  '-aws-on-demand': flag('on-demand instances (the default)', () => undefined),
  '-aws-on-demand-instance-type': modern('TYPE', 'type', 'the instance type'),
  '-aws-on-demand-ami-id': modern('AMI', 'image', "the image, else the stack's default"),
  '-aws-on-demand-security-group-ids': value(
    'ID,ID…',
    "security groups (annex's --security-group, one each)",
    (v, out) => {
      for (const id of splitList(v)) out.args.push('--security-group', id);
    },
  ),
  '-aws-on-demand-key-name': modern('KEY', 'key-name', 'the EC2 key pair'),
  '-duration': value(
    'HOURS',
    'the lease, in decimal hours; with a name and no -count, resets it',
    (v, out, f) => {
      out.duration = parseDecimalHours(v, f);
    },
  ),
  '-idle': value('HOURS', 'idle time before an instance shuts down, in decimal hours', (v, out, f) => {
    out.idle = parseDecimalHours(v, f);
  }),
  '-aws-user-data': value('TEXT', 'user data, passed on byte for byte', (v, out) => {
    out.userData = ['--user-data', v];
  }),
  '-aws-user-data-file': value('FILE', 'user data from FILE', (v, out) => {
    out.userData = ['--user-data-file', v];
  }),
  '-aws-default-user-data': value('TEXT', 'user data when no -aws-user-data is given', (v, out) => {
    out.defaultUserData = ['--user-data', v];
  }),
  '-aws-default-user-data-file': value('FILE', 'the same, from FILE', (v, out) => {
    out.defaultUserData = ['--user-data-file', v];
  }),
  '-aws-region': modern('REGION', 'region', 'the region requests are signed for'),
  '-aws-access-key-file': modern('FILE', 'access-key-file', 'the AWS access key id, from FILE'),
  '-aws-secret-key-file': modern('FILE', 'secret-key-file', 'the AWS secret access key, from FILE'),
  '-tag': { kind: 'tag', arg: 'NAME VALUE', does: "a tag on the annex's instances (repeatable)" },
  '-owner': value('USER,USER…', "the HTCondor users whose jobs may run (annex's --owner)", (v, out) => {
    out.args.push('--owner', v);
  }),
  '-no-owner': flag("any user of the pool may run jobs (annex's --no-owner)", (out) =>
    out.args.push('--no-owner'),
  ),
  '-yes': flag('do not ask before creating', (out) => out.args.push('--yes')),
  '-status': flag('show the annex (with -annex-name) or all of yours', (out) => {
    out.command = 'status';
  }),
  '-classad': flag("print JSON (annex's --json)", (out) => out.args.push('--json')),
  '-check-setup': flag('check the setup (annex check-setup)', (out) => {
    out.command = 'check-setup';
  }),
  '-debug': flag('log each request on stderr', (out) => out.args.push('--debug')),
  '-help': flag('this help', (out) => {
    out.command = 'help';
  }),
  // condor_annex sized a Spot Fleet in slots (its TargetCapacity); one instance per unit here.
  '-slots': value('N', "a Spot Fleet of N instances (overrides a config's TargetCapacity)", (v, out) => {
    out.count = v;
    out.fleet = true;
  }),
  '-aws-spot-fleet': flag(
    'spot instances of the -aws-on-demand-instance-type(s), in one EC2 Fleet',
    (out) => {
      out.fleet = true;
    },
  ),
  '-aws-spot-fleet-config-file': value(
    'FILE',
    "a Spot Fleet request config (- for stdin; annex's --spot-fleet-config)",
    (v, out) => {
      out.fleet = true;
      out.fleetConfig = v;
      out.args.push('--spot-fleet-config', v);
    },
  ),
  '-aws-spot-fleet-lease-function-arn': managed('lease expiry'),
  '-setup': refuse(
    0,
    'is not needed: an administrator deploys the control plane once (serverless deploy)',
    'point annex at it with annex configure --endpoint URL; annex check-setup verifies it',
  ),
  '-config-dir': refuse(
    1,
    'is not supported: the control plane renders each instance’s HTCondor configuration from the pool registration',
  ),
  '-aws-ec2-url': managed('the EC2 endpoint'),
  '-aws-events-url': managed('the EventBridge endpoint'),
  '-aws-lambda-url': managed('the Lambda endpoint'),
  '-aws-s3-url': managed('S3'),
  '-aws-on-demand-lease-function-arn': managed('lease expiry'),
  '-aws-on-demand-instance-profile-arn': managed('the instance profile'),
};

/** condor_annex's arguments (words, not options). */
export const CONDOR_ARGUMENTS: Record<'status' | 'off', string> = {
  status: 'the same as -status',
  off: 'with -annex-name: condor_off -master -annex NAME (annex off)',
};

/** The option table as rows: spelling with its argument, and what it does. */
export const condorOptionRows = (): [string, string][] => [
  ...Object.entries(CONDOR_OPTIONS).map(([name, option]): [string, string] => [
    option.arg === undefined ? name : `${name} ${option.arg}`,
    option.does,
  ]),
  ...Object.entries(CONDOR_ARGUMENTS),
];

/** Whether a command line is written in condor_annex's style (it uses one of its options). */
export const isCondorStyle = (argv: readonly string[]): boolean => {
  for (const token of argv) {
    if (token === '--') return false;
    if (Object.hasOwn(CONDOR_OPTIONS, token)) return true;
  }
  return false;
};

const MODERN_OPTIONS: Record<string, OptionSpec> = Object.assign(
  {},
  GLOBAL_OPTIONS,
  ...COMMANDS.map((c) => c.options),
) as Record<string, OptionSpec>;

/**
 * condor_annex arguments → annex arguments. Modern `--options` may be mixed in and pass through.
 * What it becomes:
 * - `-count N -annex-name X …` → `create X --count N …`
 * - `-annex-name X -duration H` (no count) → `extend X --duration <H hours>` (reset the lease)
 * - `[-annex-name X] -status` or `… status` → `status [X]`; `-check-setup` → `check-setup`
 * - `-annex-name X off` → `off X`
 */
export const translateCondorArgs = (argv: readonly string[]): string[] => {
  const out: Translation = { args: [] };
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] ?? '';
    const handler = Object.hasOwn(CONDOR_OPTIONS, token) ? CONDOR_OPTIONS[token] : undefined;
    if (handler !== undefined) {
      if (handler.kind === 'refuse') {
        throw usageError(`${token} ${handler.message}`, handler.hint);
      }
      if (handler.kind === 'flag') {
        handler.to(out);
        continue;
      }
      if (handler.kind === 'tag') {
        const [tagName, tagValue] = [argv[i + 1], argv[i + 2]];
        if (tagName === undefined || tagValue === undefined)
          throw usageError('-tag needs a name and a value', 'for example -tag project gpu-2025');
        if (tagName.includes('='))
          throw usageError(`-tag ${JSON.stringify(tagName)}: a tag name cannot contain "="`);
        out.args.push('--tag', `${tagName}=${tagValue}`);
        i += 2;
        continue;
      }
      const v = argv[i + 1];
      if (v === undefined) throw usageError(`${token} needs a value`, 'see annex --help');
      i++;
      handler.to(v, out, token);
      continue;
    }
    if (token.startsWith('--')) {
      out.args.push(token);
      const long = token.slice(2);
      if (!long.includes('=') && MODERN_OPTIONS[long]?.type === 'string' && argv[i + 1] !== undefined) {
        out.args.push(argv[i + 1] ?? '');
        i++;
      }
      continue;
    }
    if (Object.hasOwn(CONDOR_ARGUMENTS, token)) {
      out.command = token as keyof typeof CONDOR_ARGUMENTS;
      continue;
    }
    if (token.startsWith('-') && token.length > 2) {
      throw usageError(
        `unknown condor_annex option ${token}`,
        'see annex --help for the options annex understands',
      );
    }
    if (COMMANDS.some((c) => c.name.split(' ')[0] === token)) {
      throw usageError(
        `condor_annex options cannot be mixed with the ${token} command`,
        `write annex ${token} with --options (see annex ${token} --help)`,
      );
    }
    throw usageError(`unexpected argument ${JSON.stringify(token)}`, 'see annex --help');
  }
  return assemble(out);
};

const assemble = (out: Translation): string[] => {
  const name = out.name === undefined ? [] : [out.name];
  const rest = out.args;
  switch (out.command) {
    case 'help':
      return ['help'];
    case 'check-setup':
      return ['check-setup', ...rest];
    case 'status':
      return ['status', ...name, ...rest];
    case 'off':
      if (out.name === undefined) throw usageError('off needs -annex-name NAME');
      return ['off', ...name, ...rest];
    default:
      break;
  }
  if (out.count !== undefined || out.fleetConfig !== undefined) {
    if (out.name === undefined) throw usageError('-annex-name NAME is required to create an annex');
    return [
      'create',
      out.name,
      ...(out.count === undefined ? [] : ['--count', out.count]),
      // Without a config file, -aws-spot-fleet / -slots ask for spot instances of the -type(s).
      ...(out.fleet === true && out.fleetConfig === undefined ? ['--spot'] : []),
      ...(out.duration === undefined ? [] : ['--duration', `${out.duration}s`]),
      ...(out.idle === undefined ? [] : ['--idle', `${out.idle}s`]),
      ...(out.userData ?? out.defaultUserData ?? []),
      ...rest,
    ];
  }
  if (out.duration !== undefined) {
    if (out.name === undefined)
      throw usageError('-duration without -count resets a lease: give -annex-name NAME');
    return [
      'extend',
      out.name,
      '--duration',
      `${out.duration}s`,
      ...(out.idle === undefined ? [] : ['--idle', `${out.idle}s`]),
      ...(out.userData ?? out.defaultUserData ?? []),
      ...rest,
    ];
  }
  if (out.idle !== undefined) {
    throw usageError(
      '-idle without -count needs -duration too',
      'to change a running annex: -annex-name NAME -duration HOURS -idle HOURS',
    );
  }
  throw usageError(
    'nothing to do',
    'give -count N to create an annex, -annex-name NAME -duration HOURS to reset its lease, or -status',
  );
};
