import {
  AddTagsToResourceCommand,
  DeleteParameterCommand,
  GetParameterCommand,
  ParameterAlreadyExists,
  ParameterNotFound,
  PutParameterCommand,
  SSMClient,
  SSMServiceException,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { SsmSecretStore, annexCredentialParameter } from '../../../shared/aws/secrets.ts';
import { useMockedRegion, MOCKED_CLIENT_CONFIG } from '../../support/aws-mocks.ts';

const SECRET = 'pool-password-7f3a9c1e-DO-NOT-LEAK';
const POOL_PARAMETER = '/annex/test/pools/private/0123456789abcdef/cm/credential';
const ANNEX_ID = 'ax-0123456789abcdef0123';
const ANNEX_PARAMETER = `/annex/test/annexes/${ANNEX_ID}/pool-credentials`;

const notFound = () => new ParameterNotFound({ message: 'Parameter not found.', $metadata: {} });
const alreadyExists = () =>
  new ParameterAlreadyExists({ message: 'The parameter already exists.', $metadata: {} });
const throttled = () =>
  new SSMServiceException({
    name: 'ThrottlingException',
    message: 'Rate exceeded',
    $fault: 'client',
    $metadata: { httpStatusCode: 400 },
  });

/** Everything about an error a caller might print or serialise. */
const everythingIn = (e: unknown): string => {
  const err = e as Error & { cause?: unknown };
  return [String(err), err.message, err.stack, JSON.stringify(err)].join('\n');
};

const ssmClient = () => new SSMClient(MOCKED_CLIENT_CONFIG);

const failureOf = async (promise: Promise<unknown>): Promise<unknown> => {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error('expected a failure');
};

describe('SsmSecretStore', () => {
  const ssmMock = mockClient(SSMClient);
  let store: SsmSecretStore;

  useMockedRegion();

  beforeEach(() => {
    ssmMock.reset();
    store = new SsmSecretStore(ssmClient(), 'test', 'alias/annex-test');
  });

  it('names the annex copy after the stage and annex id', () => {
    // Assess
    expect(annexCredentialParameter('test', ANNEX_ID)).toBe(ANNEX_PARAMETER);
  });

  describe('putPoolCredential', () => {
    it('writes a SecureString with Overwrite, then tags it separately', async () => {
      // Prepare
      ssmMock.on(PutParameterCommand).resolves({ Version: 1 });
      ssmMock.on(AddTagsToResourceCommand).resolves({});

      // Act
      await store.putPoolCredential(POOL_PARAMETER, SECRET, { 'annex:pool': 'cm' });

      // Assess
      expect(ssmMock).toHaveReceivedCommandExactlyOnceWith(PutParameterCommand, {
        Name: POOL_PARAMETER,
        Value: SECRET,
        Type: 'SecureString',
        Overwrite: true,
        KeyId: 'alias/annex-test',
      });
      expect(ssmMock.commandCalls(PutParameterCommand)[0]?.args[0].input).not.toHaveProperty('Tags');
      expect(ssmMock).toHaveReceivedCommandExactlyOnceWith(AddTagsToResourceCommand, {
        ResourceType: 'Parameter',
        ResourceId: POOL_PARAMETER,
        Tags: [{ Key: 'annex:pool', Value: 'cm' }],
      });
    });

    it('leaves KeyId out when no KMS key is configured', async () => {
      // Prepare
      ssmMock.on(PutParameterCommand).resolves({ Version: 1 });
      ssmMock.on(AddTagsToResourceCommand).resolves({});
      const withDefaultKey = new SsmSecretStore(ssmClient(), 'test');

      // Act
      await withDefaultKey.putPoolCredential(POOL_PARAMETER, SECRET, {});

      // Assess
      expect(ssmMock.commandCalls(PutParameterCommand)[0]?.args[0].input).not.toHaveProperty('KeyId');
    });

    it('reports UpstreamUnavailable when SSM throttles', async () => {
      // Prepare
      ssmMock.on(PutParameterCommand).rejects(throttled());

      // Act
      const failure = store.putPoolCredential(POOL_PARAMETER, SECRET, {});

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'UpstreamUnavailable' });
      expect(ssmMock).not.toHaveReceivedCommand(AddTagsToResourceCommand);
    });
  });

  describe('putAnnexCredential', () => {
    it('creates the annex copy with its tags and returns its name', async () => {
      // Prepare
      ssmMock.on(PutParameterCommand).resolves({ Version: 1 });

      // Act
      const name = await store.putAnnexCredential(ANNEX_ID, SECRET, { 'annex:id': ANNEX_ID });

      // Assess
      expect(name).toBe(ANNEX_PARAMETER);
      expect(ssmMock).toHaveReceivedCommandExactlyOnceWith(PutParameterCommand, {
        Name: ANNEX_PARAMETER,
        Value: SECRET,
        Type: 'SecureString',
        KeyId: 'alias/annex-test',
        Tags: [{ Key: 'annex:id', Value: ANNEX_ID }],
      });
      expect(ssmMock.commandCalls(PutParameterCommand)[0]?.args[0].input).not.toHaveProperty('Overwrite');
    });

    it('overwrites the value without tags when a retry finds the copy already there', async () => {
      // Prepare
      ssmMock.on(PutParameterCommand).rejectsOnce(alreadyExists()).resolves({ Version: 2 });

      // Act
      const name = await store.putAnnexCredential(ANNEX_ID, SECRET, { 'annex:id': ANNEX_ID });

      // Assess
      expect(name).toBe(ANNEX_PARAMETER);
      const inputs = ssmMock.commandCalls(PutParameterCommand).map((c) => c.args[0].input);
      expect(inputs).toHaveLength(2);
      expect(inputs[1]).toEqual({
        Name: ANNEX_PARAMETER,
        Value: SECRET,
        Type: 'SecureString',
        KeyId: 'alias/annex-test',
        Overwrite: true,
      });
    });

    it('reports UpstreamUnavailable when the overwrite is throttled', async () => {
      // Prepare
      ssmMock.on(PutParameterCommand).rejectsOnce(alreadyExists()).rejects(throttled());

      // Act
      const failure = store.putAnnexCredential(ANNEX_ID, SECRET, {});

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'UpstreamUnavailable' });
    });
  });

  describe('getCredential', () => {
    it('reads the parameter decrypted', async () => {
      // Prepare
      ssmMock.on(GetParameterCommand).resolves({ Parameter: { Name: POOL_PARAMETER, Value: SECRET } });

      // Act
      const value = await store.getCredential(POOL_PARAMETER);

      // Assess
      expect(value).toBe(SECRET);
      expect(ssmMock).toHaveReceivedCommandExactlyOnceWith(GetParameterCommand, {
        Name: POOL_PARAMETER,
        WithDecryption: true,
      });
    });

    it('reports a missing parameter as Conflict', async () => {
      // Prepare
      ssmMock.on(GetParameterCommand).rejects(notFound());

      // Act
      const failure = store.getCredential(POOL_PARAMETER);

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'Conflict' });
    });

    it('reports a parameter without a value as Conflict', async () => {
      // Prepare
      ssmMock.on(GetParameterCommand).resolves({ Parameter: { Name: POOL_PARAMETER } });

      // Act
      const failure = store.getCredential(POOL_PARAMETER);

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'Conflict' });
    });

    it('reports UpstreamUnavailable when SSM throttles', async () => {
      // Prepare
      ssmMock.on(GetParameterCommand).rejects(throttled());

      // Act
      const failure = store.getCredential(POOL_PARAMETER);

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'UpstreamUnavailable' });
    });
  });

  describe('deleteAnnexCredential', () => {
    it('deletes the annex copy', async () => {
      // Prepare
      ssmMock.on(DeleteParameterCommand).resolves({});

      // Act
      await store.deleteAnnexCredential(ANNEX_ID);

      // Assess
      expect(ssmMock).toHaveReceivedCommandExactlyOnceWith(DeleteParameterCommand, { Name: ANNEX_PARAMETER });
    });

    it('treats a copy that is already gone as deleted', async () => {
      // Prepare
      ssmMock.on(DeleteParameterCommand).rejects(notFound());

      // Act
      const done = store.deleteAnnexCredential(ANNEX_ID);

      // Assess
      await expect(done).resolves.toBeUndefined();
    });

    it('reports UpstreamUnavailable when SSM throttles', async () => {
      // Prepare
      ssmMock.on(DeleteParameterCommand).rejects(throttled());

      // Act
      const failure = store.deleteAnnexCredential(ANNEX_ID);

      // Assess
      await expect(failure).rejects.toMatchObject({ code: 'UpstreamUnavailable' });
    });
  });

  describe('keeping the secret out of errors', () => {
    it.each([
      [
        'a throttled pool write',
        () => ssmMock.on(PutParameterCommand).rejects(throttled()),
        (s: SsmSecretStore) => s.putPoolCredential(POOL_PARAMETER, SECRET, {}),
      ],
      [
        'a throttled pool tagging',
        () => {
          ssmMock.on(PutParameterCommand).resolves({});
          ssmMock.on(AddTagsToResourceCommand).rejects(throttled());
        },
        (s: SsmSecretStore) => s.putPoolCredential(POOL_PARAMETER, SECRET, {}),
      ],
      [
        'a throttled annex copy',
        () => ssmMock.on(PutParameterCommand).rejects(throttled()),
        (s: SsmSecretStore) => s.putAnnexCredential(ANNEX_ID, SECRET, {}),
      ],
      [
        'a throttled overwrite of the annex copy',
        () => ssmMock.on(PutParameterCommand).rejectsOnce(alreadyExists()).rejects(throttled()),
        (s: SsmSecretStore) => s.putAnnexCredential(ANNEX_ID, SECRET, {}),
      ],
      [
        'a missing value',
        () => ssmMock.on(GetParameterCommand).resolves({ Parameter: { Name: POOL_PARAMETER } }),
        (s: SsmSecretStore) => s.getCredential(POOL_PARAMETER),
      ],
      [
        'a missing parameter',
        () => ssmMock.on(GetParameterCommand).rejects(notFound()),
        (s: SsmSecretStore) => s.getCredential(POOL_PARAMETER),
      ],
      [
        'a throttled read',
        () => ssmMock.on(GetParameterCommand).rejects(throttled()),
        (s: SsmSecretStore) => s.getCredential(POOL_PARAMETER),
      ],
    ])('does not put the secret in the error for %s', async (_case, prepare, act) => {
      // Prepare
      prepare();

      // Act
      const error = await failureOf(act(store));

      // Assess
      expect(everythingIn(error)).not.toContain(SECRET);
      expect(everythingIn((error as { cause?: unknown }).cause ?? '')).not.toContain(SECRET);
    });
  });
});
