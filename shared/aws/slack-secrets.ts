/**
 * The Slack signing secret and bot token, SSM SecureStrings read with decryption and cached in
 * the Lambda for five minutes (a rotation takes effect within that). A value never leaves this
 * module except to its caller, and never appears in an error.
 */
import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { AnnexError } from '../domain/errors.ts';
import type { Clock } from '../domain/ports.ts';
import type { SlackSecrets } from '../slack/ports.ts';
import { awsErrorKind, SSM_ERRORS, translateAwsError } from './errors.ts';

const CACHE_MS = 5 * 60 * 1000;

export class SsmSlackSecrets implements SlackSecrets {
  private readonly cache = new Map<string, { value: string | undefined; until: number }>();

  constructor(
    private readonly ssm: SSMClient,
    private readonly parameters: { signingSecret: string; botToken: string },
    private readonly clock: Clock,
  ) {}

  async signingSecret(): Promise<string> {
    const value = await this.read(this.parameters.signingSecret);
    // Without a secret no request can be verified: a configuration error, never a pass.
    if (value === undefined)
      throw new AnnexError('Internal', 'the Slack signing secret parameter does not exist');
    return value;
  }

  botToken(): Promise<string | undefined> {
    return this.read(this.parameters.botToken);
  }

  private async read(name: string): Promise<string | undefined> {
    const now = this.clock.now().getTime();
    const cached = this.cache.get(name);
    if (cached !== undefined && cached.until > now) return cached.value;
    let value: string | undefined;
    try {
      const out = await this.ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
      value = out.Parameter?.Value;
    } catch (e) {
      if (awsErrorKind(SSM_ERRORS, e) !== 'not-found') {
        translateAwsError(SSM_ERRORS, e, 'Slack parameter', {
          unexpected: 'could not read a Slack parameter',
        });
      }
    }
    this.cache.set(name, { value, until: now + CACHE_MS });
    return value;
  }
}
