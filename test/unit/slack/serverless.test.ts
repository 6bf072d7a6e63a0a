// The Slack functions' roles in serverless.yml: least privilege, and the worker in step with the
// roles whose work it does (it creates, extends and ends annexes as the API functions do).
import { describe, expect, it } from 'vitest';
import { actions, serverlessConfig as config, statements } from '../../support/serverless-roles.ts';

describe('Slack roles', () => {
  it('let the worker do everything the create, extend and terminate functions may', () => {
    const worker = actions('SlackWorkerRole');
    for (const role of ['LaunchRole', 'ExtendRole', 'TerminateRole']) {
      expect(
        [...actions(role)].filter((a) => !worker.has(a)),
        role,
      ).toEqual([]);
    }
    expect(config.functions.slackWorker).toMatchObject({ role: 'SlackWorkerRole', maximumRetryAttempts: 0 });
  });

  it('give the Slack routes only the signing secret, the worker and the Slack items', () => {
    expect(config.functions.slackCommands?.role).toBe('SlackIngressRole');
    expect(config.functions.slackInteractions?.role).toBe('SlackIngressRole');
    const ingress = statements('SlackIngressRole');
    expect([...actions('SlackIngressRole')].sort()).toEqual([
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'lambda:InvokeFunction',
      'ssm:GetParameter',
    ]);
    expect(JSON.stringify(ingress.find((s) => s.Action.includes('ssm:GetParameter'))?.Resource)).toMatch(
      /parameter\/annex\/\$\{sls:stage\}\/slack\/signing-secret"\}\]$/,
    );
    expect(JSON.stringify(ingress.find((s) => s.Action.includes('lambda:InvokeFunction'))?.Resource)).toMatch(
      /function:\$\{self:custom.slackWorker\}"\}\]$/,
    );
    for (const s of ingress.filter((x) => String(x.Action).startsWith('dynamodb:'))) {
      expect(JSON.stringify(s.Condition)).toMatch(/dynamodb:LeadingKeys.*SLACK(USER|NONCE)#\*/);
    }
  });

  it('give only the notifier the bot token', () => {
    const readers = Object.keys(config.resources.Resources).filter((role) =>
      JSON.stringify(statements(role)).includes('slack/bot-token'),
    );
    expect(readers).toEqual(['SlackNotifyRole']);
  });
});
