/**
 * The heavy part, loaded only by commands that send requests: the AWS default credential chain
 * (environment, shared config and credentials files with profiles, SSO, web identity, process,
 * container and instance roles), the AWS profile's region, and SigV4 signing for `execute-api`.
 */
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { loadSharedConfigFiles } from '@smithy/core/config';
import { SignatureV4 } from '@smithy/signature-v4';
import { readFileSync } from 'node:fs';
import { CliError } from './errors.ts';
import { NodeSha256 } from './sha256.ts';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export type CredentialSource = () => Promise<Credentials>;

const NO_CREDENTIALS_HINT =
  'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, pass --profile NAME, or run aws sso login';

/** The default credential chain (memoized: one lookup per run). */
export const defaultCredentials = (profile: string | undefined): CredentialSource => {
  const provider = fromNodeProviderChain(profile === undefined ? {} : { profile });
  let pending: Promise<Credentials> | undefined;
  return () => {
    pending ??= provider().then(
      (c) => ({
        accessKeyId: c.accessKeyId,
        secretAccessKey: c.secretAccessKey,
        ...(c.sessionToken === undefined ? {} : { sessionToken: c.sessionToken }),
      }),
      (e: unknown) => {
        const message = e instanceof Error ? e.message : String(e);
        const nothing = /could not load credentials from any providers/i.test(message);
        throw new CliError(
          nothing
            ? 'no AWS credentials found'
            : `could not load AWS credentials${profile === undefined ? '' : ` for profile ${profile}`}: ${message}`,
          {
            code: 'NoCredentials',
            hint: /sso/i.test(message)
              ? `run aws sso login${profile === undefined ? '' : ` --profile ${profile}`}`
              : NO_CREDENTIALS_HINT,
            cause: e,
          },
        );
      },
    );
    return pending;
  };
};

/** condor_annex's `-aws-access-key-file` / `-aws-secret-key-file`: one key per file. */
export const credentialsFromFiles = (accessKeyFile: string, secretKeyFile: string): CredentialSource => {
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch (e) {
      throw new CliError(`cannot read ${path}: ${(e as Error).message}`, { code: 'NoCredentials' });
    }
  };
  const credentials = { accessKeyId: read(accessKeyFile), secretAccessKey: read(secretKeyFile) };
  return async () => credentials;
};

/** The `region` of an AWS profile in the shared config file, if it names one. */
export const profileRegion = async (profile: string | undefined): Promise<string | undefined> => {
  const name = profile ?? process.env.AWS_PROFILE ?? 'default';
  try {
    const files = await loadSharedConfigFiles();
    return files.configFile?.[name]?.region ?? files.credentialsFile?.[name]?.region;
  } catch {
    return undefined;
  }
};

export interface SignableRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: string;
}

/** Signs a request for API Gateway (`execute-api`); returns the headers to send. */
export const signRequest = async (
  request: SignableRequest,
  credentials: Credentials,
  region: string,
  signingDate?: Date,
): Promise<Record<string, string>> => {
  const signer = new SignatureV4({
    service: 'execute-api',
    region,
    credentials,
    sha256: NodeSha256,
    uriEscapePath: true,
    applyChecksum: true,
  });
  const query: Record<string, string | string[]> = {};
  for (const [key, value] of request.url.searchParams) {
    const existing = query[key];
    query[key] =
      existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
  }
  const signed = await signer.sign(
    {
      method: request.method,
      protocol: request.url.protocol,
      hostname: request.url.hostname,
      ...(request.url.port === '' ? {} : { port: Number(request.url.port) }),
      path: decodeURIComponent(request.url.pathname),
      query,
      headers: { ...request.headers, host: request.url.host },
      ...(request.body === undefined ? {} : { body: request.body }),
    },
    signingDate === undefined ? {} : { signingDate },
  );
  const { host: _host, ...headers } = signed.headers;
  return headers;
};
