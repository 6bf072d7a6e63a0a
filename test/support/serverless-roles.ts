/**
 * serverless.yml as the configuration tests read it: the functions' settings, and the IAM policy
 * statements and actions of each role.
 */
import { readServerlessYml } from '../../scripts/devstack/serverless-config.ts';

export interface Statement {
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
}

export interface FunctionConfig {
  role?: string;
  handler?: string;
  maximumRetryAttempts?: number;
  events?: { eventBridge?: { pattern?: Record<string, unknown> } }[];
}

export const serverlessConfig = readServerlessYml() as {
  functions: Record<string, FunctionConfig>;
  resources: {
    Resources: Record<
      string,
      { Properties: { Policies?: { PolicyDocument: { Statement: Statement[] } }[] } }
    >;
  };
};

/** Every statement of the role's inline policies. */
export const statements = (role: string): Statement[] =>
  (serverlessConfig.resources.Resources[role]?.Properties.Policies ?? []).flatMap(
    (p) => p.PolicyDocument.Statement,
  );

/** Every action the role's statements allow. */
export const actions = (role: string): Set<string> =>
  new Set(statements(role).flatMap((s) => [s.Action].flat()));
