/**
 * Request bodies of the instance routes (`/v1/instances/self/*`), apart from the user-facing
 * schemas so the instance functions bundle only these.
 */
import * as z from 'zod/mini';

const count = z.int().check(z.gte(0), z.lte(100_000));

export const HeartbeatBody = z.strictObject({
  claimedSlots: count,
  totalSlots: count,
  idleSeconds: z.int().check(z.gte(0), z.lte(10 * 365 * 24 * 3600)),
  state: z.enum(['booting', 'joined', 'draining']),
});

export const InterruptionBody = z.strictObject({
  action: z.enum(['terminate', 'stop', 'hibernate']),
  time: z.iso.datetime({ offset: true }),
});
