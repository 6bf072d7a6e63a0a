import { beforeEach, describe, expect, it } from 'vitest';
import type { AnnexError } from '../../../shared/domain/errors.ts';
import type { Caller } from '../../../shared/domain/model.ts';
import { listPools, putPool, type PoolDeps } from '../../../shared/domain/pools.ts';
import { poolView } from '../../../shared/domain/views.ts';
import { FakeClock, FakeSecrets, InMemoryLeaseStore } from '../../support/fakes.ts';

const alice: Caller = { principalArn: 'arn:aws:iam::123456789012:user/alice', admin: false };
const admin: Caller = { principalArn: 'arn:aws:iam::123456789012:user/admin', admin: true };
const credential = { type: 'password' as const, value: 'super-secret-pool-password' };

let deps: PoolDeps;
let secrets: FakeSecrets;

beforeEach(() => {
  secrets = new FakeSecrets('test');
  deps = {
    store: new InMemoryLeaseStore(),
    secrets,
    clock: new FakeClock(),
    settings: {
      stage: 'test',
      maxDurationSeconds: 604800,
      maxInstancesPerAnnex: 10,
    },
    launch: {
      defaultImageId: 'ami-0123456789abcdef0',
      defaultSubnetIds: ['subnet-0aaaaaaaaaaaaaaaa'],
      defaultSecurityGroupIds: ['sg-0aaaaaaaaaaaaaaaa'],
    },
  };
});

describe('putPool', () => {
  it('registers an admin’s pool as shared, with its credential in a stage-scoped parameter', async () => {
    const pool = await putPool(deps, admin, 'default', {
      collectorHost: 'cm.example.org',
      collectorPort: 9618,
      credential,
    });
    expect(pool.scope).toBe('shared');
    expect(pool.credentialParameter).toBe('/annex/test/pools/shared/default/credential');
    expect(secrets.parameters.get(pool.credentialParameter)?.value).toBe(credential.value);
  });

  it('registers a user’s pool as private and refuses to let a user register a shared one', async () => {
    const pool = await putPool(deps, alice, 'mine', {
      collectorHost: 'cm.lab.example',
      collectorPort: 9618,
      credential,
    });
    expect(pool.scope).toBe('private');
    expect(pool.credentialParameter).toMatch(
      /^\/annex\/test\/pools\/private\/[0-9a-f]{16}\/mine\/credential$/,
    );
    const refused = await putPool(deps, alice, 'x', {
      collectorHost: 'h',
      collectorPort: 1,
      credential,
      scope: 'shared',
    }).catch((e: unknown) => e);
    expect((refused as AnnexError).code).toBe('Forbidden');
  });

  it('lists shared pools and the caller’s own private ones, never a credential', async () => {
    await putPool(deps, admin, 'default', {
      collectorHost: 'cm.example.org',
      collectorPort: 9618,
      credential,
    });
    await putPool(deps, alice, 'mine', { collectorHost: 'cm.lab.example', collectorPort: 9618, credential });
    const pools = (await listPools(deps, alice)).map(poolView);
    expect(pools.map((p) => p.name).sort()).toEqual(['default', 'mine']);
    expect(JSON.stringify(pools)).not.toContain(credential.value);
    expect(JSON.stringify(pools)).not.toContain('/annex/');
    expect((await listPools(deps, admin)).map((p) => p.name)).toEqual(['default']);
  });
});
