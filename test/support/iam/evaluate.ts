/**
 * Evaluates IAM requests against a role of the packaged template with a real IAM policy simulator
 * (`@cloud-copilot/iam-simulate`, AGPL-3.0, a dev-only test dependency: never bundled). A denial
 * says which statement is missing: the request (action, resource, context) and, for every
 * statement of the role that names the action, why it does not apply (resource or condition).
 */
import { runSimulation, type RequestAnalysis } from '@cloud-copilot/iam-simulate';
import type { IamRequest } from './requests.ts';
import type { RoleModel, StackModel } from './template.ts';

export type Decision = 'Allowed' | 'ImplicitlyDenied' | 'ExplicitlyDenied';

export interface Verdict {
  decision: Decision;
  /** For a denial: the missing statement and the near misses. */
  explanation: string;
}

/** The context keys a role's conditions read (IAM looks at no other): the cache key of a request. */
const conditionKeys = (role: RoleModel): Set<string> =>
  new Set(
    role.policies.flatMap((p) =>
      p.policy.Statement.flatMap((s) =>
        Object.values(s.Condition ?? {}).flatMap((byKey) => Object.keys(byKey).map((k) => k.toLowerCase())),
      ),
    ),
  );

/** Why each statement of the role that names the action does not allow this request. */
const describeNearMisses = (analysis: RequestAnalysis | undefined, request: IamRequest): string[] =>
  (analysis?.identityAnalysis?.unmatchedStatements ?? [])
    .filter((s) => s.actionMatch)
    .map((s) => {
      const json = s.statement.toJSON() as { Resource?: unknown; Condition?: unknown };
      const where = `${s.policyId} statement ${s.statement.index() + 1}${s.statement.sid() === undefined ? '' : ` (${s.statement.sid()})`}`;
      if (!s.resourceMatch) {
        return `${where} allows it on ${JSON.stringify(json.Resource)}, not on ${request.resource}`;
      }
      const failed = (s.explain.conditions ?? [])
        .filter((c) => !c.matches)
        .map((c) =>
          c.failedBecauseMissing === true
            ? `${c.conditionKeyValue} is absent from the request`
            : `${c.operator} ${c.conditionKeyValue} does not hold for ${JSON.stringify(
                c.unmatchedValues ?? request.context[c.conditionKeyValue] ?? null,
              )}`,
        );
      return `${where} requires ${JSON.stringify(json.Condition)}: ${failed.join('; ')}`;
    });

const matchesAction = (pattern: string, action: string): boolean =>
  new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    'i',
  ).test(action);

/** The role's statements that allow the action, and where: when the simulator had no analysis. */
const statementsNaming = (role: RoleModel, request: IamRequest): string[] =>
  role.policies.flatMap((p) =>
    p.policy.Statement.flatMap((s, i) =>
      s.Effect === 'Allow' && [s.Action ?? []].flat().some((a) => matchesAction(a, request.action))
        ? [
            `${p.name} statement ${i + 1} allows it on ${JSON.stringify(s.Resource)}${
              s.Condition === undefined ? '' : ` if ${JSON.stringify(s.Condition)}`
            }, not on ${request.resource}`,
          ]
        : [],
    ),
  );

export class RoleEvaluator {
  private readonly cache = new Map<string, Promise<Verdict>>();
  private readonly keysByRole = new Map<string, Set<string>>();

  constructor(private readonly model: StackModel) {}

  /** Distinct requests simulated so far (the rest were answered from the cache). */
  get simulations(): number {
    return this.cache.size;
  }

  evaluate(role: RoleModel, request: IamRequest): Promise<Verdict> {
    let keys = this.keysByRole.get(role.logicalId);
    if (keys === undefined) this.keysByRole.set(role.logicalId, (keys = conditionKeys(role)));
    const relevant = Object.fromEntries(
      Object.entries(request.context)
        .filter(([k]) => keys.has(k.toLowerCase()))
        .sort(([a], [b]) => a.localeCompare(b)),
    );
    const cacheKey = JSON.stringify([role.logicalId, request.action, request.resource, relevant]);
    let verdict = this.cache.get(cacheKey);
    if (verdict === undefined) {
      verdict = this.simulate(role, { ...request, context: relevant });
      this.cache.set(cacheKey, verdict);
    }
    return verdict;
  }

  private async simulate(role: RoleModel, request: IamRequest): Promise<Verdict> {
    const result = await runSimulation(
      {
        request: {
          principal: role.arn,
          action: request.action,
          resource: { resource: request.resource, accountId: this.model.account },
          contextVariables: request.context,
        },
        identityPolicies: role.policies,
        serviceControlPolicies: [],
        resourceControlPolicies: [],
      },
      {},
    );
    if (result.resultType === 'error') {
      throw new Error(
        `the simulator refused ${request.action} on ${request.resource} for ${role.logicalId}: ${JSON.stringify(result.errors)}`,
      );
    }
    const decision = result.overallResult;
    if (decision === 'Allowed') return { decision, explanation: '' };
    const analyses =
      result.resultType === 'single' ? [result.result.analysis] : result.results.map((r) => r.analysis);
    const misses = [...new Set(analyses.flatMap((a) => describeNearMisses(a, request)))];
    // A wildcard resource that no statement's pattern covers comes back without an analysis.
    if (misses.length === 0) misses.push(...statementsNaming(role, request));
    const missing = {
      Effect: 'Allow',
      Action: request.action,
      Resource: request.resource,
      ...(Object.keys(request.context).length === 0 ? {} : { 'request context': request.context }),
    };
    return {
      decision,
      explanation: [
        `missing statement in ${role.logicalId}: ${JSON.stringify(missing)}`,
        ...(misses.length === 0 ? [`no statement of ${role.logicalId} allows ${request.action}`] : misses),
      ].join('\n    '),
    };
  }
}
