import { describe, expect, it } from 'vitest';
import { UpdateBuilder } from '../../../../shared/aws/table/update.ts';

describe('UpdateBuilder', () => {
  it('writes SET before REMOVE and aliases only reserved words by default', () => {
    // Prepare
    const update = new UpdateBuilder()
      .remove('liveInstanceSk')
      .set('state', 'running')
      .set('updatedAt', 'now', 'at');

    // Act
    const built = update.build();

    // Assess
    expect(built).toEqual({
      UpdateExpression: 'SET #state = :state, updatedAt = :at REMOVE liveInstanceSk',
      ExpressionAttributeNames: { '#state': 'state' },
      ExpressionAttributeValues: { ':state': 'running', ':at': 'now' },
    });
  });

  it('aliases every name when asked, and keeps the first write with setIfAbsent', () => {
    // Prepare
    const update = new UpdateBuilder({ aliasAll: true }).setIfAbsent('terminatedAt', 't').remove('launching');

    // Act
    const built = update.build();

    // Assess
    expect(built.UpdateExpression).toBe(
      'SET #terminatedAt = if_not_exists(#terminatedAt, :terminatedAt) REMOVE #launching',
    );
    expect(built.ExpressionAttributeNames).toEqual({
      '#terminatedAt': 'terminatedAt',
      '#launching': 'launching',
    });
  });

  it('appends to a list that may not exist yet', () => {
    // Act
    const built = new UpdateBuilder().append('tokenIds', ['jti-1'], 'id').build();

    // Assess
    expect(built.UpdateExpression).toBe('SET tokenIds = list_append(if_not_exists(tokenIds, :none), :id)');
    expect(built.ExpressionAttributeValues).toEqual({ ':none': [], ':id': ['jti-1'] });
    expect(built).not.toHaveProperty('ExpressionAttributeNames');
  });
});
