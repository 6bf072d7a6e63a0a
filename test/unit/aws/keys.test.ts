import { describe, expect, it } from 'vitest';
import { INDEX, KEY_ATTRIBUTES, LIVE_SHARDS, keys } from '../../../shared/aws/keys.ts';

describe('keys', () => {
  it('puts an annex, its instances, events and add-nodes claims in one partition', () => {
    // Prepare
    const annexId = 'ax-0123456789abcdef0123';

    // Act
    const annex = keys.annex(annexId);
    const instance = keys.instance(annexId, 'i-0abc');
    const event = keys.event(annexId, '2030-01-01T00:00:00.000Z', 'beef');
    const claim = keys.addNodesClaim(annexId, 'key-1');

    // Assess
    expect(annex.PK).toBe(keys.annexPartition(annexId));
    for (const key of [instance, event, claim]) expect(key.PK).toBe(annex.PK);
    expect(annex.SK).toBe('META');
    expect(instance.SK.startsWith(keys.instancePrefix)).toBe(true);
    expect(instance.SK.endsWith('i-0abc')).toBe(true);
    expect(event.SK.startsWith(keys.eventPrefix)).toBe(true);
    expect(event.SK).toContain('2030-01-01T00:00:00.000Z');
    expect(claim.SK).toContain('key-1');
  });

  it('builds distinct partitions for different annexes', () => {
    // Act
    const a = keys.annex('ax-a');
    const b = keys.annex('ax-b');

    // Assess
    expect(a.PK).not.toBe(b.PK);
    expect(a.SK).toBe(b.SK);
  });

  it('sorts event keys of one annex by time', () => {
    // Act
    const earlier = keys.event('ax-1', '2030-01-01T00:00:00.000Z', 'ffff');
    const later = keys.event('ax-1', '2030-01-01T00:00:00.001Z', '0000');

    // Assess
    expect(earlier.SK < later.SK).toBe(true);
  });

  it('keys a name claim by owner and name, apart from annex partitions', () => {
    // Act
    const claim = keys.nameClaim('arn:aws:iam::123456789012:user/alice', 'burst');
    const other = keys.nameClaim('arn:aws:iam::123456789012:user/bob', 'burst');

    // Assess
    expect(claim.PK).toBe(keys.ownerIndex.owner('arn:aws:iam::123456789012:user/alice'));
    expect(claim.PK).not.toBe(other.PK);
    expect(claim.SK).toContain('burst');
    expect(claim.PK).not.toBe(keys.annexPartition('burst'));
  });

  it('keys a shared pool apart from each owner’s private pool of the same name', () => {
    // Act
    const shared = keys.pool('cm', 'shared', 'arn:aws:iam::123456789012:user/alice');
    const aliceOwn = keys.pool('cm', 'private', 'arn:aws:iam::123456789012:user/alice');
    const bobOwn = keys.pool('cm', 'private', 'arn:aws:iam::123456789012:user/bob');

    // Assess
    expect(shared.PK).toBe(aliceOwn.PK);
    expect(new Set([shared.SK, aliceOwn.SK, bobOwn.SK]).size).toBe(3);
    expect(keys.pool('cm', 'shared', 'arn:aws:iam::123456789012:user/bob')).toEqual(shared);
  });

  it('orders an owner’s annexes by name under a prefix that selects one name', () => {
    // Act
    const item = keys.ownerIndex.annex('owner', 'burst', '2030-01-01T00:00:00.000Z', 'ax-1');
    const longerName = keys.ownerIndex.annex('owner', 'burst2', '2030-01-01T00:00:00.000Z', 'ax-2');

    // Assess
    expect(item.ownerPk).toBe(keys.ownerIndex.owner('owner'));
    expect(item.ownerSk.startsWith(keys.ownerIndex.annexPrefix())).toBe(true);
    expect(item.ownerSk.startsWith(keys.ownerIndex.annexPrefix('burst'))).toBe(true);
    expect(longerName.ownerSk.startsWith(keys.ownerIndex.annexPrefix('burst'))).toBe(false);
  });

  it('indexes shared pools under one shared owner partition and private pools under their owner', () => {
    // Act
    const shared = keys.ownerIndex.pool('shared', 'owner', 'cm');
    const own = keys.ownerIndex.pool('private', 'owner', 'cm');

    // Assess
    expect(shared.ownerPk).toBe(keys.ownerIndex.shared);
    expect(own.ownerPk).toBe(keys.ownerIndex.owner('owner'));
    expect(shared.ownerSk.startsWith(keys.ownerIndex.poolPrefix)).toBe(true);
  });

  it('gives an annex the same live shard every time', () => {
    // Act
    const first = keys.liveShard('ax-0123456789abcdef0123');
    const second = keys.liveShard('ax-0123456789abcdef0123');

    // Assess
    expect(second).toBe(first);
  });

  it('keeps every live shard among the LIVE_SHARDS shards and uses all of them', () => {
    // Prepare
    const all = keys.allLiveShards();
    const ids = Array.from({ length: 200 }, (_, i) => `ax-${i.toString(16).padStart(20, '0')}`);

    // Act
    const used = new Set(ids.map((id) => keys.liveShard(id)));

    // Assess
    expect(all).toHaveLength(LIVE_SHARDS);
    expect(new Set(all).size).toBe(LIVE_SHARDS);
    for (const shard of used) expect(all).toContain(shard);
    expect(used.size).toBe(LIVE_SHARDS);
  });

  it('names the indexes and the attributes that exist only for the table', () => {
    // Assess
    expect(INDEX).toEqual({ byOwner: 'byOwner', live: 'live', liveInstances: 'liveInstances' });
    expect(KEY_ATTRIBUTES).toEqual(
      expect.arrayContaining([
        'PK',
        'SK',
        'ownerPk',
        'ownerSk',
        'liveShard',
        'liveInstanceShard',
        'liveInstanceSk',
        'entity',
      ]),
    );
  });
});
