/** The EventBridge fixtures of test/fixtures/ec2-events, aimed at a given instance (and time). */
import { readFileSync } from 'node:fs';

export type Ec2Fixture =
  | 'spot-interruption-warning'
  | 'rebalance-recommendation'
  | 'state-change-pending'
  | 'state-change-running'
  | 'state-change-shutting-down'
  | 'state-change-terminated';

const EXAMPLE_INSTANCE = 'i-1234567890abcdef0';

export const ec2Event = (
  fixture: Ec2Fixture,
  instanceId: string,
  over: { time?: Date | string; id?: string } = {},
): Record<string, unknown> => {
  const text = readFileSync(new URL(`../fixtures/ec2-events/${fixture}.json`, import.meta.url), 'utf8');
  const event = JSON.parse(text.replaceAll(EXAMPLE_INSTANCE, instanceId)) as Record<string, unknown>;
  if (over.time !== undefined) {
    // EventBridge times have second precision, without milliseconds.
    const iso = typeof over.time === 'string' ? over.time : over.time.toISOString();
    event.time = iso.replace(/\.\d{3}Z$/, 'Z');
  }
  if (over.id !== undefined) event.id = over.id;
  return event;
};
