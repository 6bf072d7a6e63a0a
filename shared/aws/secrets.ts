/**
 * The SSM adapter: pool credentials and each annex's copy, as SecureString parameters. Values
 * never leave this module except to the caller that asked for them; errors never carry them.
 */
import {
  AddTagsToResourceCommand,
  DeleteParameterCommand,
  DescribeParametersCommand,
  GetParameterCommand,
  PutParameterCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { conflict } from '../domain/errors.ts';
import type { SecretStore } from '../domain/ports.ts';
import { awsErrorKind, SSM_ERRORS, translateAwsError } from './errors.ts';

const translate = (e: unknown, what: string): never => translateAwsError(SSM_ERRORS, e, what);

const annexesPath = (stage: string): string => `/annex/${stage}/annexes/`;

export const annexCredentialParameter = (stage: string, annexId: string): string =>
  `${annexesPath(stage)}${annexId}/pool-credentials`;

const asTags = (tags: Record<string, string>) => Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));

export class SsmSecretStore implements SecretStore {
  constructor(
    private readonly ssm: SSMClient,
    private readonly stage: string,
    private readonly kmsKeyId?: string,
  ) {}

  async putPoolCredential(parameterName: string, value: string, tags: Record<string, string>): Promise<void> {
    try {
      await this.ssm.send(
        new PutParameterCommand({
          Name: parameterName,
          Value: value,
          Type: 'SecureString',
          Overwrite: true,
          ...(this.kmsKeyId === undefined ? {} : { KeyId: this.kmsKeyId }),
        }),
      );
      await this.ssm.send(
        new AddTagsToResourceCommand({
          ResourceType: 'Parameter',
          ResourceId: parameterName,
          Tags: asTags(tags),
        }),
      );
    } catch (e) {
      translate(e, 'storing the pool credential');
    }
  }

  async getCredential(parameterName: string): Promise<string> {
    try {
      const out = await this.ssm.send(new GetParameterCommand({ Name: parameterName, WithDecryption: true }));
      const value = out.Parameter?.Value;
      if (value === undefined) throw conflict('the pool credential is missing; register the pool again');
      return value;
    } catch (e) {
      if (awsErrorKind(SSM_ERRORS, e) === 'not-found') {
        throw conflict('the pool credential is missing; register the pool again');
      }
      return translate(e, 'reading the pool credential');
    }
  }

  getAnnexCredential(annexId: string): Promise<string> {
    return this.getCredential(annexCredentialParameter(this.stage, annexId));
  }

  async putAnnexCredential(annexId: string, value: string, tags: Record<string, string>): Promise<string> {
    const Name = annexCredentialParameter(this.stage, annexId);
    const common = {
      Name,
      Value: value,
      Type: 'SecureString' as const,
      ...(this.kmsKeyId === undefined ? {} : { KeyId: this.kmsKeyId }),
    };
    try {
      await this.ssm.send(new PutParameterCommand({ ...common, Tags: asTags(tags) }));
    } catch (e) {
      if (awsErrorKind(SSM_ERRORS, e) !== 'exists') return translate(e, 'storing the annex credential');
      // A retry of the same annex: its copy exists (tags included); make sure the value is current.
      try {
        await this.ssm.send(new PutParameterCommand({ ...common, Overwrite: true }));
      } catch (inner) {
        return translate(inner, 'storing the annex credential');
      }
    }
    return Name;
  }

  async deleteAnnexCredential(annexId: string): Promise<void> {
    try {
      await this.ssm.send(
        new DeleteParameterCommand({ Name: annexCredentialParameter(this.stage, annexId) }),
      );
    } catch (e) {
      if (awsErrorKind(SSM_ERRORS, e) !== 'not-found') translate(e, 'deleting the annex credential');
    }
  }

  async listAnnexCredentials(): Promise<{ annexId: string; lastModified?: string }[]> {
    const prefix = annexesPath(this.stage);
    const found: { annexId: string; lastModified?: string }[] = [];
    let NextToken: string | undefined;
    do {
      let out;
      try {
        out = await this.ssm.send(
          new DescribeParametersCommand({
            ParameterFilters: [{ Key: 'Path', Option: 'Recursive', Values: [prefix.slice(0, -1)] }],
            MaxResults: 50,
            NextToken,
          }),
        );
      } catch (e) {
        return translate(e, 'listing annex credentials');
      }
      for (const p of out.Parameters ?? []) {
        const m = /^([^/]+)\/pool-credentials$/.exec(p.Name?.slice(prefix.length) ?? '');
        if (p.Name?.startsWith(prefix) === true && m?.[1] !== undefined) {
          found.push({
            annexId: m[1],
            ...(p.LastModifiedDate === undefined ? {} : { lastModified: p.LastModifiedDate.toISOString() }),
          });
        }
      }
      NextToken = out.NextToken;
    } while (NextToken !== undefined && NextToken !== '');
    return found;
  }
}
