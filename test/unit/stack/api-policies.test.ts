// The stack's AnnexUser and AnnexAdmin managed policies (serverless.yml), evaluated by an IAM policy
// simulator (@cloud-copilot/iam-simulate, AWS's evaluation logic and IAM action data, offline)
// against every IAM-authorised route the stack serves: a user may call the user routes and no
// instance or Slack-mapping route; an administrator every route; neither another API.
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { describe, expect, it } from 'vitest';
import { readServerlessYml } from '../../../scripts/devstack/serverless-config.ts';

interface Route {
  method: string;
  path: string;
  iam: boolean;
}

const config = readServerlessYml() as {
  functions: Record<
    string,
    { events?: { httpApi?: { method: string; path: string; authorizer?: { type?: string } } }[] }
  >;
  resources: { Resources: Record<string, { Properties: { PolicyDocument?: unknown } }> };
};

const account = '123456789012';
const apiId = 'a1b2c3d4e5';

/** The policy document of a resource, its Fn::Sub strings rendered for one deployment. */
const policy = (name: string): unknown => {
  const render = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(render);
    if (value !== null && typeof value === 'object') {
      const sub = (value as Record<string, unknown>)['Fn::Sub'];
      if (typeof sub === 'string') {
        return sub
          .replaceAll('${AWS::Partition}', 'aws')
          .replaceAll('${AWS::Region}', 'us-east-1')
          .replaceAll('${AWS::AccountId}', account)
          .replaceAll('${HttpApi}', apiId);
      }
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, render(v)]));
    }
    return value;
  };
  const document = config.resources.Resources[name]?.Properties.PolicyDocument;
  expect(document, name).toBeDefined();
  return render(document);
};

const routes: Route[] = Object.values(config.functions).flatMap((f) =>
  (f.events ?? []).flatMap((e) =>
    e.httpApi === undefined
      ? []
      : [{ method: e.httpApi.method, path: e.httpApi.path, iam: e.httpApi.authorizer?.type === 'aws_iam' }],
  ),
);
const iamRoutes = routes.filter((r) => r.iam);
const isInstanceRoute = (r: Route) => r.path.startsWith('/v1/instances/self/');
const isAdminRoute = (r: Route) => r.path.startsWith('/v1/slack/users/');
const userRoutes = iamRoutes.filter((r) => !isInstanceRoute(r) && !isAdminRoute(r));

const routeArn = (r: Route, api = apiId) =>
  `arn:aws:execute-api:us-east-1:${account}:${api}/$default/${r.method}${r.path.replace(/\{[^}]+\}/g, 'sample-1')}`;

const decide = async (policyName: string, resource: string): Promise<string> => {
  const result = await runSimulation(
    {
      request: {
        principal: `arn:aws:iam::${account}:user/alice`,
        action: 'execute-api:Invoke',
        resource: { resource, accountId: account },
        contextVariables: {},
      },
      identityPolicies: [{ name: policyName, policy: policy(policyName) }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
    },
    {},
  );
  if (!('overallResult' in result)) throw new Error(JSON.stringify(result));
  return result.overallResult;
};

const describeRoute = (r: Route) => `${r.method} ${r.path}`;

describe('the API policies the stack outputs', () => {
  it('find the routes in serverless.yml: users’, instances’ and the Slack-mapping administrators’', () => {
    expect(userRoutes.map(describeRoute)).toContain('POST /v1/annexes');
    expect(iamRoutes.filter(isInstanceRoute)).toHaveLength(3);
    expect(iamRoutes.filter(isAdminRoute)).toHaveLength(3);
  });

  it('AnnexUser: allows every user route, and no instance or Slack-mapping route', async () => {
    for (const r of userRoutes)
      expect([describeRoute(r), await decide('AnnexUserPolicy', routeArn(r))]).toEqual([
        describeRoute(r),
        'Allowed',
      ]);
    for (const r of iamRoutes.filter((x) => isInstanceRoute(x) || isAdminRoute(x)))
      expect([describeRoute(r), await decide('AnnexUserPolicy', routeArn(r))]).toEqual([
        describeRoute(r),
        'ImplicitlyDenied',
      ]);
  });

  it('AnnexAdmin: allows every route', async () => {
    for (const r of iamRoutes)
      expect([describeRoute(r), await decide('AnnexAdminPolicy', routeArn(r))]).toEqual([
        describeRoute(r),
        'Allowed',
      ]);
  });

  it('neither reaches another API of the account', async () => {
    const create = userRoutes.find((r) => r.method === 'POST' && r.path === '/v1/annexes');
    if (create === undefined) throw new Error('no create route');
    expect(await decide('AnnexUserPolicy', routeArn(create, 'otherapi01'))).toBe('ImplicitlyDenied');
    expect(await decide('AnnexAdminPolicy', routeArn(create, 'otherapi01'))).toBe('ImplicitlyDenied');
  });
});
