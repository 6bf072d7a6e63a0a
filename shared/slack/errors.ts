/** Failures at Slack's edge, apart from the domain's closed set (they never reach a domain caller). */

/** The request is not provably Slack's (signature, timestamp, replay): 401 without detail. */
export class SlackAuthError extends Error {
  override name = 'SlackAuthError';
}

/** Slack refused or could not take a message; `permanent` when retrying cannot help. */
export class SlackPostError extends Error {
  override name = 'SlackPostError';
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
  }
}
