// Instruments for the enforcement and sweep benchmarks: an SDK middleware that counts and times
// every command a client sends (and what DynamoDB reads return), and an in-memory stand-in for
// EC2, SSM and EventBridge Scheduler that answers the few commands the sweep sends, for sizes
// moto cannot hold (see scripts/bench/sweep.ts). Both sit at the `initialize` step: the adapters
// under test (shared/aws/*) run unchanged above them.
import { addInitializeMiddleware, type InitializeMiddleware } from '../devstack/sdk-middleware.ts';

/** Any AWS SDK v3 client, as far as adding a middleware goes. */
export interface InstrumentableClient {
  middlewareStack: object;
}

const addInitialize = (
  client: InstrumentableClient,
  name: string,
  handler: InitializeMiddleware,
  priority: 'high' | 'low',
) => addInitializeMiddleware(client, name, handler, { priority, override: true });

export interface CommandStats {
  count: number;
  errors: number;
  totalMs: number;
  /** DynamoDB reads: items returned (Query/Scan `Count`, GetItem 1 when found). */
  items: number;
  /** DynamoDB Query/Scan `ScannedCount`. */
  scanned: number;
  /** DynamoDB `ConsumedCapacity.CapacityUnits`, summed where the response carries it. */
  capacityUnits: number;
  /** How many responses carried ConsumedCapacity at all. */
  withCapacity: number;
}

export interface SentCommand {
  service: string;
  command: string;
  /** Date.now() when the client's send() reached this middleware, and when the answer came back. */
  sentAt: number;
  doneAt: number;
  input: Record<string, unknown>;
  output?: Record<string, unknown>;
  error?: string;
}

const RETURNS_CAPACITY = new Set([
  'GetItemCommand',
  'QueryCommand',
  'ScanCommand',
  'PutItemCommand',
  'UpdateItemCommand',
  'DeleteItemCommand',
  'BatchWriteItemCommand',
  'BatchGetItemCommand',
  'TransactWriteItemsCommand',
  'TransactGetItemsCommand',
]);

const capacityOf = (output: Record<string, unknown>): number | undefined => {
  const c = output.ConsumedCapacity as { CapacityUnits?: number } | { CapacityUnits?: number }[] | undefined;
  if (c === undefined) return undefined;
  return (Array.isArray(c) ? c : [c]).reduce((sum, x) => sum + (x.CapacityUnits ?? 0), 0);
};

/**
 * Counts and times what clients send, per `service:Command`. `watch` names commands whose every
 * call is also kept (input, output, times) for the caller to inspect, e.g. TerminateInstances.
 */
export class CommandRecorder {
  readonly stats = new Map<string, CommandStats>();
  readonly kept: SentCommand[] = [];
  private listeners: ((c: SentCommand) => void)[] = [];

  constructor(private readonly watch: ReadonlySet<string> = new Set()) {}

  /**
   * `askCapacity`: add ReturnConsumedCapacity=TOTAL to DynamoDB calls, so the emulator reports the
   * capacity each call would consume (the adapter itself never asks for it).
   */
  attach(client: InstrumentableClient, service: string, { askCapacity = false } = {}): void {
    addInitialize(
      client,
      `benchRecorder-${service}`,
      (next, context) => async (args) => {
        const command = context.commandName ?? 'unknown';
        const key = `${service}:${command}`;
        const input = args.input as Record<string, unknown>;
        if (askCapacity && service === 'dynamodb' && RETURNS_CAPACITY.has(command)) {
          input.ReturnConsumedCapacity = 'TOTAL';
        }
        const s = this.stat(key);
        const sentAt = Date.now();
        const started = performance.now();
        try {
          const result = await next(args);
          const output = result.output as Record<string, unknown>;
          s.count++;
          s.totalMs += performance.now() - started;
          if (service === 'dynamodb') {
            if (typeof output.Count === 'number') s.items += output.Count;
            if (typeof output.ScannedCount === 'number') s.scanned += output.ScannedCount;
            if (command === 'GetItemCommand' && output.Item !== undefined) s.items += 1;
            const cu = capacityOf(output);
            if (cu !== undefined) {
              s.capacityUnits += cu;
              s.withCapacity++;
            }
          }
          this.keep({ service, command, sentAt, doneAt: Date.now(), input, output });
          return result;
        } catch (e) {
          s.count++;
          s.errors++;
          s.totalMs += performance.now() - started;
          this.keep({ service, command, sentAt, doneAt: Date.now(), input, error: (e as Error).name });
          throw e;
        }
      },
      'high',
    );
  }

  /** Called for every kept command as soon as its answer arrives. */
  onKept(listener: (c: SentCommand) => void): void {
    this.listeners.push(listener);
  }

  get(key: string): CommandStats {
    return this.stats.get(key) ?? this.stat(key, false);
  }

  /** Total over commands whose key matches. */
  sum(match: (key: string) => boolean): CommandStats {
    const total = this.stat('', false);
    for (const [key, s] of this.stats) {
      if (!match(key)) continue;
      total.count += s.count;
      total.errors += s.errors;
      total.totalMs += s.totalMs;
      total.items += s.items;
      total.scanned += s.scanned;
      total.capacityUnits += s.capacityUnits;
      total.withCapacity += s.withCapacity;
    }
    return total;
  }

  /** A copy of the counters, and a fresh start. */
  take(): Map<string, CommandStats> {
    const copy = new Map([...this.stats].map(([k, v]) => [k, { ...v }]));
    this.stats.clear();
    this.kept.length = 0;
    return copy;
  }

  private stat(key: string, store = true): CommandStats {
    let s = this.stats.get(key);
    if (s === undefined) {
      s = { count: 0, errors: 0, totalMs: 0, items: 0, scanned: 0, capacityUnits: 0, withCapacity: 0 };
      if (store) this.stats.set(key, s);
    }
    return s;
  }

  private keep(c: SentCommand): void {
    if (!this.watch.has(c.command)) return;
    this.kept.push(c);
    for (const l of this.listeners) l(c);
  }
}

// ---------------------------------------------------------------------------------------------
// In-memory EC2 / SSM / Scheduler

export interface FakeInstance {
  instanceId: string;
  instanceType: string;
  launchTime: Date;
  state: 'running' | 'terminated';
  tags: Map<string, string>;
  subnetId: string;
  availabilityZone: string;
  privateIpAddress: string;
}

export interface FakeSchedule {
  name: string;
  group: string;
  expression: string;
}

class FakeServiceError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

interface Filter {
  Name?: string;
  Values?: string[];
}

const matches = (i: FakeInstance, filters: Filter[]): boolean =>
  filters.every((f) => {
    const values = f.Values ?? [];
    if (f.Name === 'instance-state-name') return values.includes(i.state);
    if (f.Name === 'tag-key') return values.some((v) => i.tags.has(v));
    if (f.Name?.startsWith('tag:') === true) {
      const value = i.tags.get(f.Name.slice(4));
      return value !== undefined && values.includes(value);
    }
    throw new FakeServiceError('InvalidParameterValue', `fake EC2: filter ${f.Name} is not implemented`);
  });

/**
 * One page of a listing, starting at the NextToken (an offset), of at most min(MaxResults, limit).
 * The listing is computed once, at its first page, and the later pages are cut from that snapshot
 * (as a service pages through a consistent view): filtering the whole collection again for every
 * page would make the stand-in itself O(pages × items) and show up as the adapters' time.
 */
const paginate = <T>(
  snapshots: Map<string, unknown[]>,
  key: string,
  compute: () => T[],
  input: Record<string, unknown>,
  limit: number,
): { page: T[]; next?: string } => {
  const max = Math.min(limit, Number(input.MaxResults ?? limit));
  const start = Number(input.NextToken ?? 0);
  let all = snapshots.get(key) as T[] | undefined;
  if (start === 0 || all === undefined) {
    all = compute();
    snapshots.set(key, all);
  }
  const next = start + max < all.length ? String(start + max) : undefined;
  if (next === undefined) snapshots.delete(key);
  return { page: all.slice(start, start + max), ...(next === undefined ? {} : { next }) };
};

/**
 * EC2, SSM and Scheduler state held in memory and served to the real adapters through a client
 * middleware, with the page sizes the adapters ask for (DescribeInstances ≤ 1000 instances per
 * page, DescribeParameters ≤ 50, ListSchedules ≤ 100). Only the commands the sweep and the expiry
 * path send are implemented; anything else fails loudly.
 */
export class FakeCloud {
  readonly instances = new Map<string, FakeInstance>();
  /** Instance ids by their `annex:id` tag at insertion, so a per-annex lookup is not a full scan. */
  private readonly byAnnex = new Map<string, Set<string>>();
  /** Listings being paged through, by command and filters. */
  private readonly snapshots = new Map<string, unknown[]>();
  readonly parameters = new Map<string, Date>();
  readonly schedules = new Map<string, FakeSchedule>();

  addInstance(instance: FakeInstance): void {
    this.instances.set(instance.instanceId, instance);
    const annexId = instance.tags.get('annex:id');
    if (annexId === undefined) return;
    let ids = this.byAnnex.get(annexId);
    if (ids === undefined) this.byAnnex.set(annexId, (ids = new Set()));
    ids.add(instance.instanceId);
  }

  /** Candidates for a DescribeInstances: by the annex-id index when filtered by it, else all. */
  private candidates(filters: Filter[]): FakeInstance[] {
    const byId = filters.find((f) => f.Name === 'tag:annex:id');
    if (byId === undefined) return [...this.instances.values()];
    return (byId.Values ?? []).flatMap((v) =>
      [...(this.byAnnex.get(v) ?? [])].flatMap((id) => {
        const x = this.instances.get(id);
        return x === undefined ? [] : [x];
      }),
    );
  }

  attachEc2(client: InstrumentableClient): void {
    this.attach(client, 'benchFakeEc2', (command, input) => this.ec2(command, input));
  }

  attachSsm(client: InstrumentableClient): void {
    this.attach(client, 'benchFakeSsm', (command, input) => this.ssm(command, input));
  }

  attachScheduler(client: InstrumentableClient): void {
    this.attach(client, 'benchFakeScheduler', (command, input) => this.scheduler(command, input));
  }

  private attach(
    client: InstrumentableClient,
    name: string,
    answer: (command: string, input: Record<string, unknown>) => object,
  ): void {
    addInitialize(
      client,
      name,
      (_next, context) => async (args) => ({
        output: {
          $metadata: {},
          ...answer(context.commandName ?? '', args.input as Record<string, unknown>),
        },
        response: {},
      }),
      'low',
    );
  }

  private ec2(command: string, i: Record<string, unknown>): object {
    switch (command) {
      // The sweep's leaked-template check: the seeded annexes launched on-demand, with no template.
      case 'DescribeLaunchTemplatesCommand':
        return { LaunchTemplates: [] };
      case 'DescribeInstancesCommand': {
        const filters = (i.Filters as Filter[] | undefined) ?? [];
        const { page, next } = paginate(
          this.snapshots,
          `ec2 ${JSON.stringify(filters)}`,
          () => this.candidates(filters).filter((x) => matches(x, filters)),
          i,
          1000,
        );
        return {
          Reservations: page.map((x) => ({
            ReservationId: `r-${x.instanceId.slice(2)}`,
            Instances: [
              {
                InstanceId: x.instanceId,
                InstanceType: x.instanceType,
                LaunchTime: x.launchTime,
                State: { Name: x.state, Code: x.state === 'running' ? 16 : 48 },
                SubnetId: x.subnetId,
                Placement: { AvailabilityZone: x.availabilityZone },
                PrivateIpAddress: x.privateIpAddress,
                Tags: [...x.tags].map(([Key, Value]) => ({ Key, Value })),
              },
            ],
          })),
          ...(next === undefined ? {} : { NextToken: next }),
        };
      }
      case 'TerminateInstancesCommand': {
        const ids = i.InstanceIds as string[];
        const missing = ids.filter((id) => !this.instances.has(id));
        if (missing.length > 0) throw new FakeServiceError('InvalidInstanceID.NotFound', missing.join(','));
        return {
          TerminatingInstances: ids.map((id) => {
            const x = this.instances.get(id) as FakeInstance;
            const previous = x.state;
            x.state = 'terminated';
            return {
              InstanceId: id,
              PreviousState: { Name: previous },
              CurrentState: { Name: 'terminated' },
            };
          }),
        };
      }
      case 'CreateTagsCommand': {
        for (const id of i.Resources as string[]) {
          const x = this.instances.get(id);
          if (x === undefined) throw new FakeServiceError('InvalidInstanceID.NotFound', id);
          for (const t of i.Tags as { Key: string; Value: string }[]) {
            if (t.Key === 'annex:id')
              throw new FakeServiceError('NotImplemented', 'fake EC2: retagging annex:id');
            x.tags.set(t.Key, t.Value);
          }
        }
        return {};
      }
      default:
        throw new FakeServiceError('NotImplemented', `fake EC2: ${command} is not implemented`);
    }
  }

  private ssm(command: string, i: Record<string, unknown>): object {
    switch (command) {
      case 'DescribeParametersCommand': {
        const filters = (i.ParameterFilters as { Key: string; Values?: string[] }[] | undefined) ?? [];
        const path = filters.find((f) => f.Key === 'Path')?.Values?.[0];
        if (path === undefined) throw new FakeServiceError('NotImplemented', 'fake SSM: only a Path filter');
        const { page, next } = paginate(
          this.snapshots,
          `ssm ${path}`,
          () => [...this.parameters].filter(([name]) => name.startsWith(`${path}/`)),
          i,
          50,
        );
        return {
          Parameters: page.map(([Name, LastModifiedDate]) => ({
            Name,
            LastModifiedDate,
            Type: 'SecureString',
          })),
          ...(next === undefined ? {} : { NextToken: next }),
        };
      }
      case 'PutParameterCommand': {
        const name = String(i.Name);
        if (this.parameters.has(name) && i.Overwrite !== true) {
          throw new FakeServiceError('ParameterAlreadyExists', name);
        }
        this.parameters.set(name, new Date());
        return { Version: 1, Tier: 'Standard' };
      }
      case 'DeleteParameterCommand': {
        const name = String(i.Name);
        if (!this.parameters.delete(name)) throw new FakeServiceError('ParameterNotFound', name);
        return {};
      }
      default:
        throw new FakeServiceError('NotImplemented', `fake SSM: ${command} is not implemented`);
    }
  }

  private scheduler(command: string, i: Record<string, unknown>): object {
    const group = String(i.GroupName ?? 'default');
    switch (command) {
      case 'CreateScheduleCommand': {
        const name = String(i.Name);
        const key = `${group}/${name}`;
        if (this.schedules.has(key)) throw new FakeServiceError('ConflictException', name);
        this.schedules.set(key, { name, group, expression: String(i.ScheduleExpression) });
        return { ScheduleArn: `arn:aws:scheduler:us-east-1:123456789012:schedule/${key}` };
      }
      case 'DeleteScheduleCommand': {
        if (!this.schedules.delete(`${group}/${String(i.Name)}`)) {
          throw new FakeServiceError('ResourceNotFoundException', String(i.Name));
        }
        return {};
      }
      case 'ListSchedulesCommand': {
        const prefix = String(i.NamePrefix ?? '');
        const { page, next } = paginate(
          this.snapshots,
          `scheduler ${group} ${prefix}`,
          () => [...this.schedules.values()].filter((s) => s.group === group && s.name.startsWith(prefix)),
          i,
          100,
        );
        return {
          Schedules: page.map((s) => ({ Name: s.name, GroupName: s.group, State: 'ENABLED' })),
          ...(next === undefined ? {} : { NextToken: next }),
        };
      }
      default:
        throw new FakeServiceError('NotImplemented', `fake Scheduler: ${command} is not implemented`);
    }
  }
}
