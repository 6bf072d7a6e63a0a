// Callers of the local stack. The keys below are throw-away values that only the local gateway
// (scripts/devstack/gateway.ts) accepts; they are not, and never were, AWS credentials.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';

const devUser = z.object({
  name: z.string().min(1),
  accessKeyId: z.string().regex(/^[A-Z0-9]{16,128}$/),
  secretAccessKey: z.string().min(1),
  principalArn: z.string().startsWith('arn:'),
  admin: z.boolean().optional(),
  /** Temporary credentials (an assumed role, such as an annex instance's) carry a session token. */
  sessionToken: z.string().min(1).optional(),
});

/** An IAM principal the local gateway knows, with the keys it signs requests with. */
export type DevUser = z.infer<typeof devUser>;

const devUsersFile = z.object({ users: z.array(devUser).min(1) });

/** The user the dev tools act as unless told otherwise. */
export const defaultDevUserName = 'alice';

export function defaultDevUsers(): DevUser[] {
  return [
    {
      name: 'admin',
      accessKeyId: 'AKIADEVADMIN00000000',
      secretAccessKey: 'X1xW64jyj60KLUYB8VH6GxrW1eAngQ8x08LL4x0D',
      principalArn: 'arn:aws:iam::123456789012:user/annex-admin',
      admin: true,
    },
    {
      name: 'alice',
      accessKeyId: 'AKIADEVALICE00000000',
      secretAccessKey: 'b7ZSLQf021g3XZhLQKkbRSgAJBy9unTPQxsCeFSY',
      principalArn: 'arn:aws:iam::123456789012:user/alice',
    },
    {
      name: 'bob',
      accessKeyId: 'AKIADEVBOB0000000000',
      secretAccessKey: 'h5RH9XYxlmP1tRsyRWJSRJ5mKWbnnDOFPZjSqpV7',
      principalArn: 'arn:aws:iam::123456789012:user/bob',
    },
  ];
}

/** Reads a dev users file (`.annex/dev-users.json`), failing with the file name when it is malformed. */
export function loadDevUsers(path: string): DevUser[] {
  const parsed = devUsersFile.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success) throw new Error(`${path}: not a dev users file: ${parsed.error.message}`);
  return parsed.data.users;
}

export function writeDevUsers(path: string, users: readonly DevUser[]): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify({ users }, null, 2)}\n`, { mode: 0o600 });
}
