// Partial capacity that moto cannot produce: moto's instant fleets always fill their target. This
// wraps a real EC2 client (tests only): after a real CreateFleet, it terminates `missing` of the
// instances moto launched and answers as AWS does when it fell short: without them, and with
// `Errors` entries (InsufficientInstanceCapacity, MaxSpotInstanceCountExceeded, ...).
import {
  TerminateInstancesCommand,
  type CreateFleetCommandOutput,
  type CreateFleetError,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import type { InitializeHandlerArguments, InitializeHandlerOutput } from '@smithy/types';
import { addInitializeMiddleware } from '../../scripts/devstack/sdk-middleware.ts';

export interface FleetShortfall {
  missing: number;
  errors: CreateFleetError[];
}

/** Makes the next CreateFleet calls of `client` fall short, one shortfall per call, in order. */
export function injectFleetShortfalls(client: EC2Client, terminator: EC2Client): FleetShortfall[] {
  const queue: FleetShortfall[] = [];
  addInitializeMiddleware(
    client,
    'fleetShortfall',
    (next, context) =>
      async (args: InitializeHandlerArguments<object>): Promise<InitializeHandlerOutput<object>> => {
        const result = await next(args);
        if (context.commandName !== 'CreateFleetCommand') return result;
        const shortfall = queue.shift();
        if (shortfall === undefined) return result;
        const out = result.output as CreateFleetCommandOutput;
        const groups = out.Instances ?? [];
        const dropped: string[] = [];
        let left = shortfall.missing;
        for (const group of [...groups].reverse()) {
          while (left > 0 && (group.InstanceIds ?? []).length > 0) {
            dropped.push(group.InstanceIds?.pop() ?? '');
            left--;
          }
        }
        if (dropped.length > 0)
          await terminator.send(new TerminateInstancesCommand({ InstanceIds: dropped }));
        out.Instances = groups.filter((g) => (g.InstanceIds ?? []).length > 0);
        out.Errors = [...(out.Errors ?? []), ...shortfall.errors];
        return result;
      },
  );
  return queue;
}
