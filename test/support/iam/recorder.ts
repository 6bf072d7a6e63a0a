/**
 * Records every AWS SDK call a function makes while the integration and e2e suites run, for the
 * IAM evaluation (test/iam/recorded-calls.test.ts). The functions' clients are created inside
 * shared/aws, once per cold start, so the hook sits where every SDK v3 client sends: the shared
 * `Client.prototype.send` of @smithy/core (one copy in node_modules: the evaluation fails when
 * nothing was recorded). A call is attributed to the function whose invocation is
 * running (scripts/devstack/invocation.ts); calls the tests make themselves belong to no function
 * and are not recorded.
 *
 * Each call is written once per distinct shape, as one JSON line: the function, its stage, the
 * service and command, the input reduced to what IAM reads (never a parameter value, user data,
 * payload or item body), and what EC2 knows of the resources it names (their tags, the launch
 * template's data, where a launch went), looked up in moto around the call, and for a launch the
 * subnets and security groups the local stack was configured with (its functions' environment).
 */
import {
  DescribeInstancesCommand,
  DescribeLaunchTemplateVersionsCommand,
  DescribeLaunchTemplatesCommand,
  EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import { appendFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { invokedFunction } from '../../../scripts/devstack/invocation.ts';
import { readServerlessYml } from '../../../scripts/devstack/serverless-config.ts';
import { projectInput, type CallFacts, type SdkCall } from './requests.ts';

type Send = (this: SdkClient, command: SdkCommand, optionsOrCb?: unknown, cb?: unknown) => unknown;
interface SdkClient {
  config: { serviceId?: string };
}
interface SdkCommand {
  input: Record<string, unknown>;
}

const require = createRequire(import.meta.url);
const smithyClient = (require('@smithy/core/client') as { Client: { prototype: { send: Send } } }).Client;

const INSTALLED = Symbol.for('annex.iamRecorder');

/** One line of a recording. */
export interface RecordedCall extends SdkCall {
  testFile?: string;
  /** Set when what EC2 knows about the call's resources could not be looked up. */
  lookupError?: string;
}

export interface RecordOptions {
  /** JSONL file this process appends to. */
  file: string;
  /** moto, for looking up what EC2 knows about the resources a call names. */
  motoEndpoint: string;
  region: string;
  /** The test file running, written with each call (to tell a full run from a partial one). */
  testFile: () => string | undefined;
}

/** The lease table's key attributes (table and indexes), from serverless.yml. */
const keyAttributes = (): Set<string> => {
  const config = readServerlessYml() as {
    resources: {
      Resources: { LeaseTable: { Properties: { AttributeDefinitions: { AttributeName: string }[] } } };
    };
  };
  return new Set(
    config.resources.Resources.LeaseTable.Properties.AttributeDefinitions.map((a) => a.AttributeName),
  );
};

const ids = (value: string | undefined): string[] =>
  (value ?? '')
    .split(',')
    .map((id) => id.trim())
    .filter((id) => id !== '');

/** What the stack's launches may use: its defaults and the further subnets and groups it allows. */
const configuredNetwork = (): NonNullable<SdkCall['network']> => ({
  subnetIds: [
    ...new Set([...ids(process.env.ANNEX_DEFAULT_SUBNET_IDS), ...ids(process.env.ANNEX_ALLOWED_SUBNET_IDS)]),
  ],
  securityGroupIds: [
    ...new Set([
      ...ids(process.env.ANNEX_DEFAULT_SECURITY_GROUP_IDS),
      ...ids(process.env.ANNEX_ALLOWED_SECURITY_GROUP_IDS),
    ]),
  ],
});

const tagsOf = (tags: { Key?: string; Value?: string }[] | undefined): Record<string, string> =>
  Object.fromEntries((tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));

/** `annex-<stage>-<key>` → stage and key. */
const parseFunctionName = (name: string, service: string): { stage: string; key: string } | undefined => {
  if (!name.startsWith(`${service}-`)) return undefined;
  const rest = name.slice(service.length + 1);
  const dash = rest.lastIndexOf('-');
  return dash <= 0 ? undefined : { stage: rest.slice(0, dash), key: rest.slice(dash + 1) };
};

export function recordAwsCalls(options: RecordOptions): void {
  const global = globalThis as { [INSTALLED]?: boolean };
  if (global[INSTALLED] === true) return;
  global[INSTALLED] = true;

  const service = (readServerlessYml() as { service: string }).service;
  const keys = keyAttributes();
  const lookups = new EC2Client({
    endpoint: options.motoEndpoint,
    region: options.region,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    maxAttempts: 1,
  });
  const written = new Set<string>();
  mkdirSync(dirname(options.file), { recursive: true });
  const original = smithyClient.prototype.send;

  const describeInstances = async (ids: string[]): Promise<Instance[]> => {
    const out = await lookups.send(
      new DescribeInstancesCommand({ Filters: [{ Name: 'instance-id', Values: ids }] }),
    );
    return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
  };

  const instanceTags = async (ids: string[]): Promise<Record<string, Record<string, string>>> => {
    if (ids.length === 0) return {};
    const found = await describeInstances(ids);
    return Object.fromEntries(found.map((i) => [i.InstanceId ?? '', tagsOf(i.Tags)]));
  };

  const launchTemplate = async (input: Record<string, unknown>): Promise<CallFacts['launchTemplate']> => {
    const spec = (input.LaunchTemplate ??
      (input.LaunchTemplateConfigs as { LaunchTemplateSpecification?: unknown }[] | undefined)?.[0]
        ?.LaunchTemplateSpecification ??
      input) as { LaunchTemplateName?: string; LaunchTemplateId?: string };
    if (spec.LaunchTemplateName === undefined && spec.LaunchTemplateId === undefined) return undefined;
    const filter =
      spec.LaunchTemplateId === undefined
        ? { Name: 'launch-template-name', Values: [spec.LaunchTemplateName ?? ''] }
        : { Name: 'launch-template-id', Values: [spec.LaunchTemplateId] };
    const out = await lookups.send(new DescribeLaunchTemplatesCommand({ Filters: [filter] }));
    const template = out.LaunchTemplates?.[0];
    if (template?.LaunchTemplateId === undefined) return undefined;
    const versions = await lookups.send(
      new DescribeLaunchTemplateVersionsCommand({
        LaunchTemplateId: template.LaunchTemplateId,
        Versions: ['$Latest'],
      }),
    );
    const data = projectInput(
      'EC2',
      'LaunchTemplateData',
      (versions.LaunchTemplateVersions?.[0]?.LaunchTemplateData ?? {}) as Record<string, unknown>,
      keys,
    );
    return { id: template.LaunchTemplateId, tags: tagsOf(template.Tags), data };
  };

  const launched = async (command: string, output: unknown): Promise<CallFacts['launched']> => {
    const o = output as { Instances?: (Instance & { InstanceIds?: string[] })[] };
    let instances: Instance[] = o.Instances ?? [];
    if (command === 'CreateFleetCommand') {
      // A fleet answers with groups of instance ids: their subnets and groups are in EC2.
      const ids = (o.Instances ?? []).flatMap((g) => g.InstanceIds ?? []);
      if (ids.length === 0) return undefined;
      instances = await describeInstances(ids);
    }
    return {
      subnetIds: [...new Set(instances.flatMap((i) => (i.SubnetId === undefined ? [] : [i.SubnetId])))],
      securityGroupIds: [
        ...new Set(
          instances.flatMap((i) => (i.SecurityGroups ?? []).flatMap((g) => (g.GroupId ? [g.GroupId] : []))),
        ),
      ],
    };
  };

  const factsBefore = async (command: string, input: Record<string, unknown>): Promise<CallFacts> => {
    switch (command) {
      case 'TerminateInstancesCommand':
        return { instanceTags: await instanceTags((input.InstanceIds as string[] | undefined) ?? []) };
      case 'CreateTagsCommand':
        return { instanceTags: await instanceTags((input.Resources as string[] | undefined) ?? []) };
      case 'DeleteLaunchTemplateCommand':
      case 'CreateFleetCommand':
      case 'RunInstancesCommand': {
        const template = await launchTemplate(input);
        return template === undefined ? {} : { launchTemplate: template };
      }
      default:
        return {};
    }
  };

  const write = (call: RecordedCall): void => {
    const line = JSON.stringify(call);
    if (written.has(line)) return;
    written.add(line);
    appendFileSync(options.file, `${line}\n`);
  };

  smithyClient.prototype.send = function send(this: SdkClient, command, optionsOrCb, cb) {
    const name = invokedFunction();
    const parsed = name === undefined ? undefined : parseFunctionName(name, service);
    if (parsed === undefined || this === (lookups as unknown) || typeof optionsOrCb === 'function') {
      return original.call(this, command, optionsOrCb, cb);
    }
    const serviceId = this.config.serviceId ?? 'unknown';
    const commandName = (command as object).constructor.name;
    return (async () => {
      let facts: CallFacts = {};
      let lookupError: string | undefined;
      try {
        if (serviceId === 'EC2') facts = await factsBefore(commandName, command.input);
      } catch (e) {
        lookupError = `looking up what EC2 knows failed: ${(e as Error).message}`;
      }
      let output: unknown;
      try {
        output = await original.call(this, command, optionsOrCb);
        return output;
      } finally {
        if (
          output !== undefined &&
          (commandName === 'RunInstancesCommand' || commandName === 'CreateFleetCommand')
        ) {
          try {
            const where = await launched(commandName, output);
            if (where !== undefined) facts.launched = where;
          } catch (e) {
            lookupError = `looking up the launched instances failed: ${(e as Error).message}`;
          }
        }
        const testFile = options.testFile();
        write({
          function: parsed.key,
          stage: parsed.stage,
          service: serviceId,
          command: commandName,
          input: projectInput(serviceId, commandName, command.input, keys),
          ...(Object.keys(facts).length === 0 ? {} : { facts }),
          ...(commandName === 'RunInstancesCommand' || commandName === 'CreateFleetCommand'
            ? { network: configuredNetwork() }
            : {}),
          ...(testFile === undefined ? {} : { testFile }),
          ...(lookupError === undefined ? {} : { lookupError }),
        });
      }
    })();
  };
}
