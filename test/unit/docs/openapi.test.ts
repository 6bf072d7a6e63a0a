// The OpenAPI document must describe exactly the routes serverless.yml deploys, and its request
// schemas must agree with the zod schemas the handlers validate with.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { readHttpRoutes } from '../../../scripts/lib/gateway.ts';
import { HeartbeatBody, InterruptionBody } from '../../../shared/http/instance-schemas.ts';
import { AddNodesBody, CreateAnnexBody, ExtendAnnexBody, PutPoolBody } from '../../../shared/http/schemas.ts';
import { PutSlackUserBody, SlashCommandForm } from '../../../shared/slack/schemas.ts';

interface Doc {
  paths: Record<string, Record<string, unknown>>;
  components: { schemas: Record<string, { properties?: Record<string, unknown>; required?: string[] }> };
}

const doc = parse(readFileSync(new URL('../../../docs/openapi.yaml', import.meta.url), 'utf8')) as Doc;

describe('docs/openapi.yaml', () => {
  it('documents exactly the HTTP routes serverless.yml declares', () => {
    const deployed = readHttpRoutes()
      .map((r) => `${r.method} ${r.path}`)
      .sort();
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    expect(documented).toEqual(deployed);
  });

  it('documents no IAM authorization exactly on the routes without an authorizer (Slack’s)', () => {
    const open = readHttpRoutes()
      .filter((r) => r.authorizer === 'none')
      .map((r) => `${r.method} ${r.path}`)
      .sort();
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) =>
        Object.entries(ops)
          .filter(([, op]) => (op as { security?: unknown[] }).security?.length === 0)
          .map(([m]) => `${m.toUpperCase()} ${path}`),
      )
      .sort();
    expect(open).toEqual(['POST /v1/slack/commands', 'POST /v1/slack/interactions']);
    expect(documented).toEqual(open);
  });

  it.each([
    ['CreateAnnexRequest', CreateAnnexBody],
    ['ExtendAnnexRequest', ExtendAnnexBody],
    ['AddNodesRequest', AddNodesBody],
    ['PutPoolRequest', PutPoolBody],
    ['HeartbeatRequest', HeartbeatBody],
    ['InterruptionRequest', InterruptionBody],
    ['PutSlackUserRequest', PutSlackUserBody],
    ['SlackSlashCommand', SlashCommandForm],
  ] as const)('%s lists the same fields as the handler’s schema', (name, schema) => {
    const documented = Object.keys(doc.components.schemas[name]?.properties ?? {}).sort();
    const shape = (
      schema as unknown as {
        def: { shape?: Record<string, unknown>; in?: { def: { shape: Record<string, unknown> } } };
      }
    ).def;
    const fields = Object.keys(shape.shape ?? shape.in?.def.shape ?? {}).sort();
    expect(fields.length).toBeGreaterThan(0);
    expect(documented).toEqual(fields);
  });
});
