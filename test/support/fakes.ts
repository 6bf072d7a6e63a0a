/**
 * Stateful in-memory doubles of the domain ports (the Karpenter habit): they keep state like the
 * real services, can be reset, and take injected next-errors, so domain tests exercise real
 * sequences without AWS. Wire-level behaviour is covered by the integration tests instead.
 */
import { AnnexError, conflict } from '../../shared/domain/errors.ts';
import { clientToken, isEnded } from '../../shared/domain/lease.ts';
import type {
  Annex,
  AnnexEvent,
  InstanceRecord,
  InstanceNotice,
  InstanceState,
  Pool,
  PoolUsage,
  PriceSource,
} from '../../shared/domain/model.ts';
import { stateEventKey } from '../../shared/domain/instance-notices.ts';
import { historyTtl, instanceTtl, lookupTtl } from '../../shared/aws/table/entities.ts';
import type {
  AddNodesClaim,
  AnnexChanges,
  Clock,
  Compute,
  ExpirySchedules,
  FleetError,
  HeartbeatRecord,
  IssuedToken,
  LaunchedInstance,
  LaunchRequest,
  LaunchResult,
  LeaseStore,
  Logger,
  SecretStore,
  TaggedInstance,
} from '../../shared/domain/ports.ts';

export class FakeClock implements Clock {
  constructor(private current = new Date('2026-11-25T12:00:00.000Z')) {}
  now(): Date {
    return new Date(this.current);
  }
  advance(seconds: number): void {
    this.current = new Date(this.current.getTime() + seconds * 1000);
  }
}

/** Next-error injection: `failNext('launch', err)` makes the next call of that method throw. */
class Faults {
  private readonly next = new Map<string, unknown[]>();
  failNext(method: string, error: unknown): void {
    this.next.set(method, [...(this.next.get(method) ?? []), error]);
  }
  check(method: string): void {
    const queue = this.next.get(method);
    if (queue !== undefined && queue.length > 0) throw queue.shift();
  }
  reset(): void {
    this.next.clear();
  }
}

const clone = <T>(v: T): T => structuredClone(v);

export class InMemoryLeaseStore implements LeaseStore {
  readonly faults = new Faults();
  readonly pools = new Map<string, Pool>();
  readonly annexes = new Map<string, Annex>();
  readonly nameClaims = new Map<string, string>();
  readonly instances = new Map<string, InstanceRecord>();
  readonly events: AnnexEvent[] = [];
  readonly addClaims = new Map<string, AddNodesClaim>();
  /** instance id → annex id, written with the instance records (as the DynamoDB lookup items). */
  readonly instanceLookups = new Map<string, string>();
  /** owner|pool → the owner's quota usage record of the pool. */
  readonly usage = new Map<string, PoolUsage>();
  /**
   * The DynamoDB TTL (epoch seconds) the table's items would carry, by the rules of
   * shared/aws/table/entities.ts: `instance|<annex id>|<instance id>` and `lookup|<instance id>`.
   */
  readonly ttls = new Map<string, number>();

  reset(): void {
    this.faults.reset();
    for (const m of [
      this.pools,
      this.annexes,
      this.nameClaims,
      this.instances,
      this.addClaims,
      this.instanceLookups,
      this.usage,
      this.ttls,
    ])
      m.clear();
    this.events.length = 0;
  }

  async getPool(name: string, owner: string): Promise<Pool | undefined> {
    this.faults.check('getPool');
    return clone(this.pools.get(`private|${owner}|${name}`) ?? this.pools.get(`shared||${name}`));
  }
  async putPool(pool: Pool): Promise<void> {
    this.faults.check('putPool');
    this.pools.set(`${pool.scope}|${pool.scope === 'shared' ? '' : pool.owner}|${pool.name}`, clone(pool));
  }
  async listPools(owner: string): Promise<Pool[]> {
    return [...this.pools.values()].filter((p) => p.scope === 'shared' || p.owner === owner).map(clone);
  }

  async createAnnex(
    annex: Annex,
    event: AnnexEvent,
    usage?: PoolUsage,
  ): Promise<'created' | 'exists' | 'name-taken' | 'usage-changed'> {
    this.faults.check('createAnnex');
    if (this.annexes.has(annex.id)) return 'exists';
    const claim = `${annex.owner}|${annex.name}`;
    if (this.nameClaims.has(claim)) return 'name-taken';
    if (usage !== undefined && !this.usageCurrent(usage)) return 'usage-changed';
    if (usage !== undefined) this.writeUsage(usage);
    this.annexes.set(annex.id, clone(annex));
    this.nameClaims.set(claim, annex.id);
    this.events.push(clone(event));
    return 'created';
  }
  async getAnnex(id: string): Promise<Annex | undefined> {
    this.faults.check('getAnnex');
    return clone(this.annexes.get(id));
  }
  async findAnnexByName(owner: string, name: string): Promise<Annex | undefined> {
    this.faults.check('findAnnexByName');
    const id = this.nameClaims.get(`${owner}|${name}`);
    if (id !== undefined) return clone(this.annexes.get(id));
    const ended = [...this.annexes.values()]
      .filter((a) => a.owner === owner && a.name === name)
      .sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
    return clone(ended[0]);
  }
  async listAnnexesByOwner(owner: string): Promise<Annex[]> {
    return [...this.annexes.values()].filter((a) => a.owner === owner).map(clone);
  }
  async listLiveInstances(): Promise<InstanceRecord[]> {
    this.faults.check('listLiveInstances');
    return [...this.instances.values()].filter((i) => i.state !== 'terminated').map(clone);
  }
  async listLiveAnnexes(): Promise<Annex[]> {
    return [...this.annexes.values()].filter((a) => !isEnded(a.state)).map(clone);
  }
  async updateAnnex(
    annex: Annex,
    changes: AnnexChanges,
    event?: AnnexEvent,
    usage?: PoolUsage,
  ): Promise<Annex> {
    this.faults.check('updateAnnex');
    this.checkVersion(annex);
    if (usage !== undefined && !this.usageCurrent(usage)) {
      throw conflict(`the quota usage of pool ${usage.pool} changed; retry`);
    }
    const next = this.apply(annex, changes, event);
    if (usage !== undefined) this.writeUsage(usage);
    return next;
  }
  async startBatch(
    annex: Annex,
    changes: AnnexChanges,
    claim: AddNodesClaim,
    event: AnnexEvent,
    usage?: PoolUsage,
  ): Promise<Annex> {
    this.faults.check('startBatch');
    const key = `${annex.id}|${claim.key}`;
    this.checkVersion(annex);
    if (this.addClaims.has(key))
      throw conflict('this Idempotency-Key is already being used for another batch');
    if (usage !== undefined && !this.usageCurrent(usage)) {
      throw conflict(`the quota usage of pool ${usage.pool} changed; retry`);
    }
    const next = this.apply(annex, changes, event);
    this.addClaims.set(key, clone(claim));
    if (usage !== undefined) this.writeUsage(usage);
    return next;
  }
  async getUsage(owner: string, pool: string): Promise<PoolUsage> {
    this.faults.check('getUsage');
    return clone(
      this.usage.get(`${owner}|${pool}`) ?? { owner, pool, annexes: {}, spendByMonth: {}, version: 0 },
    );
  }
  async releaseUsage(owner: string, pool: string, annexId: string): Promise<void> {
    this.faults.check('releaseUsage');
    const stored = this.usage.get(`${owner}|${pool}`);
    if (stored?.annexes[annexId] === undefined) return;
    const annexes = { ...stored.annexes };
    delete annexes[annexId];
    this.usage.set(`${owner}|${pool}`, { ...stored, annexes, version: stored.version + 1 });
  }
  private usageCurrent(usage: PoolUsage): boolean {
    return (this.usage.get(`${usage.owner}|${usage.pool}`)?.version ?? 0) === usage.version;
  }
  private writeUsage(usage: PoolUsage): void {
    this.usage.set(`${usage.owner}|${usage.pool}`, clone({ ...usage, version: usage.version + 1 }));
  }
  private checkVersion(annex: Annex): void {
    const stored = this.annexes.get(annex.id);
    if (stored === undefined || stored.version !== annex.version) {
      throw conflict(`annex ${annex.name} was changed by another request; retry`);
    }
  }
  async getAddNodesClaim(annexId: string, key: string): Promise<AddNodesClaim | undefined> {
    return clone(this.addClaims.get(`${annexId}|${key}`));
  }
  async putInstances(instances: InstanceRecord[]): Promise<void> {
    this.faults.check('putInstances');
    for (const i of instances) {
      this.instances.set(`${i.annexId}|${i.instanceId}`, clone(i));
      this.instanceLookups.set(i.instanceId, i.annexId);
      const ttl = instanceTtl(i);
      if (ttl === undefined) this.ttls.delete(`instance|${i.annexId}|${i.instanceId}`);
      else this.ttls.set(`instance|${i.annexId}|${i.instanceId}`, ttl);
      this.ttls.set(`lookup|${i.instanceId}`, lookupTtl(i));
    }
  }
  async setInstanceStates(annexId: string, ids: string[], state: InstanceState, at: string): Promise<void> {
    this.faults.check('setInstanceStates');
    for (const id of ids) {
      const rec = this.instances.get(`${annexId}|${id}`);
      if (rec === undefined) continue;
      const terminatedAt = state === 'terminated' ? (rec.terminatedAt ?? at) : rec.terminatedAt;
      this.instances.set(`${annexId}|${id}`, {
        ...rec,
        state,
        updatedAt: at,
        ...(terminatedAt === undefined ? {} : { terminatedAt }),
      });
      if (state === 'terminated') this.terminated(annexId, id, at);
    }
  }
  /** "instance → terminated" on the table: the first end starts the record's history retention. */
  private terminated(annexId: string, instanceId: string, at: string): void {
    const key = `instance|${annexId}|${instanceId}`;
    if (!this.ttls.has(key)) this.ttls.set(key, historyTtl(at));
  }
  async listInstances(annexId: string): Promise<InstanceRecord[]> {
    this.faults.check('listInstances');
    return [...this.instances.values()].filter((i) => i.annexId === annexId).map(clone);
  }
  async findInstanceAnnex(instanceId: string): Promise<string | undefined> {
    this.faults.check('findInstanceAnnex');
    return this.instanceLookups.get(instanceId);
  }
  async getInstance(annexId: string, instanceId: string): Promise<InstanceRecord | undefined> {
    this.faults.check('getInstance');
    return clone(this.instances.get(`${annexId}|${instanceId}`));
  }
  async markBootstrapped(
    annexId: string,
    instanceId: string,
    at: string,
  ): Promise<'marked' | 'already' | 'missing'> {
    this.faults.check('markBootstrapped');
    const rec = this.instances.get(`${annexId}|${instanceId}`);
    if (rec === undefined) return 'missing';
    if (rec.bootstrappedAt !== undefined) return 'already';
    rec.bootstrappedAt = at;
    return 'marked';
  }
  async clearBootstrapped(annexId: string, instanceId: string, at: string): Promise<void> {
    this.faults.check('clearBootstrapped');
    const rec = this.instances.get(`${annexId}|${instanceId}`);
    if (rec?.bootstrappedAt === at) delete rec.bootstrappedAt;
  }
  async recordHeartbeat(annexId: string, instanceId: string, hb: HeartbeatRecord): Promise<boolean> {
    this.faults.check('recordHeartbeat');
    const rec = this.instances.get(`${annexId}|${instanceId}`);
    if (rec === undefined) return false;
    rec.lastHeartbeatAt = hb.at;
    rec.claimedSlots = hb.claimedSlots;
    rec.totalSlots = hb.totalSlots;
    rec.agentState = hb.agentState;
    if (hb.idleSince === undefined) delete rec.idleSince;
    else rec.idleSince ??= hb.idleSince;
    return true;
  }
  async recordTokenIssued(
    annexId: string,
    instanceId: string,
    token: IssuedToken,
    event: AnnexEvent,
  ): Promise<boolean> {
    this.faults.check('recordTokenIssued');
    const rec = this.instances.get(`${annexId}|${instanceId}`);
    if (rec === undefined) return false;
    rec.tokenIds = [...(rec.tokenIds ?? []), token.tokenId];
    rec.tokenExpiresAt = token.expiresAt;
    rec.tokenIssuedAt = token.issuedAt;
    this.events.push(clone(event));
    return true;
  }
  async applyInstanceNotice(
    annexId: string,
    instanceId: string,
    notice: InstanceNotice,
    event?: AnnexEvent,
  ): Promise<'applied' | 'stale' | 'missing'> {
    this.faults.check('applyInstanceNotice');
    const rec = this.instances.get(`${annexId}|${instanceId}`);
    if (rec === undefined) return 'missing';
    switch (notice.kind) {
      case 'interruption':
        if (rec.interruption !== undefined) return 'stale';
        rec.interruptedAt = notice.at;
        rec.interruption = clone(notice.interruption);
        break;
      case 'rebalance':
        if (rec.rebalanceRecommendedAt !== undefined) return 'stale';
        rec.rebalanceRecommendedAt = notice.at;
        break;
      case 'state': {
        const key = stateEventKey(notice.at, notice.state);
        if (rec.state === 'terminated' || (rec.stateEventKey !== undefined && rec.stateEventKey >= key)) {
          return 'stale';
        }
        rec.state = notice.state;
        rec.stateEventKey = key;
        rec.updatedAt = notice.at;
        if (notice.state === 'terminated') {
          rec.terminatedAt ??= notice.at;
          this.terminated(annexId, instanceId, notice.at);
        }
        break;
      }
    }
    if (event !== undefined) this.events.push(clone(event));
    return 'applied';
  }
  async setInstancePrice(
    annexId: string,
    instanceId: string,
    hourlyUsd: number,
    source: PriceSource,
  ): Promise<void> {
    this.faults.check('setInstancePrice');
    const rec = this.instances.get(`${annexId}|${instanceId}`);
    if (rec === undefined || rec.hourlyUsd !== undefined) return;
    rec.hourlyUsd = hourlyUsd;
    rec.priceSource = source;
  }
  async appendEvent(event: AnnexEvent): Promise<void> {
    this.events.push(clone(event));
  }
  async listEvents(annexId: string, limit: number): Promise<AnnexEvent[]> {
    return this.events
      .filter((e) => e.annexId === annexId)
      .slice(-limit)
      .map(clone);
  }

  private apply(annex: Annex, changes: AnnexChanges, event?: AnnexEvent): Annex {
    const stored = this.annexes.get(annex.id);
    if (stored === undefined || stored.version !== annex.version) {
      throw conflict(`annex ${annex.name} was changed by another request; retry`);
    }
    const next: Annex = { ...stored, ...changes, version: stored.version + 1 };
    for (const [k, v] of Object.entries(changes))
      if (v === undefined) delete (next as unknown as Record<string, unknown>)[k];
    this.annexes.set(annex.id, clone(next));
    if (isEnded(next.state) && !isEnded(stored.state)) {
      const claim = `${annex.owner}|${annex.name}`;
      if (this.nameClaims.get(claim) === annex.id) this.nameClaims.delete(claim);
    }
    if (event !== undefined) this.events.push(clone(event));
    return clone(next);
  }
}

export interface FakeInstance extends LaunchedInstance {
  tags: Record<string, string>;
  userData?: string;
  clientToken: string;
}

export class FakeCompute implements Compute {
  readonly faults = new Faults();
  readonly instances = new Map<string, FakeInstance>();
  readonly calls: { method: string; args: unknown }[] = [];
  /** Called after instances are created, before launch returns (to model a concurrent writer). */
  afterLaunch?: (req: LaunchRequest) => void;
  /** Instance types that have no capacity (RunInstances fails with a capacity error). */
  readonly noCapacity = new Set<string>();
  /** Per-annex launch templates (fleet launches create them), by annex id. */
  readonly launchTemplates = new Map<string, { annexId: string; createdAt: string }>();
  /** Every fleet launched: the request as the adapter would send it, in domain terms. */
  readonly fleets: LaunchRequest[] = [];
  /** The next fleet launches this many fewer instances than asked, with these errors (EC2's Errors). */
  private shortfalls: { missing: number; errors: FleetError[] }[] = [];
  /** Every fleet's client token, by fleet id (DescribeFleets). */
  readonly fleetTokens = new Map<string, string>();
  private counter = 0;

  constructor(
    private readonly clock: Clock,
    private readonly stage = 'test',
  ) {}

  reset(): void {
    this.faults.reset();
    this.instances.clear();
    this.calls.length = 0;
    this.noCapacity.clear();
    this.launchTemplates.clear();
    this.fleets.length = 0;
    this.fleetTokens.clear();
    this.shortfalls = [];
  }

  /** The next fleet falls `missing` instances short, answering with `errors`. */
  shortNextFleet(missing: number, errors: FleetError[]): void {
    this.shortfalls.push({ missing, errors });
  }

  running(): FakeInstance[] {
    return [...this.instances.values()].filter((i) => i.state !== 'terminated');
  }

  async findBatchInstances(annexId: string, batch: number): Promise<LaunchedInstance[]> {
    this.calls.push({ method: 'findBatchInstances', args: { annexId, batch } });
    this.faults.check('findBatchInstances');
    return this.running()
      .filter(
        (i) =>
          i.tags['annex:id'] === annexId &&
          i.tags['annex:stage'] === this.stage &&
          i.tags['annex:batch'] === String(batch),
      )
      .map(clone);
  }
  async listAnnexInstances(annexId: string): Promise<LaunchedInstance[]> {
    this.calls.push({ method: 'listAnnexInstances', args: { annexId } });
    this.faults.check('listAnnexInstances');
    return this.running()
      .filter((i) => i.tags['annex:id'] === annexId && i.tags['annex:stage'] === this.stage)
      .map(clone);
  }
  async launch(req: LaunchRequest): Promise<LaunchResult> {
    this.calls.push({ method: 'launch', args: clone(req) });
    this.faults.check('launch');
    if (req.spec.market !== 'on-demand' || req.spec.instanceTypes.length === 0) return this.launchFleet(req);
    const attempts: LaunchResult['attempts'] = [];
    for (const [attempt, instanceType] of req.spec.instanceTypes.entries()) {
      if (this.noCapacity.has(instanceType)) {
        attempts.push({ instanceType, error: 'InsufficientInstanceCapacity' });
        continue;
      }
      const launched: FakeInstance[] = [];
      for (let n = 0; n < req.count; n++) {
        launched.push(
          this.addInstance(req, {
            instanceType,
            state: 'running',
            clientToken: clientToken(req.annexId, req.batch, attempt, req.launchSecret),
          }),
        );
      }
      return { instances: this.afterLaunched(req, launched), attempts };
    }
    throw new AnnexError('LimitExceeded', `no capacity for ${req.spec.instanceTypes.join('|')}`);
  }
  /** As the EC2 adapter does: the annex's launch template, then one instant fleet. */
  private launchFleet(req: LaunchRequest): LaunchResult {
    if (!this.launchTemplates.has(req.annexId)) {
      this.launchTemplates.set(req.annexId, {
        annexId: req.annexId,
        createdAt: this.clock.now().toISOString(),
      });
    }
    this.fleets.push(clone(req));
    const shortfall = this.shortfalls.shift() ?? { missing: 0, errors: [] };
    const count = Math.max(0, req.count - shortfall.missing);
    if (count === 0) {
      throw new AnnexError(
        'LimitExceeded',
        `the fleet launched none: ${shortfall.errors.map((e) => e.code).join(', ')}`,
      );
    }
    const onDemand =
      req.spec.market === 'on-demand'
        ? req.count
        : req.spec.market === 'mixed'
          ? Math.min(req.count, req.spec.onDemandBaseCount ?? 0)
          : 0;
    // As EC2 does: a fleet id, remembered with the fleet's client token; its instances carry the
    // fleet id (the aws:ec2:fleet-id tag) and a client token of EC2's own, not the fleet's.
    const fleetId = `fleet-${(++this.counter).toString(16).padStart(8, '0')}`;
    this.fleetTokens.set(fleetId, clientToken(req.annexId, req.batch, 0, req.launchSecret));
    const launched: FakeInstance[] = [];
    for (let n = 0; n < count; n++) {
      launched.push(
        this.addInstance(req, {
          instanceType: req.spec.instanceTypes[0] ?? 'm5.large',
          market: n < onDemand ? 'on-demand' : 'spot',
          state: 'pending',
          clientToken: `${fleetId}-${n}`,
          fleetId,
        }),
      );
    }
    return {
      instances: this.afterLaunched(req, launched),
      attempts: [],
      fleetErrors: clone(shortfall.errors),
      fleetId,
    };
  }
  /** Starts one instance of `req`, tagged as the adapter tags it (the request's tags, then the annex's). */
  private addInstance(
    req: LaunchRequest,
    made: Pick<FakeInstance, 'instanceType' | 'market' | 'state' | 'clientToken' | 'fleetId'>,
  ): FakeInstance {
    const instanceId = `i-${(++this.counter).toString(16).padStart(17, '0')}`;
    const inst: FakeInstance = {
      instanceId,
      instanceType: made.instanceType,
      ...(made.market === undefined ? {} : { market: made.market }),
      state: made.state,
      batch: req.batch,
      launchedAt: this.clock.now().toISOString(),
      clientToken: made.clientToken,
      ...(req.instanceProfileArn === undefined ? {} : { instanceProfileArn: req.instanceProfileArn }),
      ...(made.fleetId === undefined ? {} : { fleetId: made.fleetId }),
      tags: {
        ...req.spec.tags,
        'annex:id': req.annexId,
        'annex:name': req.annexName,
        'annex:owner': req.owner,
        'annex:stage': req.stage,
        'annex:expires-at': req.expiresAt,
        'annex:batch': String(req.batch),
      },
      ...(req.spec.userData === undefined ? {} : { userData: req.spec.userData }),
    };
    this.instances.set(instanceId, inst);
    return inst;
  }
  /** After a launch's instances exist: the concurrent-writer hook, the injected fault, the answer. */
  private afterLaunched(req: LaunchRequest, launched: FakeInstance[]): LaunchedInstance[] {
    this.afterLaunch?.(req);
    this.faults.check('launch:after');
    return launched.map(({ tags: _t, userData: _u, ...rest }) => rest);
  }
  async deleteLaunchTemplate(annexId: string): Promise<void> {
    this.calls.push({ method: 'deleteLaunchTemplate', args: { annexId } });
    this.faults.check('deleteLaunchTemplate');
    this.launchTemplates.delete(annexId);
  }
  async listLaunchTemplates(): Promise<{ annexId: string; createdAt?: string }[]> {
    this.calls.push({ method: 'listLaunchTemplates', args: {} });
    this.faults.check('listLaunchTemplates');
    return [...this.launchTemplates.values()].map(clone);
  }
  async listStageInstances(stage: string): Promise<TaggedInstance[]> {
    this.calls.push({ method: 'listStageInstances', args: { stage } });
    this.faults.check('listStageInstances');
    return this.running()
      .filter((i) => i.tags['annex:stage'] === stage && i.tags['annex:id'] !== undefined)
      .map(({ tags, userData: _u, ...rest }) => ({
        ...clone(rest),
        annexId: tags['annex:id'] ?? '',
        ...(tags['annex:expires-at'] === undefined ? {} : { expiresAtTag: tags['annex:expires-at'] }),
      }));
  }
  /**
   * An instance someone started by hand (or another system), with the given tags and, in
   * `facts`, what EC2 would report of its launch (client token, instance profile, fleet).
   */
  startByHand(
    tags: Record<string, string>,
    launchedAt = this.clock.now(),
    facts: Partial<Pick<FakeInstance, 'clientToken' | 'instanceProfileArn' | 'fleetId'>> = {},
  ): string {
    const instanceId = `i-${(++this.counter).toString(16).padStart(17, '0')}`;
    this.instances.set(instanceId, {
      instanceId,
      instanceType: 'm5.large',
      state: 'running',
      batch: Number(tags['annex:batch'] ?? 0),
      launchedAt: launchedAt.toISOString(),
      clientToken: '',
      ...facts,
      tags,
    });
    return instanceId;
  }
  /** A fleet someone created by hand, with this client token (what DescribeFleets would say). */
  createFleetByHand(token: string): string {
    const fleetId = `fleet-${(++this.counter).toString(16).padStart(8, '0')}`;
    this.fleetTokens.set(fleetId, token);
    return fleetId;
  }
  async fleetClientToken(fleetId: string): Promise<string | undefined> {
    this.calls.push({ method: 'fleetClientToken', args: { fleetId } });
    this.faults.check('fleetClientToken');
    return this.fleetTokens.get(fleetId);
  }
  /** The instance powers itself off (HTCondor's shutdown, or a spot interruption). */
  selfTerminate(instanceId: string): void {
    const inst = this.instances.get(instanceId);
    if (inst !== undefined) inst.state = 'terminated';
  }
  async retag(instanceIds: string[], tags: Record<string, string>): Promise<void> {
    this.calls.push({ method: 'retag', args: { instanceIds, tags } });
    this.faults.check('retag');
    for (const id of instanceIds) {
      const inst = this.instances.get(id);
      if (inst !== undefined) inst.tags = { ...inst.tags, ...tags };
    }
  }
  async terminate(instanceIds: string[]): Promise<void> {
    this.calls.push({ method: 'terminate', args: { instanceIds } });
    this.faults.check('terminate');
    for (const id of instanceIds) {
      const inst = this.instances.get(id);
      if (inst !== undefined) inst.state = 'terminated';
    }
  }
  launches(): number {
    return this.calls.filter((c) => c.method === 'launch').length;
  }
}

export class FakeSecrets implements SecretStore {
  readonly faults = new Faults();
  readonly parameters = new Map<string, { value: string; tags: Record<string, string> }>();

  constructor(private readonly stage = 'test') {}

  reset(): void {
    this.faults.reset();
    this.parameters.clear();
  }
  async putPoolCredential(name: string, value: string, tags: Record<string, string>): Promise<void> {
    this.faults.check('putPoolCredential');
    this.parameters.set(name, { value, tags });
  }
  async getCredential(name: string): Promise<string> {
    this.faults.check('getCredential');
    const p = this.parameters.get(name);
    if (p === undefined) throw conflict('the pool credential is missing; register the pool again');
    return p.value;
  }
  async getAnnexCredential(annexId: string): Promise<string> {
    this.faults.check('getAnnexCredential');
    const p = this.parameters.get(`/annex/${this.stage}/annexes/${annexId}/pool-credentials`);
    if (p === undefined) throw conflict('the pool credential is missing; register the pool again');
    return p.value;
  }
  async putAnnexCredential(annexId: string, value: string, tags: Record<string, string>): Promise<string> {
    this.faults.check('putAnnexCredential');
    const name = `/annex/${this.stage}/annexes/${annexId}/pool-credentials`;
    this.parameters.set(name, { value, tags: this.parameters.get(name)?.tags ?? tags });
    return name;
  }
  async deleteAnnexCredential(annexId: string): Promise<void> {
    this.faults.check('deleteAnnexCredential');
    this.parameters.delete(`/annex/${this.stage}/annexes/${annexId}/pool-credentials`);
  }
  async listAnnexCredentials(): Promise<{ annexId: string; lastModified?: string }[]> {
    this.faults.check('listAnnexCredentials');
    const prefix = `/annex/${this.stage}/annexes/`;
    return [...this.parameters.keys()]
      .filter((k) => k.startsWith(prefix))
      .map((k) => ({ annexId: k.slice(prefix.length).split('/')[0] ?? '' }));
  }
  annexParameters(): string[] {
    return [...this.parameters.keys()].filter((k) => k.includes('/annexes/'));
  }
}

export class FakeSchedules implements ExpirySchedules {
  readonly faults = new Faults();
  /** name → { annexId, fireAt } (names as the real adapter makes them: id + fire second). */
  readonly schedules = new Map<string, { annexId: string; fireAt: string }>();

  reset(): void {
    this.faults.reset();
    this.schedules.clear();
  }
  private key(annexId: string, expiresAt: string): string {
    return `${annexId}-${Math.ceil(Date.parse(expiresAt) / 1000)}`;
  }
  async schedule(annexId: string, expiresAt: string): Promise<void> {
    this.faults.check('schedule');
    const fireAt = new Date(Math.ceil(Date.parse(expiresAt) / 1000) * 1000).toISOString();
    if (!this.schedules.has(this.key(annexId, expiresAt)))
      this.schedules.set(this.key(annexId, expiresAt), { annexId, fireAt });
  }
  async cancel(annexId: string, expiresAt: string): Promise<void> {
    this.faults.check('cancel');
    this.schedules.delete(this.key(annexId, expiresAt));
  }
  async move(annexId: string, from: string, to: string): Promise<void> {
    await this.schedule(annexId, to);
    if (this.key(annexId, from) !== this.key(annexId, to)) await this.cancel(annexId, from);
  }
  async list(): Promise<{ annexId: string; fireAt: string }[]> {
    this.faults.check('list');
    return [...this.schedules.values()].map(clone);
  }
  /** Schedules due at `now`, as EventBridge Scheduler would fire them (and then delete them). */
  due(now: Date): { annexId: string; fireAt: string }[] {
    const due = [...this.schedules.entries()].filter(([, s]) => Date.parse(s.fireAt) <= now.getTime());
    for (const [name] of due) this.schedules.delete(name);
    return due.map(([, s]) => s);
  }
  forAnnex(annexId: string): string[] {
    return [...this.schedules.values()].filter((s) => s.annexId === annexId).map((s) => s.fireAt);
  }
}

export const silentLogger = (): Logger & {
  lines: { level: string; message: string; fields?: unknown }[];
} => {
  const lines: { level: string; message: string; fields?: unknown }[] = [];
  return {
    lines,
    info: (message, fields) => lines.push({ level: 'info', message, fields }),
    warn: (message, fields) => lines.push({ level: 'warn', message, fields }),
    error: (message, fields) => lines.push({ level: 'error', message, fields }),
  };
};

/**
 * An InMemoryLeaseStore that stamps `updatedAt` on every change as the DynamoDB adapter does (the
 * event's time, else now), so "how long has this annex been in this state" (the sweep's stuck and
 * half-way-termination checks) reads as it does in production. InMemoryLeaseStore leaves
 * `updatedAt` at the creation time.
 */
export class StampingLeaseStore extends InMemoryLeaseStore {
  constructor(private readonly clock: Clock) {
    super();
  }
  override async updateAnnex(annex: Annex, changes: AnnexChanges, event?: AnnexEvent): Promise<Annex> {
    return super.updateAnnex(annex, this.stamped(annex, changes, event), event);
  }
  override async startBatch(
    annex: Annex,
    changes: AnnexChanges,
    claim: AddNodesClaim,
    event: AnnexEvent,
  ): Promise<Annex> {
    return super.startBatch(annex, this.stamped(annex, changes, event), claim, event);
  }
  private stamped(annex: Annex, changes: AnnexChanges, event?: AnnexEvent): AnnexChanges {
    if (changes.updatedAt !== undefined && changes.updatedAt !== annex.updatedAt) return changes;
    return { ...changes, updatedAt: event?.at ?? this.clock.now().toISOString() };
  }
}
