/**
 * What the adapter tests (aws-sdk-client-mock) share: the region and credentials of the SDK clients
 * whose commands are mocked, and errors shaped the way SDK v3 builds them.
 */
import { EC2ServiceException } from '@aws-sdk/client-ec2';
import { beforeAll } from 'vitest';

/** Region and (fake) credentials for an SDK client whose commands a mock answers. */
export const MOCKED_CLIENT_CONFIG = {
  region: 'us-east-1',
  credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'not-a-secret' },
};

/** Sets AWS_REGION before the tests of the enclosing block run, as Lambda does. */
export const useMockedRegion = (): void =>
  beforeAll(() => {
    process.env.AWS_REGION = 'us-east-1';
  });

/** An error shaped the way SDK v3 builds one for an EC2 error code. */
export const ec2Error = (name: string, message = `${name} happened`): EC2ServiceException =>
  new EC2ServiceException({ name, message, $fault: 'client', $metadata: { httpStatusCode: 400 } });
