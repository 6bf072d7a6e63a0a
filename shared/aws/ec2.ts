/**
 * The EC2 adapter: the only module that imports the EC2 client. Launches with a client token per
 * attempt, finds instances by tag (never by token alone: see TOOLCHAIN.md on moto), treats
 * NotFound as success when terminating, and translates EC2 errors into domain errors.
 */
import {
  CreateTagsCommand,
  DescribeFleetsCommand,
  DescribeInstancesCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type EC2Client,
  type Instance,
  type Tag,
} from '@aws-sdk/client-ec2';
import { limitExceeded, validationError } from '../domain/errors.ts';
import { clientToken, launchesThroughFleet } from '../domain/lease.ts';
import type { InstanceState } from '../domain/model.ts';
import type {
  AnnexLaunchTemplate,
  Compute,
  LaunchedInstance,
  LaunchRequest,
  LaunchResult,
  TaggedInstance,
} from '../domain/ports.ts';
import {
  createFleetInput,
  createLaunchTemplateInput,
  describeStageTemplates,
  fleetOutcome,
  instanceBasics,
  launchTemplateName,
  sendCreateFleet,
  sendCreateLaunchTemplate,
  sendDeleteLaunchTemplate,
} from './fleet.ts';
import { type AwsErrorKind, awsErrorKind, EC2_ERRORS, errorCode, translateAwsError } from './errors.ts';

export const TAG = {
  id: 'annex:id',
  name: 'annex:name',
  owner: 'annex:owner',
  stage: 'annex:stage',
  expiresAt: 'annex:expires-at',
  batch: 'annex:batch',
} as const;

/** The tag EC2 puts on every instance an EC2 Fleet launches (an `aws:` tag: no caller can set it). */
export const FLEET_ID_TAG = 'aws:ec2:fleet-id';

/** What an EC2 error means to this adapter (shared/aws/errors.ts holds the table). */
export const classifyEc2Error = (e: unknown): AwsErrorKind | undefined => awsErrorKind(EC2_ERRORS, e);

const translate = (e: unknown, what: string): never => translateAwsError(EC2_ERRORS, e, what);

const STATES = new Set<InstanceState>([
  'pending',
  'running',
  'shutting-down',
  'terminated',
  'stopping',
  'stopped',
]);

const toLaunched = (i: Instance, batch: number): LaunchedInstance => {
  const tagBatch = Number(i.Tags?.find((t) => t.Key === TAG.batch)?.Value);
  const state = i.State?.Name as InstanceState | undefined;
  return {
    instanceId: i.InstanceId ?? '',
    instanceType: i.InstanceType ?? 'unknown',
    market: i.InstanceLifecycle === 'spot' ? 'spot' : 'on-demand',
    state: state !== undefined && STATES.has(state) ? state : 'pending',
    batch: Number.isInteger(tagBatch) ? tagBatch : batch,
    launchedAt: (i.LaunchTime ?? new Date(0)).toISOString(),
    ...(i.SubnetId === undefined ? {} : { subnetId: i.SubnetId }),
    ...(i.Placement?.AvailabilityZone === undefined
      ? {}
      : { availabilityZone: i.Placement.AvailabilityZone }),
    ...(i.PrivateIpAddress === undefined ? {} : { privateIpAddress: i.PrivateIpAddress }),
    ...(i.PublicIpAddress === undefined ? {} : { publicIpAddress: i.PublicIpAddress }),
    ...provenanceFacts(i),
  };
};

/** What DescribeInstances (or RunInstances' answer) says about who launched the instance. */
const provenanceFacts = (
  i: Instance,
): Pick<LaunchedInstance, 'clientToken' | 'instanceProfileArn' | 'fleetId'> => {
  const fleetId = i.Tags?.find((t) => t.Key === FLEET_ID_TAG)?.Value;
  return {
    ...(i.ClientToken === undefined || i.ClientToken === '' ? {} : { clientToken: i.ClientToken }),
    ...(i.IamInstanceProfile?.Arn === undefined ? {} : { instanceProfileArn: i.IamInstanceProfile.Arn }),
    ...(fleetId === undefined ? {} : { fleetId }),
  };
};

const chunks = <T>(items: T[], size: number): T[][] =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));

const NOT_TERMINATED = ['pending', 'running', 'stopping', 'stopped', 'shutting-down'];
const NEEDS_TERMINATION = ['pending', 'running', 'stopping', 'stopped'];

export class Ec2Compute implements Compute {
  /** `stage` scopes every annex lookup: the same annex id may exist in two stages of one account. */
  constructor(
    private readonly ec2: EC2Client,
    private readonly stage: string,
  ) {}

  async findBatchInstances(annexId: string, batch: number): Promise<LaunchedInstance[]> {
    return this.describe(
      [
        { Name: `tag:${TAG.id}`, Values: [annexId] },
        { Name: `tag:${TAG.stage}`, Values: [this.stage] },
        { Name: `tag:${TAG.batch}`, Values: [String(batch)] },
        { Name: 'instance-state-name', Values: NOT_TERMINATED },
      ],
      batch,
    );
  }

  async listAnnexInstances(annexId: string): Promise<LaunchedInstance[]> {
    return this.describe(
      [
        { Name: `tag:${TAG.id}`, Values: [annexId] },
        { Name: `tag:${TAG.stage}`, Values: [this.stage] },
        { Name: 'instance-state-name', Values: NEEDS_TERMINATION },
      ],
      0,
    );
  }

  async listStageInstances(stage: string = this.stage): Promise<TaggedInstance[]> {
    const found: TaggedInstance[] = [];
    await this.eachInstance(
      [
        { Name: `tag:${TAG.stage}`, Values: [stage] },
        { Name: 'tag-key', Values: [TAG.id] },
        { Name: 'instance-state-name', Values: NEEDS_TERMINATION },
      ],
      (i) => {
        const tagOf = (k: string) => i.Tags?.find((t) => t.Key === k)?.Value;
        const annexId = tagOf(TAG.id);
        if (annexId === undefined) return;
        const expiresAtTag = tagOf(TAG.expiresAt);
        found.push({ ...toLaunched(i, 0), annexId, ...(expiresAtTag === undefined ? {} : { expiresAtTag }) });
      },
    );
    return found;
  }

  async launch(req: LaunchRequest): Promise<LaunchResult> {
    const { spec } = req;
    // Spot, mixed, and hardware needs instead of types go through EC2 Fleet; plain on-demand
    // keeps RunInstances (types tried in order).
    if (launchesThroughFleet(spec)) return this.launchFleet(req);
    const tags: Tag[] = [
      ...Object.entries(spec.tags).map(([Key, Value]) => ({ Key, Value })),
      ...(spec.tags.Name === undefined ? [{ Key: 'Name', Value: `annex-${req.annexName}` }] : []),
      { Key: TAG.id, Value: req.annexId },
      { Key: TAG.name, Value: req.annexName },
      { Key: TAG.owner, Value: req.owner },
      { Key: TAG.stage, Value: req.stage },
      { Key: TAG.expiresAt, Value: req.expiresAt },
      { Key: TAG.batch, Value: String(req.batch) },
    ];
    const subnets: (string | undefined)[] = spec.subnetIds.length > 0 ? spec.subnetIds : [undefined];
    const attempts: LaunchResult['attempts'] = [];
    let attempt = 0;
    for (const instanceType of spec.instanceTypes) {
      for (const subnetId of subnets) {
        try {
          const out = await this.ec2.send(
            new RunInstancesCommand({
              ClientToken: clientToken(req.annexId, req.batch, attempt++, req.launchSecret),
              ...instanceBasics(req),
              InstanceType: instanceType as never,
              MinCount: req.count,
              MaxCount: req.count,
              ...(subnetId === undefined ? {} : { SubnetId: subnetId }),
              TagSpecifications: [
                { ResourceType: 'instance', Tags: tags },
                { ResourceType: 'volume', Tags: tags },
              ],
            }),
          );
          return { instances: (out.Instances ?? []).map((i) => toLaunched(i, req.batch)), attempts };
        } catch (e) {
          if (classifyEc2Error(e) !== 'capacity') return translate(e, 'the launch');
          attempts.push({
            instanceType,
            ...(subnetId === undefined ? {} : { subnetId }),
            error: errorCode(e),
          });
        }
      }
    }
    throw limitExceeded(
      `no capacity for ${req.count} × ${spec.instanceTypes.join('|')}: ${attempts.map((a) => a.error).join(', ')}`,
    );
  }

  /**
   * One instant fleet from the annex's launch template (created first if missing). The fleet's
   * client token is the batch's; a relaunch after an unknown outcome is prevented by the caller's
   * look-up by tag (findBatchInstances), never by the token alone.
   */
  private async launchFleet(req: LaunchRequest): Promise<LaunchResult> {
    const templateName = launchTemplateName(req.stage, req.annexId);
    const annexTags: Tag[] = [
      ...Object.entries(req.spec.tags).map(([Key, Value]) => ({ Key, Value })),
      { Key: TAG.id, Value: req.annexId },
      { Key: TAG.name, Value: req.annexName },
      { Key: TAG.owner, Value: req.owner },
      { Key: TAG.stage, Value: req.stage },
    ];
    try {
      await sendCreateLaunchTemplate(this.ec2, createLaunchTemplateInput(req, templateName, annexTags));
    } catch (e) {
      // Created by an earlier batch or attempt of this annex: its contents are the annex's, fixed at creation.
      if (classifyEc2Error(e) !== 'exists') return translate(e, 'the launch template');
    }
    const tags: Tag[] = [
      ...(req.spec.tags.Name === undefined ? [{ Key: 'Name', Value: `annex-${req.annexName}` }] : []),
      ...annexTags,
      { Key: TAG.expiresAt, Value: req.expiresAt },
      { Key: TAG.batch, Value: String(req.batch) },
    ];
    let out;
    try {
      out = await sendCreateFleet(this.ec2, createFleetInput(req, templateName, tags));
    } catch (e) {
      return translate(e, 'the fleet launch');
    }
    const { instances, errors } = fleetOutcome(out, req.batch, new Date().toISOString());
    const fleetId = out.FleetId;
    if (instances.length === 0) {
      // An instant fleet that launched nothing is a definite refusal: say which kind.
      const first = errors[0];
      const kind = first === undefined ? undefined : classifyEc2Error({ name: first.code });
      const codes = [...new Set(errors.map((e) => e.code))].join(', ') || 'no instances';
      if (typeof kind === 'object') {
        throw validationError(kind.field, `EC2 refused it (${first?.code}): ${first?.message}`);
      }
      throw limitExceeded(`the fleet launched none of ${req.count} instance(s): ${codes}`);
    }
    return {
      instances,
      attempts: [],
      fleetErrors: errors,
      ...(fleetId === undefined || fleetId === '' ? {} : { fleetId }),
    };
  }

  async deleteLaunchTemplate(annexId: string): Promise<void> {
    try {
      await sendDeleteLaunchTemplate(this.ec2, launchTemplateName(this.stage, annexId));
    } catch (e) {
      if (classifyEc2Error(e) !== 'not-found') translate(e, 'the launch template deletion');
    }
  }

  async listLaunchTemplates(): Promise<AnnexLaunchTemplate[]> {
    try {
      return await describeStageTemplates(this.ec2, this.stage, TAG);
    } catch (e) {
      return translate(e, 'the launch template listing');
    }
  }

  async fleetClientToken(fleetId: string): Promise<string | undefined> {
    try {
      const out = await this.ec2.send(new DescribeFleetsCommand({ FleetIds: [fleetId] }));
      return out.Fleets?.find((f) => f.FleetId === fleetId)?.ClientToken;
    } catch (e) {
      // A fleet id EC2 does not know is no fleet of ours.
      if (classifyEc2Error(e) === 'not-found') return undefined;
      return translate(e, 'the fleet look-up');
    }
  }

  async retag(instanceIds: string[], tags: Record<string, string>): Promise<void> {
    const Tags = Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
    await this.eachTolerantOfMissing(instanceIds, 'retagging', (ids) =>
      this.ec2.send(new CreateTagsCommand({ Resources: ids, Tags })),
    );
  }

  async terminate(instanceIds: string[]): Promise<void> {
    await this.eachTolerantOfMissing(instanceIds, 'termination', (ids) =>
      this.ec2.send(new TerminateInstancesCommand({ InstanceIds: ids })),
    );
  }

  /** Runs `call` over chunks; a chunk that names a missing instance is retried one id at a time. */
  private async eachTolerantOfMissing(
    instanceIds: string[],
    what: string,
    call: (ids: string[]) => Promise<unknown>,
  ): Promise<void> {
    for (const chunk of chunks(instanceIds, 500)) {
      try {
        await call(chunk);
      } catch (e) {
        if (classifyEc2Error(e) !== 'not-found') return translate(e, what);
        for (const id of chunk) {
          try {
            await call([id]);
          } catch (inner) {
            if (classifyEc2Error(inner) !== 'not-found') return translate(inner, what);
          }
        }
      }
    }
  }

  private async describe(
    Filters: { Name: string; Values: string[] }[],
    batch: number,
  ): Promise<LaunchedInstance[]> {
    const found: LaunchedInstance[] = [];
    await this.eachInstance(Filters, (i) => found.push(toLaunched(i, batch)));
    return found;
  }

  /** DescribeInstances in pages of up to 1000, following NextToken until EC2 stops giving one. */
  private async eachInstance(
    Filters: { Name: string; Values: string[] }[],
    visit: (i: Instance) => void,
  ): Promise<void> {
    let NextToken: string | undefined;
    do {
      let out;
      try {
        out = await this.ec2.send(new DescribeInstancesCommand({ Filters, MaxResults: 1000, NextToken }));
      } catch (e) {
        return translate(e, 'the instance listing');
      }
      for (const r of out.Reservations ?? []) for (const i of r.Instances ?? []) visit(i);
      NextToken = out.NextToken;
    } while (NextToken !== undefined && NextToken !== '');
  }
}
