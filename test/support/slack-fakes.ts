/** Stateful in-memory doubles of the Slack ports, with next-error injection like test/support/fakes.ts. */
import { SlackPostError } from '../../shared/slack/errors.ts';
import type { SlackIdentity, SlackJob, SlackMessage, SlackWatch } from '../../shared/slack/model.ts';
import type { SlackJobs, SlackMessenger, SlackSecrets, SlackStore } from '../../shared/slack/ports.ts';

export class InMemorySlackStore implements SlackStore {
  readonly identities = new Map<string, SlackIdentity>();
  readonly nonces = new Map<string, number>();
  readonly watches = new Map<string, SlackWatch>();
  /** Every write, in order: refused requests must leave this empty. */
  readonly writes: string[] = [];

  getIdentity(teamId: string, userId: string) {
    return Promise.resolve(structuredClone(this.identities.get(`${teamId}/${userId}`)));
  }
  putIdentity(identity: SlackIdentity) {
    this.writes.push(`identity ${identity.teamId}/${identity.userId}`);
    this.identities.set(`${identity.teamId}/${identity.userId}`, structuredClone(identity));
    return Promise.resolve();
  }
  deleteIdentity(teamId: string, userId: string) {
    this.writes.push(`delete identity ${teamId}/${userId}`);
    return Promise.resolve(this.identities.delete(`${teamId}/${userId}`));
  }
  recordNonce(signature: string, expiresAt: number) {
    if (this.nonces.has(signature)) return Promise.resolve('replay' as const);
    this.writes.push(`nonce ${signature}`);
    this.nonces.set(signature, expiresAt);
    return Promise.resolve('recorded' as const);
  }
  putWatch(watch: SlackWatch) {
    this.writes.push(`watch ${watch.annexId}`);
    if (!this.watches.has(watch.annexId)) this.watches.set(watch.annexId, structuredClone(watch));
    return Promise.resolve();
  }
  listWatches() {
    return Promise.resolve([...this.watches.values()].map((w) => structuredClone(w)));
  }
  markWarned(annexId: string, expiresAt: string) {
    const w = this.watches.get(annexId);
    if (w !== undefined) w.warnedFor = expiresAt;
    return Promise.resolve();
  }
  deleteWatch(annexId: string) {
    this.watches.delete(annexId);
    return Promise.resolve();
  }
}

/** Records jobs; `onEnqueue` may start the worker (not awaited, as Lambda's Event invoke). */
export class FakeJobs implements SlackJobs {
  readonly jobs: SlackJob[] = [];
  onEnqueue?: (job: SlackJob) => void;
  enqueue(job: SlackJob) {
    this.jobs.push(structuredClone(job));
    this.onEnqueue?.(job);
    return Promise.resolve();
  }
}

export class FakeMessenger implements SlackMessenger {
  readonly responses: { url: string; message: SlackMessage }[] = [];
  readonly posts: { token: string; channel: string; message: SlackMessage }[] = [];
  private readonly failures: unknown[] = [];
  failNextPost(error: unknown = new SlackPostError('chat.postMessage: not_in_channel', true)) {
    this.failures.push(error);
  }
  respond(url: string, message: SlackMessage) {
    this.responses.push({ url, message: structuredClone(message) });
    return Promise.resolve();
  }
  postMessage(token: string, channel: string, message: SlackMessage) {
    const failure = this.failures.shift();
    if (failure !== undefined) return Promise.reject(failure);
    this.posts.push({ token, channel, message: structuredClone(message) });
    return Promise.resolve();
  }
}

export class FakeSlackSecrets implements SlackSecrets {
  constructor(
    public secret = 'test-signing-secret',
    public token: string | undefined = 'xoxb-test',
  ) {}
  signingSecret() {
    return Promise.resolve(this.secret);
  }
  botToken() {
    return Promise.resolve(this.token);
  }
}
