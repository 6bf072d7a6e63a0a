import { describe, expect, it } from 'vitest';
import {
  ANNEX_ATTRIBUTES,
  classAdString,
  PLACEHOLDER_INSTANCE_ID,
  POOL_CREDENTIAL_FILE,
  TOKEN_DIRECTORY,
  POWEROFF_SCRIPT,
  renderCondorConfig,
  startExpression,
  type CondorConfigInput,
} from '../../../shared/boot/condor-config.ts';
import { AnnexError } from '../../../shared/domain/errors.ts';

const input = (overrides: Partial<CondorConfigInput> = {}): CondorConfigInput => ({
  annexId: 'ax-0123456789abcdef0123',
  annexName: 'gpu-burst',
  owner: 'arn:aws:iam::123456789012:user/alice',
  expiresAt: '2030-01-01T01:00:00.000Z',
  instanceId: 'i-0123456789abcdef0',
  publicIpAddress: '203.0.113.7',
  idleSeconds: 900,
  collector: { host: 'cm.example.org', port: 9618 },
  credentialType: 'password',
  allowedUsers: ['alice'],
  ...overrides,
});

/** The knobs of a rendered fragment, as `NAME = value` lines (comments and blank lines skipped). */
const knobs = (text: string): Map<string, string> => {
  const found = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const equals = line.indexOf(' = ');
    expect(equals, `not a knob: ${line}`).toBeGreaterThan(0);
    const name = line.slice(0, equals);
    expect(found.has(name), `${name} set twice`).toBe(false);
    found.set(name, line.slice(equals + 3));
  }
  return found;
};

const refusal = (fn: () => unknown): AnnexError => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AnnexError);
    return e as AnnexError;
  }
  throw new Error('expected a refusal');
};

describe('renderCondorConfig', () => {
  it('sets every knob an annex instance needs', () => {
    // Act
    const config = knobs(renderCondorConfig(input()));

    // Assess
    expect(Object.fromEntries(config)).toEqual({
      AnnexName: '"gpu-burst"',
      IsAnnex: 'True',
      AnnexId: '"ax-0123456789abcdef0123"',
      AnnexOwner: '"arn:aws:iam::123456789012:user/alice"',
      AnnexExpiresAt: String(Date.parse('2030-01-01T01:00:00.000Z') / 1000),
      EC2InstanceID: '"i-0123456789abcdef0"',
      STARTD_ATTRS: `$(STARTD_ATTRS) ${ANNEX_ATTRIBUTES.join(' ')}`,
      MASTER_ATTRS: `$(MASTER_ATTRS) ${ANNEX_ATTRIBUTES.join(' ')}`,
      CONDOR_HOST: 'cm.example.org',
      COLLECTOR_HOST: 'cm.example.org:9618',
      DAEMON_LIST: 'MASTER, STARTD',
      TCP_FORWARDING_HOST: '203.0.113.7',
      STARTD_NOCLAIM_SHUTDOWN: '900',
      'MASTER.DAEMON_SHUTDOWN_FAST': '(STARTD_StartTime =?= 0) && ((time() - DaemonStartTime) > 60)',
      DEFAULT_MASTER_SHUTDOWN_SCRIPT: POWEROFF_SCRIPT,
      SEC_DEFAULT_AUTHENTICATION: 'REQUIRED',
      SEC_DEFAULT_AUTHENTICATION_METHODS: 'FS, PASSWORD',
      SEC_DEFAULT_INTEGRITY: 'REQUIRED',
      SEC_DEFAULT_ENCRYPTION: 'REQUIRED',
      SEC_PASSWORD_DIRECTORY: '/etc/condor/passwords.d',
      SEC_PASSWORD_FILE: POOL_CREDENTIAL_FILE,
      ALLOW_READ: '*',
      ALLOW_WRITE: 'condor_pool@*, condor@*',
      ALLOW_DAEMON: 'condor_pool@*, condor@*',
      ALLOW_NEGOTIATOR: 'condor_pool@*, condor@*',
      ALLOW_ADMINISTRATOR: 'condor_pool@*, condor@*',
      ENCRYPT_EXECUTE_DIRECTORY: 'True',
      START:
        '(TARGET.MayUseAWS =?= true || TARGET.TargetAnnexName =?= MY.AnnexName) && ' +
        '(TARGET.Owner =?= "alice") && (TARGET.AllowedJobDuration =?= undefined || ' +
        '(MY.AnnexExpiresAt - time()) >= TARGET.AllowedJobDuration)',
    });
  });

  it('writes the lease end as whole epoch seconds, rounding a fraction down', () => {
    // Act
    const config = knobs(renderCondorConfig(input({ expiresAt: '2030-01-01T01:00:00.999Z' })));

    // Assess
    expect(config.get('AnnexExpiresAt')).toBe('1893459600');
  });

  it('sets TCP_FORWARDING_HOST only for an instance with a public address', () => {
    // Act
    const config = knobs(renderCondorConfig(input({ publicIpAddress: undefined })));

    // Assess
    expect(config.has('TCP_FORWARDING_HOST')).toBe(false);
  });

  it('uses IDTOKENS with the instance’s own token directory and no signing key', () => {
    // Act
    const config = knobs(renderCondorConfig(input({ credentialType: 'idtokens-signing-key' })));

    // Assess
    expect(config.get('SEC_DEFAULT_AUTHENTICATION_METHODS')).toBe('FS, IDTOKENS');
    expect(config.get('SEC_TOKEN_SYSTEM_DIRECTORY')).toBe(TOKEN_DIRECTORY);
    expect(config.get('SEC_ENABLE_MATCH_PASSWORD_AUTHENTICATION')).toBe('True');
    expect(config.has('SEC_TOKEN_POOL_SIGNING_KEY_FILE')).toBe(false);
    expect(config.has('SEC_PASSWORD_FILE')).toBe(false);
    expect(config.get('TRUST_DOMAIN')).toBe('cm.example.org');
  });

  it('takes the pool’s own TRUST_DOMAIN when it has one', () => {
    // Act
    const config = knobs(
      renderCondorConfig(input({ credentialType: 'idtokens-signing-key', trustDomain: 'pool.example.org' })),
    );

    // Assess
    expect(config.get('TRUST_DOMAIN')).toBe('pool.example.org');
  });

  it('sets no TRUST_DOMAIN for a pool password', () => {
    expect(knobs(renderCondorConfig(input())).has('TRUST_DOMAIN')).toBe(false);
  });

  it('accepts the placeholder instance id of a fragment rendered for no instance', () => {
    // Act
    const config = knobs(renderCondorConfig(input({ instanceId: PLACEHOLDER_INSTANCE_ID })));

    // Assess
    expect(config.get('EC2InstanceID')).toBe(`"${PLACEHOLDER_INSTANCE_ID}"`);
  });

  it.each([
    [
      'a quote',
      'arn:aws:iam::123456789012:user/"; START = True',
      '"arn:aws:iam::123456789012:user/\\"; START = True"',
    ],
    ['a backslash', 'arn:aws:iam::123456789012:user/a\\', '"arn:aws:iam::123456789012:user/a\\\\"'],
    [
      'a macro',
      'arn:aws:iam::123456789012:user/$(START)',
      '"arn:aws:iam::123456789012:user/$(DOLLAR)(START)"',
    ],
    [
      'an env macro',
      'arn:aws:iam::123456789012:user/$ENV(HOME)',
      '"arn:aws:iam::123456789012:user/$(DOLLAR)ENV(HOME)"',
    ],
    ['a hash', 'arn:aws:iam::123456789012:user/a#b', '"arn:aws:iam::123456789012:user/a#b"'],
  ])('escapes %s in the owner ARN so it stays inside its string', (_what, owner, expected) => {
    // Act
    const text = renderCondorConfig(input({ owner }));

    // Assess
    expect(knobs(text).get('AnnexOwner')).toBe(expected);
    expect(text.split('\n').filter((l) => l.startsWith('START ='))).toHaveLength(1);
    // No `$(` is left in the owner except HTCondor's literal dollar.
    expect(expected.replaceAll('$(DOLLAR)', '')).not.toContain('$');
  });

  it.each([
    ['a newline', 'burst\nSTART = True'],
    ['a carriage return', 'burst\rSTART = True'],
    ['a tab', 'burst\tx'],
    ['a NUL', 'burst\u0000'],
    ['non-ASCII', 'bürst'],
  ])('refuses an annex name with %s, naming the field', (_what, annexName) => {
    // Act
    const error = refusal(() => renderCondorConfig(input({ annexName })));

    // Assess
    expect(error.code).toBe('ValidationError');
    expect(error.field).toBe('name');
  });

  it('escapes a quote, a backslash and a macro in an annex name', () => {
    // Act
    const config = knobs(renderCondorConfig(input({ annexName: 'a"b\\c$(d)' })));

    // Assess
    expect(config.get('AnnexName')).toBe('"a\\"b\\\\c$(DOLLAR)(d)"');
  });

  it.each([
    ['annexId', { annexId: 'ax-1"' }],
    ['instanceId', { instanceId: 'i-123\nSTART = True' }],
    ['collectorHost', { collector: { host: 'cm.example.org\nSTART = True', port: 9618 } }],
    ['collectorHost', { collector: { host: '$(HOST)', port: 9618 } }],
    ['collectorPort', { collector: { host: 'cm.example.org', port: 70000 } }],
    ['publicIpAddress', { publicIpAddress: '203.0.113.7\nSTART = True' }],
    ['publicIpAddress', { publicIpAddress: '999.0.0.1' }],
    ['idleSeconds', { idleSeconds: 1.5 }],
    ['expiresAt', { expiresAt: 'tomorrow' }],
    ['trustDomain', { credentialType: 'idtokens-signing-key' as const, trustDomain: 'x y' }],
    ['allowedUsers.1', { allowedUsers: ['alice', 'bob"'] }],
    ['allowedUsers.0', { allowedUsers: ['$(USER)'] }],
    ['allowedUsers.0', { allowedUsers: ['alice\n'] }],
  ])('refuses a value it cannot represent in %s', (field, overrides) => {
    // Act
    const error = refusal(() => renderCondorConfig(input(overrides as Partial<CondorConfigInput>)));

    // Assess
    expect(error).toMatchObject({ code: 'ValidationError', field });
  });

  it('renders the same text for the same input', () => {
    expect(renderCondorConfig(input())).toBe(renderCondorConfig(input()));
  });
});

describe('startExpression', () => {
  it('lets any user’s jobs run when the annex names no users, still only if they fit the lease', () => {
    expect(startExpression([])).toBe(
      '(TARGET.MayUseAWS =?= true || TARGET.TargetAnnexName =?= MY.AnnexName) && ' +
        '(TARGET.AllowedJobDuration =?= undefined || (MY.AnnexExpiresAt - time()) >= TARGET.AllowedJobDuration)',
    );
  });

  it('matches a bare name on the job’s Owner and user@domain on its User, case-sensitively', () => {
    expect(startExpression(['alice', 'bob@submit.example.org'])).toContain(
      ' && (TARGET.Owner =?= "alice" || TARGET.User =?= "bob@submit.example.org") && ',
    );
  });

  it('starts only jobs that opted in: MayUseAWS or this annex as their TargetAnnexName', () => {
    expect(startExpression(['alice'])).toMatch(
      /^\(TARGET\.MayUseAWS =\?= true \|\| TARGET\.TargetAnnexName =\?= MY\.AnnexName\) && /,
    );
  });

  it('refuses more than 20 users', () => {
    const error = refusal(() => startExpression(Array.from({ length: 21 }, (_, i) => `u${i}`)));
    expect(error).toMatchObject({ code: 'ValidationError', field: 'allowedUsers' });
  });
});

describe('classAdString', () => {
  it('quotes plain text as is', () => {
    expect(classAdString('gpu-burst', 'name')).toBe('"gpu-burst"');
  });

  it('refuses a newline, naming the field', () => {
    expect(refusal(() => classAdString('a\nb', 'owner'))).toMatchObject({ field: 'owner' });
  });
});
