/** Wiring for the functions that launch, retag or terminate instances (the only EC2 users). */
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { ExtendDeps, LaunchDeps, TerminateDeps } from '../domain/annexes.ts';
import { launchSettings } from '../config.ts';
import { readDeps } from './deps.ts';
import { Ec2Compute } from './ec2.ts';
import { SsmSecretStore } from './secrets.ts';

let compute: Ec2Compute | undefined;
const ec2 = (): Ec2Compute => (compute ??= new Ec2Compute(new EC2Client({})));

let secrets: SsmSecretStore | undefined;
const ssm = (): SsmSecretStore =>
  (secrets ??= new SsmSecretStore(new SSMClient({}), readDeps().settings.stage));

export const launchDeps = (): LaunchDeps => ({
  ...readDeps(),
  compute: ec2(),
  secrets: ssm(),
  launch: launchSettings(),
});

export const extendDeps = (): ExtendDeps => ({ ...readDeps(), compute: ec2() });

export const terminateDeps = (): TerminateDeps => ({ ...readDeps(), compute: ec2(), secrets: ssm() });
