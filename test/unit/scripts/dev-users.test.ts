import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  defaultDevUserName,
  defaultDevUsers,
  loadDevUsers,
  writeDevUsers,
} from '../../../scripts/devstack/dev-users.ts';

const tempFile = () => join(mkdtempSync(join(tmpdir(), 'annex-users-')), '.annex', 'dev-users.json');

describe('defaultDevUsers', () => {
  it('are admin, alice (the default) and bob, with distinct AWS-shaped keys', () => {
    const users = defaultDevUsers();

    expect(users.map((user) => user.name)).toEqual(['admin', 'alice', 'bob']);
    expect(users.find((user) => user.name === defaultDevUserName)?.principalArn).toBe(
      'arn:aws:iam::123456789012:user/alice',
    );
    expect(users.filter((user) => user.admin === true).map((user) => user.principalArn)).toEqual([
      'arn:aws:iam::123456789012:user/annex-admin',
    ]);
    for (const user of users) {
      expect(user.accessKeyId).toMatch(/^AKIA[A-Z0-9]{16}$/);
      expect(user.secretAccessKey).toHaveLength(40);
    }
    expect(new Set(users.map((user) => user.accessKeyId)).size).toBe(3);
    expect(new Set(users.map((user) => user.secretAccessKey)).size).toBe(3);
  });

  it('are the same every time', () => {
    expect(defaultDevUsers()).toEqual(defaultDevUsers());
  });
});

describe('dev users file', () => {
  it('round-trips through writeDevUsers and loadDevUsers, readable by its owner only', () => {
    const path = tempFile();

    writeDevUsers(path, defaultDevUsers());

    expect(loadDevUsers(path)).toEqual(defaultDevUsers());
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('names the file when it is not a dev users file', () => {
    const path = tempFile();
    writeDevUsers(path, defaultDevUsers());
    writeFileSync(path, JSON.stringify({ users: [{ name: 'x' }] }));

    expect(() => loadDevUsers(path)).toThrow(path);
  });
});
