// `npm run dev:event -- <kind> <instance id | annex name>`: hands the local stack an EC2 event that
// moto can never produce; for an annex name, to the first of its running instances (by its tags). The dev runner (scripts/devstack/enforcer.ts) delivers files dropped into
// .annex/events to the functions whose EventBridge pattern matches, as EventBridge would.
//   spot-warning  EC2 Spot Instance Interruption Warning (instance-action terminate)
//   rebalance     EC2 Instance Rebalance Recommendation
//   terminate     terminates the instance in moto, as EC2 does two minutes after a warning; the
//                 runner then notices the state change and delivers its state-change event
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DescribeInstancesCommand, EC2Client, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { repoRoot } from './devstack/serverless-config.ts';

const DETAIL_TYPES = {
  'spot-warning': 'EC2 Spot Instance Interruption Warning',
  rebalance: 'EC2 Instance Rebalance Recommendation',
} as const;

const usage = 'usage: npm run dev:event -- spot-warning|rebalance|terminate <instance id | annex name>';

/** moto of the local stack (never anything else). */
const localEc2 = (region: string): EC2Client => {
  const endpoint = process.env.AWS_ENDPOINT_URL;
  if (endpoint === undefined) throw new Error('AWS_ENDPOINT_URL is not set: source .annex/dev.env first');
  if (!/^http:\/\/(127\.0\.0\.1|localhost)[:/]/.test(endpoint))
    throw new Error(`refusing to use ${endpoint}: this script talks to the local moto only`);
  return new EC2Client({ endpoint, region, maxAttempts: 1 });
};

/** The first running instance of the annex of that name in the stage (ANNEX_STAGE, default dev). */
const instanceOfAnnex = async (ec2: EC2Client, name: string): Promise<string> => {
  const { Reservations = [] } = await ec2.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: 'tag:annex:name', Values: [name] },
        { Name: 'tag:annex:stage', Values: [process.env.ANNEX_STAGE ?? 'dev'] },
        { Name: 'instance-state-name', Values: ['running'] },
      ],
    }),
  );
  const id = Reservations.flatMap((r) => r.Instances ?? [])[0]?.InstanceId;
  if (id === undefined) throw new Error(`annex ${name} has no running instance`);
  return id;
};

const main = async () => {
  const [kind, target] = process.argv.slice(2);
  if (target === undefined) throw new Error(usage);
  const region = process.env.AWS_REGION ?? 'us-east-1';
  const instanceId = /^i-[0-9a-f]{8,17}$/.test(target)
    ? target
    : /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(target)
      ? await instanceOfAnnex(localEc2(region), target)
      : undefined;
  if (instanceId === undefined) throw new Error(usage);
  if (kind === 'terminate') {
    const ec2 = localEc2(region);
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    console.log(`terminated ${instanceId} in moto; the dev runner delivers its state-change event`);
    return;
  }
  if (kind !== 'spot-warning' && kind !== 'rebalance') throw new Error(usage);
  const event = {
    version: '0',
    id: randomUUID(),
    'detail-type': DETAIL_TYPES[kind],
    source: 'aws.ec2',
    account: '123456789012',
    time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region,
    resources: [`arn:aws:ec2:${region}:123456789012:instance/${instanceId}`],
    detail:
      kind === 'spot-warning'
        ? { 'instance-id': instanceId, 'instance-action': 'terminate' }
        : { 'instance-id': instanceId },
  };
  const dir = join(repoRoot, '.annex', 'events');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${Date.now()}-${event.id}.json`);
  writeFileSync(file, `${JSON.stringify(event, null, 2)}\n`);
  console.log(`${event['detail-type']} for ${instanceId} queued (${file}); the dev runner delivers it`);
};

main().catch((e: unknown) => {
  console.error((e as Error).message);
  process.exit(1);
});
