// The real handlers' answers, through the local gateway, conform to the API contract
// (shared/http/contract.ts, from which docs/openapi.yaml is generated): each answer's status is one
// its route documents, and its body parses with that status's schema.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod/mini';
import { signedFetch } from '../../scripts/devstack/gateway.ts';
import type { LocalStack } from '../../scripts/devstack/stack.ts';
import { ERRORS, OPERATIONS, type ErrorStatus } from '../../shared/http/contract.ts';
import type {
  AnnexEventView,
  AnnexView,
  BootstrapResponse,
  HeartbeatResponse,
  InstanceView,
  PoolView,
} from '../../shared/http/responses.ts';
import type { BootstrapResult, HeartbeatResult } from '../../shared/domain/instances.ts';
import type { annexView, eventView, instanceView, poolView } from '../../shared/domain/views.ts';
import { integrationStack } from '../support/integration-stack.ts';

// The domain's view functions build exactly the response schemas' types (checked by tsc).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const viewsMatchSchemas: [
  Same<ReturnType<typeof annexView>, AnnexView>,
  Same<ReturnType<typeof instanceView>, InstanceView>,
  Same<ReturnType<typeof eventView>, AnnexEventView>,
  Same<ReturnType<typeof poolView>, PoolView>,
  Same<BootstrapResult, z.infer<typeof BootstrapResponse>>,
  Same<HeartbeatResult, z.infer<typeof HeartbeatResponse>>,
] = [true, true, true, true, true, true];

let stack: LocalStack;
const seen: string[] = [];

/** The route template a concrete path matches, e.g. /v1/annexes/x → /v1/annexes/{name}. */
const templateOf = (method: string, path: string) =>
  OPERATIONS.find((o) => {
    if (o.method !== method.toLowerCase()) return false;
    const pattern = new RegExp(`^${o.path.replace(/\{\w+\}/g, '[^/]+')}$`);
    return pattern.test(path.split('?')[0] ?? '');
  });

/** Checks one answer against its route's contract and returns its body. */
const conforming = (method: string, path: string, status: number, body: unknown) => {
  const op = templateOf(method, path);
  expect(op, `${method} ${path} is in the contract`).toBeDefined();
  if (op === undefined) return body;
  const schema: z.ZodMiniType | undefined =
    status === op.ok.status
      ? op.ok.schema
      : op.errors.includes(status as ErrorStatus)
        ? ERRORS[status as ErrorStatus].schema
        : undefined;
  expect(
    status === op.ok.status || op.errors.includes(status as ErrorStatus),
    `${method} ${op.path} documents ${status}`,
  ).toBe(true);
  if (schema === undefined) {
    expect(body, `${method} ${op.path} ${status} has no body`).toEqual({});
  } else {
    const parsed = schema.safeParse(body);
    expect(parsed.error?.issues, `${method} ${op.path} ${status}: ${JSON.stringify(body)}`).toBeUndefined();
  }
  seen.push(`${op.method.toUpperCase()} ${op.path} ${status}`);
  return body;
};

const call = async (
  who: string,
  method: string,
  path: string,
  body?: unknown,
  headers?: Record<string, string>,
) => {
  const result = await stack.as(who).request(method, path, body, headers);
  conforming(method, path, result.status, result.body);
  return result;
};

beforeAll(async () => {
  stack = await integrationStack('rs');
});

afterAll(async () => {
  await stack?.stop();
});

describe('the handlers’ answers', () => {
  it('conform to the contract on every route, success and error alike', async () => {
    expect(viewsMatchSchemas.every(Boolean)).toBe(true);

    await call('admin', 'PUT', '/v1/pools/admin-pool', {
      collectorHost: '127.0.0.1',
      credential: { type: 'password', value: 'a-throwaway-password' },
      condorUser: 'alice',
      trustDomain: 'example.org',
    });
    await call('admin', 'PUT', '/v1/pools/bad', { collectorHost: '-' });
    await call('alice', 'PUT', '/v1/pools/shared-one', {
      collectorHost: '127.0.0.1',
      scope: 'shared',
      credential: { type: 'password', value: 'a-throwaway-password' },
    });
    await call('alice', 'GET', '/v1/pools');
    await call('alice', 'POST', '/v1/pools/default/check');
    await call('alice', 'POST', '/v1/pools/nowhere/check');

    const create = { name: 'conform', count: 1, instanceTypes: ['m5.large'], durationSeconds: 3600 };
    await call('alice', 'POST', '/v1/annexes', create, { 'Idempotency-Key': 'conform-1' });
    await call('alice', 'POST', '/v1/annexes', create);
    await call('alice', 'POST', '/v1/annexes', { ...create, name: 'too-many', count: 51 });
    await call('alice', 'POST', '/v1/annexes', { ...create, name: 'no-pool', pool: 'nowhere' });
    await call('alice', 'POST', '/v1/annexes', { name: 'no-count', instanceTypes: ['m5.large'] });
    await call('alice', 'GET', '/v1/annexes');
    await call('admin', 'GET', '/v1/annexes');
    const detail = await call('alice', 'GET', '/v1/annexes/conform');
    await call('bob', 'GET', '/v1/annexes/conform');
    await call('alice', 'GET', '/v1/annexes/conform/condor-config');
    await call('alice', 'POST', '/v1/annexes/conform/extend', { durationSeconds: 7200, idleSeconds: 600 });
    await call('alice', 'POST', '/v1/annexes/conform/extend', {});
    await call('alice', 'POST', '/v1/annexes/conform/instances', { count: 1 });
    await call('alice', 'POST', '/v1/annexes/conform/instances', { count: 100 });

    const instanceId =
      (detail.body as { instances: { instanceId: string }[] }).instances[0]?.instanceId ?? '';
    const instance = stack.instanceCredentials(instanceId);
    const asInstance = async (path: string, body?: unknown) => {
      const result = await stack.as(instance).request('POST', path, body);
      conforming('POST', path, result.status, result.body);
    };
    await asInstance('/v1/instances/self/bootstrap');
    await asInstance('/v1/instances/self/bootstrap');
    await asInstance('/v1/instances/self/heartbeat', {
      claimedSlots: 0,
      totalSlots: 2,
      idleSeconds: 30,
      state: 'joined',
    });
    await asInstance('/v1/instances/self/heartbeat', { claimedSlots: -1 });
    await asInstance('/v1/instances/self/interruption', {
      action: 'terminate',
      time: new Date().toISOString(),
    });
    await call('alice', 'POST', '/v1/instances/self/heartbeat', {
      claimedSlots: 0,
      totalSlots: 2,
      idleSeconds: 0,
      state: 'joined',
    });

    // An IDTOKENS pool: bootstrap answers the instance's own token, a heartbeat after an extension
    // a renewed one.
    await call('alice', 'PUT', '/v1/pools/tokens-pool', {
      collectorHost: '127.0.0.1',
      credential: { type: 'idtokens-signing-key', value: 'a-throwaway-signing-key' },
      trustDomain: 'example.org',
    });
    const tokenAnnex = { ...create, name: 'conform-tokens', pool: 'tokens-pool' };
    const tokenDetail = await call('alice', 'POST', '/v1/annexes', tokenAnnex);
    const tokenInstanceId =
      (tokenDetail.body as { instances?: { instanceId: string }[] }).instances?.[0]?.instanceId ??
      (
        (await call('alice', 'GET', '/v1/annexes/conform-tokens')).body as {
          instances: { instanceId: string }[];
        }
      ).instances[0]?.instanceId ??
      '';
    const tokenInstance = stack.as(stack.instanceCredentials(tokenInstanceId));
    const boot = await tokenInstance.request('POST', '/v1/instances/self/bootstrap');
    conforming('POST', '/v1/instances/self/bootstrap', boot.status, boot.body);
    expect(boot.body).toMatchObject({ credential: { type: 'idtoken' } });
    await call('alice', 'POST', '/v1/annexes/conform-tokens/extend', { durationSeconds: 7200 });
    const beat = await tokenInstance.request('POST', '/v1/instances/self/heartbeat', {
      claimedSlots: 0,
      totalSlots: 2,
      idleSeconds: 0,
      state: 'joined',
    });
    conforming('POST', '/v1/instances/self/heartbeat', beat.status, beat.body);
    expect(beat.body).toMatchObject({ token: { value: expect.any(String) } });
    await call('alice', 'DELETE', '/v1/annexes/conform-tokens');

    await call('admin', 'PUT', '/v1/slack/users/T0123/U0123', {
      principalArn: stack.users[1]?.principalArn,
      pools: ['default'],
    });
    await call('admin', 'GET', '/v1/slack/users/T0123/U0123');
    await call('alice', 'GET', '/v1/slack/users/T0123/U0123');
    await call('admin', 'DELETE', '/v1/slack/users/T0123/U0123');
    await call('admin', 'GET', '/v1/slack/users/T0123/U0123');
    await call('admin', 'GET', '/v1/slack/users/lower/U0123');

    await call('alice', 'DELETE', '/v1/annexes/conform');
    await call('alice', 'DELETE', '/v1/annexes/nothing-here');

    // API Gateway's own answers: no signature, and no route.
    const unsigned = await fetch(`${stack.apiUrl}/v1/annexes`);
    conforming('GET', '/v1/annexes', unsigned.status, await unsigned.json());
    const wrong = await signedFetch(`${stack.apiUrl}/v1/pools`, {
      accessKeyId: 'AKIAUNKNOWNUNKNOWN00',
      secretAccessKey: 'not-a-key',
      region: stack.region,
    });
    conforming('GET', '/v1/pools', wrong.status, await wrong.json());
    const emptyName = await stack.as('alice').request('GET', '/v1/annexes//condor-config');
    expect(emptyName).toMatchObject({ status: 404, body: { message: 'Not Found' } });

    expect(seen).toEqual(
      expect.arrayContaining([
        'PUT /v1/pools/{pool} 200',
        'PUT /v1/pools/{pool} 400',
        'PUT /v1/pools/{pool} 403',
        'POST /v1/pools/{pool}/check 404',
        'POST /v1/annexes 201',
        'POST /v1/annexes 409',
        'POST /v1/annexes 422',
        'POST /v1/annexes 404',
        'POST /v1/annexes 400',
        'GET /v1/annexes/{name} 200',
        'GET /v1/annexes/{name} 404',
        'POST /v1/annexes/{name}/extend 200',
        'POST /v1/annexes/{name}/extend 400',
        'POST /v1/annexes/{name}/instances 200',
        'POST /v1/annexes/{name}/instances 422',
        'POST /v1/instances/self/bootstrap 200',
        'POST /v1/instances/self/bootstrap 403',
        'POST /v1/instances/self/heartbeat 200',
        'POST /v1/instances/self/heartbeat 400',
        'POST /v1/instances/self/heartbeat 403',
        'POST /v1/instances/self/interruption 202',
        'PUT /v1/slack/users/{teamId}/{userId} 200',
        'GET /v1/slack/users/{teamId}/{userId} 200',
        'GET /v1/slack/users/{teamId}/{userId} 403',
        'DELETE /v1/slack/users/{teamId}/{userId} 204',
        'GET /v1/slack/users/{teamId}/{userId} 404',
        'GET /v1/slack/users/{teamId}/{userId} 400',
        'DELETE /v1/annexes/{name} 202',
        'DELETE /v1/annexes/{name} 404',
        'GET /v1/annexes 403',
        'GET /v1/pools 403',
      ]),
    );
  });
});
