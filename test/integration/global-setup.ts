// Starts DynamoDB Local and moto server once per test run and hands their endpoints to the tests
// (`inject('dynamoEndpoint')`, `inject('motoEndpoint')`); stops them when the run ends.
import type { TestProject } from 'vitest/node';
import { startEmulators } from '../../scripts/devstack/emulators.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    dynamoEndpoint: string;
    motoEndpoint: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const emulators = await startEmulators({ log: (line) => console.error(`[emulators] ${line}`) });
  project.provide('dynamoEndpoint', emulators.dynamoEndpoint);
  project.provide('motoEndpoint', emulators.motoEndpoint);
  return () => emulators.stop();
}
