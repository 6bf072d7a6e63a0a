/**
 * The command line: the commands, their options, and the parser (node:util parseArgs, strict).
 * condor_annex's single-dash spellings are translated before this runs (condor.ts).
 */
import { parseArgs } from 'node:util';
import { usageError } from './errors.ts';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** What the value is, for help: `N`, `DURATION`, `FILE`. */
  value?: string;
  help: string;
}

export interface CommandSpec {
  /** `create`, or `pools set` for a subcommand. */
  name: string;
  /** `NAME`, `[NAME]`: the positional arguments, for help and their count. */
  args: { name: string; required: boolean }[];
  summary: string;
  /** A synopsis line for help (after `annex `). */
  synopsis: string;
  /** A shorter one for the command list in `annex --help`, when the synopsis is long. */
  brief?: string;
  description?: string;
  options: Record<string, OptionSpec>;
  /** Whether it talks to the API (and so needs an endpoint and credentials). */
  remote: boolean;
}

export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  endpoint: {
    type: 'string',
    value: 'URL',
    help: 'the Annex API (else ANNEX_API_URL, else the config file)',
  },
  region: { type: 'string', value: 'REGION', help: 'the region requests are signed for' },
  profile: { type: 'string', value: 'NAME', help: 'the AWS profile for credentials (else AWS_PROFILE)' },
  json: { type: 'boolean', help: 'print the result as JSON on stdout (the shapes are in the README)' },
  quiet: { type: 'boolean', short: 'q', help: 'print nothing but errors' },
  'no-color': { type: 'boolean', help: 'no colours (also NO_COLOR=1; colours only ever go to a terminal)' },
  debug: { type: 'boolean', help: 'log each request (method, URL, status, time) on stderr' },
  help: { type: 'boolean', short: 'h', help: 'show help' },
  'access-key-file': {
    type: 'string',
    value: 'FILE',
    help: 'read the AWS access key id from FILE (condor_annex)',
  },
  'secret-key-file': {
    type: 'string',
    value: 'FILE',
    help: 'read the AWS secret access key from FILE (condor_annex)',
  },
};

const ownerArn: OptionSpec = {
  type: 'string',
  value: 'ARN',
  help: 'administrators: act on the annex of this IAM principal',
};
const waitOptions: Record<string, OptionSpec> = {
  'no-wait': { type: 'boolean', help: 'return as soon as the request is accepted' },
  'wait-timeout': {
    type: 'string',
    value: 'DURATION',
    help: 'how long to wait for the instances (default 10m)',
  },
  'idempotency-key': {
    type: 'string',
    value: 'KEY',
    help: 'reuse a key to repeat a request safely (default: a new key per run)',
  },
};

export const COMMANDS: CommandSpec[] = [
  {
    name: 'create',
    args: [{ name: 'NAME', required: true }],
    summary: 'launch instances that join your pool for a fixed lease',
    synopsis: 'create NAME --count N --type TYPE [--type TYPE…] [options]',
    brief: 'create NAME --count N --type TYPE',
    description:
      'Asks for N on-demand instances (or spot ones with --spot), waits until they run, and prints the annex.\n' +
      'On-demand types are tried in order when EC2 has no capacity for one; spot types all go into one\n' +
      'EC2 Fleet. On a terminal it asks for confirmation first (--yes skips that).',
    remote: true,
    options: {
      count: {
        type: 'string',
        short: 'n',
        value: 'N',
        help: 'how many instances (required, unless the Spot Fleet config gives TargetCapacity)',
      },
      type: {
        type: 'string',
        short: 't',
        multiple: true,
        value: 'TYPE',
        help: 'EC2 instance type (required; repeat to give fallbacks)',
      },
      spot: { type: 'boolean', help: 'spot instances, from an EC2 Fleet (price-capacity-optimized)' },
      'on-demand-base': {
        type: 'string',
        value: 'N',
        help: 'with --spot: the first N on-demand, the rest spot (market "mixed")',
      },
      'allocation-strategy': {
        type: 'string',
        value: 'S',
        help: 'spot: price-capacity-optimized (default), capacity-optimized, lowest-price',
      },
      'max-price': { type: 'string', value: 'USD', help: 'spot: the most to pay per instance-hour' },
      vcpus: { type: 'string', value: 'MIN[-MAX]', help: 'hardware needs instead of --type: vCPUs' },
      'memory-gib': { type: 'string', value: 'MIN[-MAX]', help: 'with --vcpus: memory in GiB' },
      gpus: { type: 'string', value: 'MIN[-MAX]', help: 'with --vcpus: GPUs' },
      'spot-fleet-config': {
        type: 'string',
        value: 'FILE',
        help: 'a Spot Fleet request config (JSON; - for stdin), as condor_annex took',
      },
      'capacity-policy': {
        type: 'string',
        value: 'P',
        help: 'when EC2 gives fewer: keep (default) or all-or-nothing',
      },
      'replace-interrupted': { type: 'boolean', help: 'replace spot instances EC2 takes back' },
      'max-replacements': { type: 'string', value: 'N', help: 'at most N replacements (default 3)' },
      'max-spend': {
        type: 'string',
        value: 'USD',
        help: 'end the annex once its estimated spend reaches USD',
      },
      duration: {
        type: 'string',
        value: 'DURATION',
        help: 'lease length (default 50m): every instance ends by then',
      },
      idle: {
        type: 'string',
        value: 'DURATION',
        help: 'an instance idle this long ends itself (default 15m)',
      },
      pool: {
        type: 'string',
        value: 'POOL',
        help: 'the HTCondor pool to join (default: the config file’s, else "default")',
      },
      image: { type: 'string', value: 'AMI', help: 'the image (ami-…; default: the control plane’s)' },
      subnet: {
        type: 'string',
        multiple: true,
        value: 'SUBNET',
        help: 'subnet id, tried in order (repeatable)',
      },
      'security-group': {
        type: 'string',
        multiple: true,
        value: 'SG',
        help: 'security group id (repeatable, or comma-separated)',
      },
      'key-name': { type: 'string', value: 'NAME', help: 'EC2 key pair for ssh' },
      'user-data': { type: 'string', value: 'TEXT', help: 'instance user data, passed to EC2 unchanged' },
      'user-data-file': { type: 'string', value: 'FILE', help: 'instance user data from FILE (- for stdin)' },
      tag: { type: 'string', multiple: true, value: 'KEY=VALUE', help: 'tag the instances (repeatable)' },
      owner: {
        type: 'string',
        multiple: true,
        value: 'USER',
        help: 'HTCondor user whose jobs may run (repeatable or comma-separated; default: the pool’s user)',
      },
      'no-owner': { type: 'boolean', help: 'jobs of any user of the pool may run' },
      yes: { type: 'boolean', short: 'y', help: 'do not ask for confirmation' },
      ...waitOptions,
    },
  },
  {
    name: 'list',
    args: [],
    summary: 'your annexes',
    synopsis: 'list',
    remote: true,
    options: { 'owner-arn': ownerArn },
  },
  {
    name: 'status',
    args: [{ name: 'NAME', required: false }],
    summary: 'an annex: instances, states, heartbeats, expiry countdown, events',
    synopsis: 'status [NAME] [--watch]',
    description: 'Without NAME, the same as annex list.',
    remote: true,
    options: {
      watch: { type: 'boolean', short: 'w', help: 'refresh until the annex ends (Ctrl-C stops)' },
      interval: { type: 'string', value: 'DURATION', help: 'how often --watch refreshes (default 5s)' },
      'owner-arn': ownerArn,
    },
  },
  {
    name: 'extend',
    args: [{ name: 'NAME', required: true }],
    summary: 'change the lease without adding instances',
    synopsis: 'extend NAME (--by DURATION | --until TIME | --duration DURATION) [--idle DURATION]',
    brief: 'extend NAME --by D | --until T',
    description:
      '--by adds to the current expiry; --until sets it; --duration makes the lease end that long from now\n' +
      '(what condor_annex -duration did).',
    remote: true,
    options: {
      by: { type: 'string', value: 'DURATION', help: 'add this to the current expiry' },
      until: { type: 'string', value: 'TIME', help: 'end the lease at this time' },
      duration: { type: 'string', value: 'DURATION', help: 'end the lease this long from now' },
      idle: { type: 'string', value: 'DURATION', help: 'also change the idle time' },
      'owner-arn': ownerArn,
    },
  },
  {
    name: 'add',
    args: [{ name: 'NAME', required: true }],
    summary: 'add instances to an annex, under the same lease',
    synopsis: 'add NAME --count N [--type TYPE…]',
    brief: 'add NAME --count N',
    remote: true,
    options: {
      count: { type: 'string', short: 'n', value: 'N', help: 'how many instances to add (required)' },
      type: {
        type: 'string',
        short: 't',
        multiple: true,
        value: 'TYPE',
        help: 'instance types (default: the annex’s)',
      },
      spot: { type: 'boolean', help: 'add spot instances (default: the annex’s market)' },
      'on-demand-base': { type: 'string', value: 'N', help: 'with --spot: the first N on-demand' },
      'owner-arn': ownerArn,
      ...waitOptions,
    },
  },
  {
    name: 'terminate',
    args: [{ name: 'NAME', required: true }],
    summary: 'end an annex now: its instances terminate',
    synopsis: 'terminate NAME [--yes]',
    description: 'Asks for confirmation on a terminal; elsewhere --yes is required.',
    remote: true,
    options: {
      yes: { type: 'boolean', short: 'y', help: 'do not ask for confirmation' },
      'owner-arn': ownerArn,
    },
  },
  {
    name: 'events',
    args: [{ name: 'NAME', required: true }],
    summary: 'what happened to an annex (the latest 50 events)',
    synopsis: 'events NAME',
    remote: true,
    options: { 'owner-arn': ownerArn },
  },
  {
    name: 'off',
    args: [{ name: 'NAME', required: true }],
    summary: 'run condor_off -master -annex NAME (needs HTCondor’s tools)',
    synopsis: 'off NAME',
    description:
      'Tells the annex’s HTCondor daemons to shut down, as condor_annex did; the instances then end\n' +
      'themselves. Runs condor_off from PATH, so it works where HTCondor’s tools are installed.',
    remote: false,
    options: {},
  },
  {
    name: 'pools list',
    args: [],
    summary: 'the pools you may burst into',
    synopsis: 'pools list',
    remote: true,
    options: {},
  },
  {
    name: 'pools set',
    args: [{ name: 'POOL', required: true }],
    summary: 'register a pool: its collector and the credential instances join with',
    synopsis:
      'pools set POOL --collector HOST[:PORT] (--password-file FILE | --token-key-file FILE) [--policy-file FILE]',
    brief: 'pools set POOL --collector HOST',
    description:
      'The credential is read from FILE (- for stdin), never from the command line, and is stored as an\n' +
      'SSM SecureString; the API never returns it. Administrators register shared pools, users private ones.\n' +
      "The launch policy (--policy-file, JSON) says what the pool's annexes may launch: allowedImageIds,\n" +
      'allowedSubnetIds, allowedSecurityGroupIds, allowedInstanceTypes (g5.*), maxVCpusPerInstance,\n' +
      'maxGpusPerInstance, maxLeaseSeconds, maxLifetimeSeconds, allowUserImage, allowUserData,\n' +
      'allowKeyPair, requireMaxSpend and a per-user quota {maxInstances, maxVCpus, maxMonthlySpendUsd}\n' +
      "(null: no limit). Left out: the stack's image, subnets and security groups only; on a shared pool\n" +
      "no image, user data or key pair of the user's own (a private pool allows them); 100 instances,\n" +
      "800 vCPUs and $5000 a month per user; the stack's longest lease, 30 days of life.",
    remote: true,
    options: {
      collector: { type: 'string', value: 'HOST[:PORT]', help: 'the collector (port 9618 unless given)' },
      'password-file': { type: 'string', value: 'FILE', help: 'the pool password' },
      'token-key-file': { type: 'string', value: 'FILE', help: 'the IDTOKENS signing key' },
      'policy-file': { type: 'string', value: 'FILE', help: 'the launch policy, as JSON (see below)' },
      scope: {
        type: 'string',
        value: 'shared|private',
        help: 'default: shared for administrators, else private',
      },
    },
  },
  {
    name: 'pools check',
    args: [{ name: 'POOL', required: true }],
    summary: 'test from the cloud that the pool’s collector is reachable',
    synopsis: 'pools check POOL',
    remote: true,
    options: {},
  },
  {
    name: 'check-setup',
    args: [],
    summary: 'check endpoint, region, credentials, pool and collector reachability',
    synopsis: 'check-setup [--pool POOL]',
    remote: true,
    options: {
      pool: {
        type: 'string',
        value: 'POOL',
        help: 'the pool to check (default: the config file’s, else "default")',
      },
    },
  },
  {
    name: 'configure',
    args: [],
    summary: 'save the endpoint, region, profile and pool to use',
    synopsis: 'configure [--endpoint URL] [--region REGION] [--profile NAME] [--pool POOL]',
    brief: 'configure [--endpoint URL] …',
    description:
      'Writes ~/.config/annex/config.json (or $ANNEX_CONFIG_FILE). With no options it asks on a terminal,\n' +
      'and prints the current configuration elsewhere.',
    remote: false,
    options: {
      pool: { type: 'string', value: 'POOL', help: 'the pool create and check-setup use by default' },
    },
  },
];

export const findCommand = (name: string): CommandSpec | undefined => COMMANDS.find((c) => c.name === name);

export type OptionValue = string | boolean | string[] | undefined;
export type Options = Record<string, OptionValue>;

export type Invocation =
  | { kind: 'help'; topic?: string }
  | { kind: 'version' }
  | { kind: 'command'; command: CommandSpec; positionals: string[]; options: Options };

const takesValue = (name: string, specs: Record<string, OptionSpec>): boolean => {
  const long = name.startsWith('--') ? name.slice(2) : undefined;
  if (long !== undefined) return !long.includes('=') && specs[long]?.type === 'string';
  const short = name.slice(1);
  return short.length === 1 && Object.values(specs).some((s) => s.short === short && s.type === 'string');
};

const toParseArgs = (specs: Record<string, OptionSpec>) =>
  Object.fromEntries(
    Object.entries(specs).map(([name, s]) => [
      name,
      {
        type: s.type,
        ...(s.short === undefined ? {} : { short: s.short }),
        ...(s.multiple ? { multiple: true } : {}),
      },
    ]),
  );

/** Rewrites parseArgs' messages into one short line that names the option. */
const parseError = (e: unknown, command: string): Error => {
  const message = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: string }).code;
  const option = /(--[A-Za-z][\w-]*)/.exec(message)?.[1] ?? /'(-[^' ,]+)/.exec(message)?.[1];
  const help = command === '' ? 'see annex --help' : `see annex ${command} --help`;
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    return usageError(`unknown option ${option ?? ''}${command === '' ? '' : ` for annex ${command}`}`, help);
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    return /argument missing/.test(message)
      ? usageError(`${option ?? 'an option'} needs a value`, help)
      : usageError(`${option ?? 'an option'} takes no value`, help);
  }
  return usageError(message.split('\n')[0] ?? message, help);
};

/**
 * Parses a modern command line: global options may come before or after the command; a command's
 * own options come after it. `pools` takes a subcommand.
 */
export const parseCommandLine = (argv: readonly string[]): Invocation => {
  let index = -1;
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] ?? '';
    if (token === '--') break;
    if (token.startsWith('-') && token !== '-') {
      if (takesValue(token, GLOBAL_OPTIONS)) i++;
      continue;
    }
    index = i;
    break;
  }
  const before = index === -1 ? [...argv] : argv.slice(0, index);
  if (index === -1) {
    const { values } = parseGlobals(before);
    if (values.version === true) return { kind: 'version' };
    return { kind: 'help' };
  }
  let name = argv[index] ?? '';
  let rest = argv.slice(index + 1);
  if (name === 'help') return { kind: 'help', ...(rest[0] === undefined ? {} : { topic: rest.join(' ') }) };
  if (name === 'pools') {
    const sub = rest[0];
    if (sub === undefined || sub.startsWith('-')) {
      if (rest.includes('--help') || rest.includes('-h')) return { kind: 'help', topic: 'pools' };
      throw usageError('annex pools needs a subcommand: list, set or check', 'see annex pools --help');
    }
    name = `pools ${sub}`;
    rest = rest.slice(1);
  }
  const command = findCommand(name);
  if (command === undefined) {
    throw usageError(`unknown command ${JSON.stringify(name)}`, 'see annex --help');
  }
  const specs = { ...GLOBAL_OPTIONS, ...command.options };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...before, ...rest],
      options: toParseArgs(specs),
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw parseError(e, command.name);
  }
  const options = parsed.values as Options;
  if (options.help === true) return { kind: 'help', topic: command.name };
  const required = command.args.filter((a) => a.required).length;
  if (parsed.positionals.length < required) {
    throw usageError(
      `annex ${command.name} needs ${command.args.map((a) => a.name).join(' ')}`,
      `usage: annex ${command.synopsis}`,
    );
  }
  if (parsed.positionals.length > command.args.length) {
    throw usageError(
      `unexpected argument ${JSON.stringify(parsed.positionals[command.args.length])} for annex ${command.name}`,
      `usage: annex ${command.synopsis}`,
    );
  }
  return { kind: 'command', command, positionals: parsed.positionals, options };
};

const parseGlobals = (args: string[]) => {
  try {
    return parseArgs({
      args,
      options: { ...toParseArgs(GLOBAL_OPTIONS), version: { type: 'boolean', short: 'V' } },
      allowPositionals: false,
      strict: true,
    });
  } catch (e) {
    throw parseError(e, '');
  }
};

/** `a, b` → `['a', 'b']`: a comma-separated option value, blanks dropped. */
export const splitList = (value: string): string[] =>
  value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
