import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../shared/log.ts';

const SECRET = 'hunter2-DO-NOT-LOG';

describe('createLogger', () => {
  let lines: string[];
  const write = (line: string) => {
    lines.push(line);
  };
  const entry = (n = 0) => JSON.parse(lines[n] ?? 'null') as Record<string, unknown>;

  beforeEach(() => {
    lines = [];
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2030-01-01T00:00:00.000Z'));
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes one JSON line per call with level, time, message, base and call fields', () => {
    // Prepare
    const log = createLogger({ service: 'annex' }, write);

    // Act
    log.info('annex created', { annexId: 'ax-1' });
    log.warn('slow launch', { instanceId: 'i-1' });
    log.error('launch failed');

    // Assess
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).not.toContain('\n');
    expect(lines.map((_, i) => entry(i))).toEqual([
      {
        level: 'info',
        time: '2030-01-01T00:00:00.000Z',
        message: 'annex created',
        service: 'annex',
        annexId: 'ax-1',
      },
      {
        level: 'warn',
        time: '2030-01-01T00:00:00.000Z',
        message: 'slow launch',
        service: 'annex',
        instanceId: 'i-1',
      },
      { level: 'error', time: '2030-01-01T00:00:00.000Z', message: 'launch failed', service: 'annex' },
    ]);
  });

  it('adds a child’s fields to every line it writes', () => {
    // Prepare
    const log = createLogger({ service: 'annex' }, write).child({ requestId: 'r-1' });

    // Act
    log.info('request refused', { status: 403 });

    // Assess
    expect(entry()).toMatchObject({ service: 'annex', requestId: 'r-1', status: 403 });
  });

  it.each([
    'password',
    'Password',
    'secret',
    'clientSecret',
    'credential',
    'poolCredential',
    'token',
    'idToken',
    'userData',
    'UserData',
    'authorization',
  ])('redacts a field named %s', (field) => {
    // Prepare
    const log = createLogger({}, write);

    // Act
    log.info('m', { [field]: SECRET });

    // Assess
    expect(entry()[field]).toBe('[redacted]');
    expect(lines[0]).not.toContain(SECRET);
  });

  it('redacts secret fields inside nested objects and arrays', () => {
    // Prepare
    const log = createLogger({}, write);

    // Act
    log.info('m', {
      request: { spec: { userData: SECRET, count: 2 } },
      pools: [{ name: 'cm', credential: { type: 'password', password: SECRET } }],
    });

    // Assess
    expect(lines[0]).not.toContain(SECRET);
    expect(entry()).toEqual({
      level: 'info',
      time: '2030-01-01T00:00:00.000Z',
      message: 'm',
      request: { spec: { userData: '[redacted]', count: 2 } },
      pools: [{ name: 'cm', credential: '[redacted]' }],
    });
  });

  it('redacts secret fields in the base and child fields too', () => {
    // Prepare
    const log = createLogger({ token: SECRET }, write).child({ auth: { secret: SECRET } });

    // Act
    log.info('m');

    // Assess
    expect(lines[0]).not.toContain(SECRET);
  });

  it('keeps the name of a credential parameter, which is not a secret', () => {
    // Prepare
    const log = createLogger({}, write);

    // Act
    log.info('m', { credentialParameter: '/annex/dev/pools/cm/credential' });

    // Assess
    expect(entry().credentialParameter).toBe('/annex/dev/pools/cm/credential');
  });

  it('never writes a secret nested deeper than it inspects', () => {
    // Prepare
    const log = createLogger({}, write);

    // Act
    log.info('m', { a: { b: { c: { d: { e: { f: { password: SECRET } } } } } } });

    // Assess
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain(SECRET);
  });

  it('writes a line for fields that refer to themselves', () => {
    // Prepare
    const log = createLogger({}, write);
    const loop: Record<string, unknown> = { name: 'loop' };
    loop.self = loop;

    // Act
    const act = () => log.info('m', { loop });

    // Assess
    expect(act).not.toThrow();
    expect(entry()).toMatchObject({ message: 'm', loop: { name: 'loop' } });
  });
});

describe('createLogger entry fields', () => {
  it('keeps its own level and message when a field has the same name, and writes dates as ISO strings', () => {
    const lines: string[] = [];
    const log = createLogger({}, (line) => lines.push(line));
    log.info('real message', { message: 'spoofed', level: 'error', at: new Date('2026-11-25T12:00:00Z') });
    const entry = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
    expect(entry.message).toBe('real message');
    expect(entry.level).toBe('info');
    expect(entry.at).toBe('2026-11-25T12:00:00.000Z');
  });
});
