// `npm run dev:instances`: the EC2 instances of the local stack's annexes, as the emulator has
// them (tags and state), read with the real SDK from the endpoint in .annex/dev.env.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { repoRoot } from './lib/serverless-config.ts';

const env = Object.fromEntries(
  readFileSync(join(repoRoot, '.annex', 'dev.env'), 'utf8')
    .split('\n')
    .flatMap((line) => {
      const m = /^export ([A-Z_]+)=(.*)$/.exec(line);
      return m === null ? [] : [[m[1], m[2]]];
    }),
) as Record<string, string>;

const endpoint = env.AWS_ENDPOINT_URL;
if (endpoint === undefined || !/^http:\/\/127\.0\.0\.1:/.test(endpoint)) {
  console.error('no local stack found: run `npm run dev` first');
  process.exit(1);
}

const ec2 = new EC2Client({
  endpoint,
  region: env.AWS_REGION ?? 'us-east-1',
  credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  maxAttempts: 1,
});
const out = await ec2.send(
  new DescribeInstancesCommand({ Filters: [{ Name: 'tag-key', Values: ['annex:id'] }] }),
);
const rows = (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
if (rows.length === 0) console.log('no annex instances yet');
for (const i of rows) {
  const tag = (k: string) => i.Tags?.find((t) => t.Key === k)?.Value ?? '-';
  console.log(
    [
      i.InstanceId,
      i.State?.Name,
      i.InstanceType,
      tag('annex:name'),
      tag('annex:id'),
      `expires ${tag('annex:expires-at')}`,
    ].join('  '),
  );
}
