/** What Slack support keeps and passes around. No AWS types here. */

/** An administrator's mapping of a Slack user to the principal it acts as, and its pools. */
export interface SlackIdentity {
  teamId: string;
  userId: string;
  /** The IAM principal ARN the Slack user acts as: the owner of what it creates. */
  principalArn: string;
  /** Pools the Slack user may create annexes in (the principal must also be allowed to use them). */
  pools: string[];
  updatedAt: string;
  updatedBy: string;
}

/** A parsed `/annex …` command. */
export type SlackCommand =
  | { kind: 'help' }
  | { kind: 'list' }
  | { kind: 'status'; name: string }
  | { kind: 'extend'; name: string; bySeconds: number }
  | { kind: 'terminate'; name: string }
  | {
      kind: 'create';
      name: string;
      count: number;
      instanceTypes: string[];
      spot: boolean;
      durationSeconds?: number;
      idleSeconds?: number;
      pool?: string;
    };

/** A button on a status card: which annex it is about (its id guards against a reused name). */
export interface SlackAnnexRef {
  id: string;
  name: string;
  owner: string;
}

export type SlackAction =
  { kind: 'extend'; annex: SlackAnnexRef } | { kind: 'terminate'; annex: SlackAnnexRef };

/** Work the acknowledging function hands to the worker (an async Lambda invoke). */
export interface SlackJob {
  teamId: string;
  userId: string;
  channelId?: string;
  responseUrl: string;
  /** Derived from Slack's trigger id: a repeated job lands on the same annex. */
  idempotencyKey: string;
  receivedAt: string;
  work: { type: 'command'; command: SlackCommand } | { type: 'action'; action: SlackAction };
}

/** An annex created from Slack: where its expiry warning and end notice go. */
export interface SlackWatch {
  annexId: string;
  teamId: string;
  userId: string;
  channelId: string;
  /** The expiry the 10-minute warning was sent for (an extension makes a new warning due). */
  warnedFor?: string;
  createdAt: string;
}

/** A Slack message (response_url or chat.postMessage body). */
export interface SlackMessage {
  text: string;
  blocks?: unknown[];
  response_type?: 'ephemeral' | 'in_channel';
  replace_original?: boolean;
}
