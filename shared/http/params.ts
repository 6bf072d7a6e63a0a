/**
 * Path, query and header rules every route shares. Kept apart from the body schemas so that a
 * read-only function bundles only these (zod cannot drop schemas built at module load).
 */
import { en } from 'zod/locales';
import * as z from 'zod/mini';

// Only the English messages: importing `z.locales` would bundle every language.
z.config(en());

export const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export const name = z.string().check(z.regex(NAME, 'must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'));

export const NamePath = z.object({ name });
export const PoolPath = z.object({ pool: name });

const principalArn = z
  .string()
  .check(z.regex(/^arn:aws[a-z-]*:(iam|sts)::\d{12}:[\x21-\x7e]{1,1900}$/, 'must be an IAM principal ARN'));
export const OwnerQuery = z.object({ owner: z.optional(principalArn) });

export const IDEMPOTENCY_KEY = /^[A-Za-z0-9_.:-]{1,128}$/;
