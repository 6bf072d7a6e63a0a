/** The rules of replacing interrupted spot instances (see ec2-events.ts), shared with create. */

/** A replacement must have this much lease left to be worth booting and joining the pool. */
export const REPLACEMENT_MIN_LEASE_SECONDS = 15 * 60;
/** Replacements per annex when the request names no maximum. */
export const DEFAULT_MAX_REPLACEMENTS = 3;
/** The most a request may ask for. */
export const MAX_REPLACEMENTS_LIMIT = 20;
