/** The ports Slack support needs; adapters live in shared/aws/slack-*.ts and shared/slack/client.ts. */
import type { SlackIdentity, SlackJob, SlackMessage, SlackWatch } from './model.ts';

export interface SlackStore {
  getIdentity(teamId: string, userId: string): Promise<SlackIdentity | undefined>;
  putIdentity(identity: SlackIdentity): Promise<void>;
  /** false when there was none. */
  deleteIdentity(teamId: string, userId: string): Promise<boolean>;
  /** Conditional put of a request's signature (with a TTL): 'replay' when it was seen before. */
  recordNonce(signature: string, expiresAtEpochSeconds: number): Promise<'recorded' | 'replay'>;
  putWatch(watch: SlackWatch): Promise<void>;
  listWatches(): Promise<SlackWatch[]>;
  markWarned(annexId: string, expiresAt: string): Promise<void>;
  deleteWatch(annexId: string): Promise<void>;
}

export interface SlackSecrets {
  /** The app's signing secret (cached; re-read after a while so a rotation takes effect). */
  signingSecret(): Promise<string>;
  /** The bot token for chat.postMessage, or undefined when none is configured. */
  botToken(): Promise<string | undefined>;
}

/** Hands a job to the worker without waiting for it (Lambda `InvocationType: Event`). */
export interface SlackJobs {
  enqueue(job: SlackJob): Promise<void>;
}

/** Slack's side: answers to a response_url, and bot messages to a channel. */
export interface SlackMessenger {
  respond(responseUrl: string, message: SlackMessage): Promise<void>;
  postMessage(token: string, channel: string, message: SlackMessage): Promise<void>;
}

export interface SlackSettings {
  /** Slack workspaces (team ids) allowed to use Annex; any other is refused. */
  teamIds: readonly string[];
  signingSecretParameter: string;
  botTokenParameter: string;
  /** response_url must start with this (https://hooks.slack.com/ in production). */
  responseUrlPrefix: string;
  /** Slack Web API base, ending in `/` (https://slack.com/api/ in production). */
  apiUrl: string;
  /** The worker function (name or ARN); only the acknowledging routes need it. */
  workerFunction?: string;
  /** How long before expiry the warning goes out. */
  warnBeforeSeconds: number;
}
