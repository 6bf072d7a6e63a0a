/**
 * The HTCondor configuration fragment an annex instance runs with. Pure: no AWS, no I/O, no clock.
 *
 * It follows what condor_annex put on its instances (AnnexName/IsAnnex in the startd and master
 * ads, STARTD_NOCLAIM_SHUTDOWN, a master that exits once its startd has gone and a shutdown
 * script that powers the machine off) and adds what a lease needs: the lease's end as an epoch
 * (`AnnexExpiresAt`), a START expression that runs only the annex's users' jobs and only jobs
 * whose declared duration fits in the time left, and encrypted, authenticated connections only.
 *
 * Every value that comes from a request (annex name, owner ARN, user names, hosts) is either
 * checked against a strict pattern or written as an escaped ClassAd string literal, so nothing a
 * caller controls can end a line, start a macro (`$(`) or leave its string: a value that cannot be
 * represented is refused with a ValidationError naming it.
 */
import { validationError } from '../domain/errors.ts';
import type { CredentialType } from '../domain/model.ts';

/** Where the boot script writes the pool password (password pools only). */
export const PASSWORD_DIRECTORY = '/etc/condor/passwords.d';
export const POOL_CREDENTIAL_FILE = `${PASSWORD_DIRECTORY}/POOL`;
/**
 * Where the boot script and the agent install the instance's own IDTOKEN (IDTOKENS pools): the
 * daemons' token directory, SEC_TOKEN_SYSTEM_DIRECTORY (root-only, as HTCondor requires).
 */
export const TOKEN_DIRECTORY = '/etc/condor/tokens.d';
export const TOKEN_FILE = `${TOKEN_DIRECTORY}/annex`;
/**
 * The two ways a job opts in to running on a rented machine: condor_annex's `+MayUseAWS = True`
 * (so existing submit files work) and HTCondor annex's `+TargetAnnexName = "<annex name>"`.
 */
export const OPT_IN_EXPRESSION = '(TARGET.MayUseAWS =?= true || TARGET.TargetAnnexName =?= MY.AnnexName)';
/** Provided by the image: powers the machine off (its shutdown behaviour is terminate). */
export const POWEROFF_SCRIPT = '/usr/libexec/annex/poweroff';
/**
 * The job attribute a job declares its run time with: `allowed_job_duration = <seconds>` in the
 * submit file (HTCondor ≥ 9.4). HTCondor holds a job that runs longer, so it is an upper bound
 * the START expression can trust.
 */
export const RUNTIME_ATTRIBUTE = 'AllowedJobDuration';
/** The instance id shown in a fragment rendered for no instance in particular. */
export const PLACEHOLDER_INSTANCE_ID = 'i-00000000000000000';
/** The attributes every annex daemon advertises (startd and master ads). */
export const ANNEX_ATTRIBUTES = [
  'AnnexName',
  'IsAnnex',
  'AnnexId',
  'AnnexOwner',
  'AnnexExpiresAt',
  'EC2InstanceID',
] as const;

/** HTCondor user names the annex runs jobs for: `user` (job Owner) or `user@domain` (job User). */
export const CONDOR_USER = /^[A-Za-z0-9._-]{1,64}(@[A-Za-z0-9.-]{1,253})?$/;
export const MAX_ALLOWED_USERS = 20;

export interface CondorConfigInput {
  annexId: string;
  annexName: string;
  /** The owner's IAM principal ARN. */
  owner: string;
  /** When the lease ends (ISO 8601). */
  expiresAt: string;
  instanceId: string;
  /** Only when the instance has one: HTCondor then advertises it (TCP_FORWARDING_HOST). */
  publicIpAddress?: string;
  idleSeconds: number;
  collector: { host: string; port: number };
  credentialType: CredentialType;
  /** Empty: any user of the pool may run jobs here. */
  allowedUsers: readonly string[];
  /** IDTOKENS only: the pool's TRUST_DOMAIN (default: the collector host, as get_htcondor sets it). */
  trustDomain?: string;
}

const ANNEX_ID = /^ax-[0-9a-f]{1,40}$/;
const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
const HOST = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/**
 * A ClassAd string literal that survives the config reader: `\` and `"` are escaped as ClassAd
 * strings require, and `$` becomes `$(DOLLAR)`, HTCondor's own literal dollar, so no macro or
 * `$ENV(...)` can start inside it. Only printable ASCII can be written on one line safely;
 * anything else (a newline above all) is refused.
 */
export const classAdString = (value: string, field: string): string => {
  if (!PRINTABLE_ASCII.test(value)) {
    throw validationError(field, 'must be printable ASCII (no newline or control character)');
  }
  const escaped = value.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\$/g, '$(DOLLAR)');
  return `"${escaped}"`;
};

const checked = (value: string, pattern: RegExp, field: string, what: string): string => {
  if (!pattern.test(value)) throw validationError(field, `must be ${what}`);
  return value;
};

const wholeSeconds = (value: number, field: string): number => {
  if (!Number.isSafeInteger(value) || value < 0) throw validationError(field, 'must be a whole number ≥ 0');
  return value;
};

const epochSeconds = (iso: string, field: string): number => {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw validationError(field, 'must be an ISO 8601 time');
  return Math.floor(ms / 1000);
};

/**
 * The START expression: jobs that opted in to this annex, of the annex's users only, and only jobs
 * that fit in what is left of the lease.
 */
export const startExpression = (allowedUsers: readonly string[]): string => {
  if (allowedUsers.length > MAX_ALLOWED_USERS) {
    throw validationError('allowedUsers', `at most ${MAX_ALLOWED_USERS} users`);
  }
  const users = allowedUsers.map((user, i) => {
    const field = `allowedUsers.${i}`;
    checked(user, CONDOR_USER, field, 'an HTCondor user name (user or user@domain)');
    // `user@domain` is the job's User attribute; a bare name is its Owner (the submitter's login).
    return `TARGET.${user.includes('@') ? 'User' : 'Owner'} =?= ${classAdString(user, field)}`;
  });
  const fits =
    `(TARGET.${RUNTIME_ATTRIBUTE} =?= undefined || ` +
    `(MY.AnnexExpiresAt - time()) >= TARGET.${RUNTIME_ATTRIBUTE})`;
  return [OPT_IN_EXPRESSION, ...(users.length === 0 ? [] : [`(${users.join(' || ')})`]), fits].join(' && ');
};

/** Renders the fragment. Throws a ValidationError naming the first value it cannot represent. */
export const renderCondorConfig = (input: CondorConfigInput): string => {
  const annexId = checked(input.annexId, ANNEX_ID, 'annexId', 'an annex id (ax-…)');
  const instanceId = checked(input.instanceId, INSTANCE_ID, 'instanceId', 'an EC2 instance id (i-…)');
  const host = checked(input.collector.host, HOST, 'collectorHost', 'a host name or IPv4 address');
  if (!Number.isInteger(input.collector.port) || input.collector.port < 1 || input.collector.port > 65535) {
    throw validationError('collectorPort', 'must be a port number');
  }
  const publicIp =
    input.publicIpAddress === undefined
      ? undefined
      : checked(input.publicIpAddress, IPV4, 'publicIpAddress', 'an IPv4 address');
  const idleSeconds = wholeSeconds(input.idleSeconds, 'idleSeconds');
  const expiresAt = epochSeconds(input.expiresAt, 'expiresAt');
  const attrs = ANNEX_ATTRIBUTES.join(' ');
  const idtokens = input.credentialType === 'idtokens-signing-key';
  const trustDomain =
    input.trustDomain === undefined ? host : checked(input.trustDomain, HOST, 'trustDomain', 'a domain name');

  const lines = [
    `# Annex ${annexId}: HTCondor configuration for instance ${instanceId}.`,
    '# Rendered by the Annex control plane; written by the boot script. Do not edit.',
    '',
    '# What this machine is: condor_status -annex NAME selects on AnnexName.',
    `AnnexName = ${classAdString(input.annexName, 'name')}`,
    'IsAnnex = True',
    `AnnexId = ${classAdString(annexId, 'annexId')}`,
    `AnnexOwner = ${classAdString(input.owner, 'owner')}`,
    '# The end of the lease, in seconds since the epoch (compare with time()).',
    `AnnexExpiresAt = ${expiresAt}`,
    `EC2InstanceID = ${classAdString(instanceId, 'instanceId')}`,
    `STARTD_ATTRS = $(STARTD_ATTRS) ${attrs}`,
    `MASTER_ATTRS = $(MASTER_ATTRS) ${attrs}`,
    '',
    '# Where this machine reports.',
    `CONDOR_HOST = ${host}`,
    `COLLECTOR_HOST = ${host}:${input.collector.port}`,
    'DAEMON_LIST = MASTER, STARTD',
    ...(publicIp === undefined
      ? []
      : [
          '# EC2 public addresses are not bound to an interface: advertise this one.',
          `TCP_FORWARDING_HOST = ${publicIp}`,
        ]),
    '',
    '# Stop spending: no claim for this long shuts HTCondor down; once the startd has gone the',
    '# master exits too, and its shutdown script powers the machine off (which terminates it).',
    `STARTD_NOCLAIM_SHUTDOWN = ${idleSeconds}`,
    'MASTER.DAEMON_SHUTDOWN_FAST = (STARTD_StartTime =?= 0) && ((time() - DaemonStartTime) > 60)',
    `DEFAULT_MASTER_SHUTDOWN_SCRIPT = ${POWEROFF_SCRIPT}`,
    '',
    '# Every connection authenticated, integrity-checked and encrypted.',
    'SEC_DEFAULT_AUTHENTICATION = REQUIRED',
    `SEC_DEFAULT_AUTHENTICATION_METHODS = FS, ${idtokens ? 'IDTOKENS' : 'PASSWORD'}`,
    'SEC_DEFAULT_INTEGRITY = REQUIRED',
    'SEC_DEFAULT_ENCRYPTION = REQUIRED',
    ...(idtokens
      ? [
          '# No signing key on this machine: it authenticates to the pool with its own IDTOKEN',
          `# (annex-${instanceId}@${trustDomain}; READ, ADVERTISE_STARTD, ADVERTISE_MASTER only;`,
          '# it expires with the lease), minted by the control plane and renewed by annex-agent.',
          `SEC_TOKEN_SYSTEM_DIRECTORY = ${TOKEN_DIRECTORY}`,
          `TRUST_DOMAIN = ${trustDomain}`,
          '# Inbound: the schedd and shadow reach this startd and its starters through the claim-id',
          '# security session (the secret the startd sends with its ad over its authenticated',
          '# connection; the negotiator hands it to the matched schedd), never with the pool key.',
          'SEC_ENABLE_MATCH_PASSWORD_AUTHENTICATION = True',
        ]
      : [
          '# The pool password: a pool-wide secret (HTCondor PASSWORD needs it on every machine).',
          `SEC_PASSWORD_DIRECTORY = ${PASSWORD_DIRECTORY}`,
          `SEC_PASSWORD_FILE = ${POOL_CREDENTIAL_FILE}`,
        ]),
    'ALLOW_READ = *',
    'ALLOW_WRITE = condor_pool@*, condor@*',
    'ALLOW_DAEMON = condor_pool@*, condor@*',
    'ALLOW_NEGOTIATOR = condor_pool@*, condor@*',
    'ALLOW_ADMINISTRATOR = condor_pool@*, condor@*',
    'ENCRYPT_EXECUTE_DIRECTORY = True',
    '',
    '# Only jobs that opted in (+MayUseAWS = True, or +TargetAnnexName = this annex),',
    input.allowedUsers.length === 0
      ? '# of any user of the pool, if their declared duration fits in the lease'
      : '# of the annex users only, and only if their declared duration fits in the lease',
    `# (${RUNTIME_ATTRIBUTE}, submit command allowed_job_duration; jobs without it may start).`,
    `START = ${startExpression(input.allowedUsers)}`,
    '',
  ];
  return lines.join('\n');
};
