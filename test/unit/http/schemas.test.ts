import { describe, expect, it } from 'vitest';
import { CreateAnnexBody, ExtendAnnexBody, IDEMPOTENCY_KEY, NAME } from '../../../shared/http/schemas.ts';

const MINIMAL = { name: 'burst', count: 1, instanceTypes: ['m5.large'] };

const FULL = {
  name: 'burst_2030.01-a',
  pool: 'cm.example',
  count: 1000,
  instanceTypes: ['m5.large', 'c6i.2xlarge', 'u-6tb1.metal'],
  market: 'on-demand',
  imageId: 'ami-0123456789abcdef0',
  subnetIds: ['subnet-0123456789abcdef0', 'subnet-89abcdef'],
  securityGroupIds: ['sg-0123456789abcdef0'],
  keyName: 'my key (2030)',
  durationSeconds: 3600,
  idleSeconds: 60,
  userData: '#!/bin/bash\necho "héllo"\n',
  tags: { project: 'htc', 'cost-center': '42', Name: 'workers' },
};

/** The first issue's path, as the HTTP layer reports it. */
const refusedField = (schema: typeof CreateAnnexBody | typeof ExtendAnnexBody, body: unknown) => {
  const result = schema.safeParse(body);
  return result.success ? undefined : result.error.issues[0]?.path.join('.');
};

describe('CreateAnnexBody', () => {
  it('accepts a full valid body unchanged', () => {
    // Act
    const result = CreateAnnexBody.safeParse(FULL);

    // Assess
    expect(result.success).toBe(true);
    expect(result.data).toEqual(FULL);
  });

  it('accepts a minimal body', () => {
    // Act
    const result = CreateAnnexBody.safeParse(MINIMAL);

    // Assess
    expect(result.success).toBe(true);
  });

  it.each(['annex:x', 'aws:x', 'ANNEX:x', 'AWS:cloudformation:stack-name'])(
    'refuses the reserved tag key %j',
    (key) => {
      // Act
      const result = CreateAnnexBody.safeParse({ ...MINIMAL, tags: { [key]: 'v' } });

      // Assess
      expect(result.success).toBe(false);
      expect(result.error?.issues[0]?.path[0]).toBe('tags');
    },
  );

  it('accepts tag keys that merely contain annex or aws', () => {
    // Act
    const result = CreateAnnexBody.safeParse({ ...MINIMAL, tags: { 'my-annex:x': 'v', awsome: 'v' } });

    // Assess
    expect(result.success).toBe(true);
  });

  it('accepts 40 tags and refuses 41', () => {
    // Prepare
    const tags = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));

    // Act
    const forty = CreateAnnexBody.safeParse({ ...MINIMAL, tags: tags(40) });
    const fortyOne = CreateAnnexBody.safeParse({ ...MINIMAL, tags: tags(41) });

    // Assess
    expect(forty.success).toBe(true);
    expect(fortyOne.success).toBe(false);
    expect(fortyOne.error?.issues[0]?.path).toEqual(['tags']);
  });

  it('refuses a tag value over 256 characters', () => {
    // Act
    const field = refusedField(CreateAnnexBody, { ...MINIMAL, tags: { k: 'v'.repeat(257) } });

    // Assess
    expect(field).toBe('tags.k');
  });

  it('accepts replacement and budget settings', () => {
    // Act
    const result = CreateAnnexBody.safeParse({
      ...MINIMAL,
      replaceInterrupted: true,
      maxReplacements: 20,
      maxSpend: 12.34,
    });

    // Assess
    expect(result.success).toBe(true);
  });

  it.each([
    [{ maxReplacements: 21 }, 'maxReplacements'],
    [{ maxReplacements: -1 }, 'maxReplacements'],
    [{ maxReplacements: 1.5 }, 'maxReplacements'],
    [{ replaceInterrupted: 'yes' }, 'replaceInterrupted'],
    [{ maxSpend: 0 }, 'maxSpend'],
    [{ maxSpend: -5 }, 'maxSpend'],
    [{ maxSpend: 0.001 }, 'maxSpend'],
    [{ maxSpend: 5e-324 }, 'maxSpend'],
    [{ maxSpend: 1_000_000.01 }, 'maxSpend'],
    [{ maxSpend: '10' }, 'maxSpend'],
  ])('refuses %j naming %s', (extra, expected) => {
    expect(refusedField(CreateAnnexBody, { ...MINIMAL, ...extra })).toBe(expected);
  });

  it.each(['M5.large', 'm5', 'm5.large;reboot', 'm5 .large', '.large', 'm5.', ''])(
    'refuses the instance type %j',
    (instanceType) => {
      // Act
      const field = refusedField(CreateAnnexBody, { ...MINIMAL, instanceTypes: [instanceType] });

      // Assess
      expect(field).toBe('instanceTypes.0');
    },
  );

  it('refuses an empty list of instance types and more than 10', () => {
    // Assess
    expect(refusedField(CreateAnnexBody, { ...MINIMAL, instanceTypes: [] })).toBe('instanceTypes');
    expect(refusedField(CreateAnnexBody, { ...MINIMAL, instanceTypes: Array(11).fill('m5.large') })).toBe(
      'instanceTypes',
    );
  });

  it('accepts user data of exactly 16384 bytes', () => {
    // Act
    const result = CreateAnnexBody.safeParse({ ...MINIMAL, userData: 'é'.repeat(8192) });

    // Assess
    expect(result.success).toBe(true);
  });

  it('counts user data in UTF-8 bytes, not characters', () => {
    // Prepare
    const userData = 'é'.repeat(8193);

    // Act
    const field = refusedField(CreateAnnexBody, { ...MINIMAL, userData });

    // Assess
    expect(userData.length).toBeLessThan(16384);
    expect(Buffer.byteLength(userData, 'utf8')).toBe(16386);
    expect(field).toBe('userData');
  });

  it('refuses ASCII user data one byte over 16384', () => {
    // Act
    const field = refusedField(CreateAnnexBody, { ...MINIMAL, userData: 'x'.repeat(16385) });

    // Assess
    expect(field).toBe('userData');
  });

  it.each([
    ['a leading dot', '.burst'],
    ['a leading dash', '-burst'],
    ['64 characters', 'a'.repeat(64)],
    ['a space', 'my burst'],
    ['a double quote', 'my"burst'],
    ['a trailing newline', 'burst\n'],
    ['an inner newline', 'bu\nrst'],
    ['a slash', 'a/b'],
    ['nothing', ''],
    ['non-ASCII letters', 'bürst'],
  ])('refuses a name with %s', (_case, name) => {
    // Act
    const field = refusedField(CreateAnnexBody, { ...MINIMAL, name });

    // Assess
    expect(field).toBe('name');
    expect(NAME.test(name)).toBe(false);
  });

  it('accepts a name of 63 characters', () => {
    // Act
    const result = CreateAnnexBody.safeParse({ ...MINIMAL, name: 'a'.repeat(63) });

    // Assess
    expect(result.success).toBe(true);
  });

  it('refuses a pool name by the same rules as an annex name', () => {
    // Act
    const field = refusedField(CreateAnnexBody, { ...MINIMAL, pool: '.pool' });

    // Assess
    expect(field).toBe('pool');
  });

  it.each([
    ['imageId', 'ami-XYZ'],
    ['subnetIds', ['subnet-zz']],
    ['securityGroupIds', ['sg-1']],
    ['market', 'flaky'],
    ['allocationStrategy', 'cheapest'],
    ['maxPrice', '5 USD'],
    ['onDemandBaseCount', -1],
    ['capacityPolicy', 'some'],
    ['instanceRequirements', { vCpus: { min: 0 }, memoryMiB: { min: 1024 } }],
    ['instanceRequirements', { vCpus: { min: 2 }, memoryMiB: { min: 1024 }, gpus: { min: 4, max: 2 } }],
    [
      'instanceRequirements',
      {
        vCpus: { min: 2 },
        memoryMiB: { min: 1 },
        allowedInstanceTypes: ['m5.*'],
        excludedInstanceTypes: ['c5.*'],
      },
    ],
    ['spotFleetConfig', 'not an object'],
    ['idleSeconds', 59],
    ['durationSeconds', 0],
    ['keyName', 'tab\tkey'],
  ])('refuses a bad %s', (field, value) => {
    // Act
    const refused = refusedField(CreateAnnexBody, { ...MINIMAL, [field]: value });

    // Assess
    expect(refused?.split('.')[0]).toBe(field);
  });

  it('accepts spot, mixed, hardware needs and a spot fleet config (the domain checks how they combine)', () => {
    for (const body of [
      { ...MINIMAL, market: 'spot', allocationStrategy: 'lowest-price', maxPrice: '0.05' },
      { ...MINIMAL, market: 'mixed', onDemandBaseCount: 1, capacityPolicy: 'all-or-nothing' },
      {
        name: 'gpu',
        count: 1,
        instanceRequirements: { vCpus: { min: 4 }, memoryMiB: { min: 16384 }, gpus: { min: 1 } },
      },
      { name: 'fleet', spotFleetConfig: { TargetCapacity: 2, LaunchSpecifications: [] } },
    ]) {
      expect(CreateAnnexBody.safeParse(body).success).toBe(true);
    }
  });

  it('refuses unknown fields', () => {
    // Act
    const result = CreateAnnexBody.safeParse({ ...MINIMAL, spotPrice: '0.1' });

    // Assess
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]).toMatchObject({ code: 'unrecognized_keys', keys: ['spotPrice'] });
  });
});

describe('ExtendAnnexBody', () => {
  it('accepts durationSeconds alone', () => {
    // Assess
    expect(ExtendAnnexBody.safeParse({ durationSeconds: 600 }).success).toBe(true);
  });

  it('accepts expiresAt alone, with an offset', () => {
    // Assess
    expect(ExtendAnnexBody.safeParse({ expiresAt: '2030-01-01T02:00:00Z' }).success).toBe(true);
    expect(ExtendAnnexBody.safeParse({ expiresAt: '2030-01-01T03:00:00+01:00' }).success).toBe(true);
  });

  it('refuses both durationSeconds and expiresAt', () => {
    // Act
    const field = refusedField(ExtendAnnexBody, { durationSeconds: 600, expiresAt: '2030-01-01T02:00:00Z' });

    // Assess
    expect(field).toBe('durationSeconds');
  });

  it('refuses neither durationSeconds nor expiresAt', () => {
    // Act
    const field = refusedField(ExtendAnnexBody, { idleSeconds: 600 });

    // Assess
    expect(field).toBe('durationSeconds');
  });

  it('refuses an expiresAt that is not an ISO 8601 time', () => {
    // Act
    const field = refusedField(ExtendAnnexBody, { expiresAt: 'tomorrow' });

    // Assess
    expect(field).toBe('expiresAt');
  });
});

describe('IDEMPOTENCY_KEY', () => {
  it.each(['a', 'A-z_0.9:x', 'k'.repeat(128)])('accepts %j', (key) => {
    // Assess
    expect(IDEMPOTENCY_KEY.test(key)).toBe(true);
  });

  it.each(['', 'k'.repeat(129), 'a b', 'a/b', 'a\n'])('refuses %j', (key) => {
    // Assess
    expect(IDEMPOTENCY_KEY.test(key)).toBe(false);
  });
});
