// docs/openapi.yaml is generated from the API contract (shared/http/contract.ts), which must list
// exactly the HTTP routes serverless.yml deploys.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readHttpRoutes } from '../../../scripts/devstack/gateway.ts';
import { OPENAPI_PATH, openApiYaml } from '../../../scripts/devstack/openapi.ts';
import { OPERATIONS } from '../../../shared/http/contract.ts';

const key = (method: string, path: string) => `${method.toUpperCase()} ${path}`;

describe('docs/openapi.yaml', () => {
  it('is what `npm run openapi` generates from the zod schemas (run it after changing them)', async () => {
    expect(readFileSync(OPENAPI_PATH, 'utf8')).toBe(await openApiYaml());
  });
});

describe('the API contract', () => {
  it('has exactly the HTTP routes serverless.yml declares', () => {
    const deployed = readHttpRoutes()
      .map((r) => key(r.method, r.path))
      .sort();
    expect(OPERATIONS.map((o) => key(o.method, o.path)).sort()).toEqual(deployed);
  });

  it('has no IAM authorization exactly on the routes without an authorizer (Slack’s)', () => {
    const open = readHttpRoutes()
      .filter((r) => r.authorizer === 'none')
      .map((r) => key(r.method, r.path))
      .sort();
    expect(open).toEqual(['POST /v1/slack/commands', 'POST /v1/slack/interactions']);
    expect(
      OPERATIONS.filter((o) => o.auth === 'slack')
        .map((o) => key(o.method, o.path))
        .sort(),
    ).toEqual(open);
  });

  it('names the path parameters each route template has', () => {
    for (const op of OPERATIONS) {
      const inTemplate = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      expect(Object.keys(op.pathParameters?.def.shape ?? {}).sort(), key(op.method, op.path)).toEqual(
        inTemplate,
      );
    }
  });
});
