// The expire function in serverless.yml: its timeout covers the longest wait for the exact second
// and the work of ending an annex after it.
import { describe, expect, it } from 'vitest';
import { EXPIRY_MAX_WAIT_SECONDS } from '../../../shared/domain/lease.ts';
import { serverlessConfig } from '../../support/serverless-roles.ts';

describe('expire in serverless.yml', () => {
  it('may run for its longest wait plus a minute to end the annex', () => {
    const fn = serverlessConfig.functions.expire as { handler?: string; timeout?: number };
    expect(fn.handler).toBe('handlers/expire.handler');
    expect(fn.timeout).toBeGreaterThanOrEqual(EXPIRY_MAX_WAIT_SECONDS + 60);
    expect(fn.timeout).toBeLessThanOrEqual(900);
  });
});
