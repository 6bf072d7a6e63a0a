/**
 * Slack notices, every minute: the expiry warning (`warnBeforeSeconds` ahead) and the end notice
 * for annexes created from Slack, posted to the channel they were created in.
 */
import { isEnded } from '../domain/lease.ts';
import type { Clock, LeaseStore, Logger } from '../domain/ports.ts';
import { cardAnnex, endedMessage, warningMessage } from './blocks.ts';
import { SlackPostError } from './errors.ts';
import type { SlackMessenger, SlackSecrets, SlackSettings, SlackStore } from './ports.ts';

export interface SlackNotifyDeps {
  store: Pick<LeaseStore, 'getAnnex' | 'listInstances'>;
  slackStore: SlackStore;
  secrets: Pick<SlackSecrets, 'botToken'>;
  messenger: SlackMessenger;
  clock: Clock;
  log: Logger;
  slack: SlackSettings;
}

export interface NotifyReport {
  watched: number;
  warned: number;
  ended: number;
  failed: number;
}

/**
 * Convergent: whatever extended or ended an annex (Slack, the API, the CLI, the schedule, the
 * sweep), the next run sees the annex as the table has it. A warning is due once per expiry
 * (an extension makes a new one due); an end notice is sent once, then the watch is deleted.
 * A failed post is retried next minute; one Slack will never accept is given up and logged.
 */
export const notifySlack = async (deps: SlackNotifyDeps): Promise<NotifyReport> => {
  const report: NotifyReport = { watched: 0, warned: 0, ended: 0, failed: 0 };
  const watches = await deps.slackStore.listWatches();
  report.watched = watches.length;
  if (watches.length === 0) return report;
  const token = await deps.secrets.botToken();
  for (const watch of watches) {
    try {
      const annex = await deps.store.getAnnex(watch.annexId);
      if (annex === undefined) {
        await deps.slackStore.deleteWatch(watch.annexId);
        continue;
      }
      const now = deps.clock.now();
      const ended = isEnded(annex.state);
      const warnDue =
        !ended &&
        watch.warnedFor !== annex.expiresAt &&
        Date.parse(annex.expiresAt) - now.getTime() <= deps.slack.warnBeforeSeconds * 1000;
      if (!ended && !warnDue) continue;
      if (token === undefined) {
        deps.log.warn('no Slack bot token is configured; warnings and end notices are not sent', {
          annexId: annex.id,
        });
        if (ended) await deps.slackStore.deleteWatch(annex.id);
        continue;
      }
      const view = cardAnnex(annex, await deps.store.listInstances(annex.id), now);
      try {
        await deps.messenger.postMessage(
          token,
          watch.channelId,
          ended ? endedMessage(view) : warningMessage(view, now),
        );
      } catch (e) {
        if (!(e instanceof SlackPostError) || !e.permanent) throw e;
        deps.log.warn('slack will not take this message; giving it up', {
          annexId: annex.id,
          error: e.message,
        });
      }
      if (ended) {
        await deps.slackStore.deleteWatch(annex.id);
        report.ended++;
      } else {
        await deps.slackStore.markWarned(annex.id, annex.expiresAt);
        report.warned++;
      }
    } catch (e) {
      report.failed++;
      deps.log.error('slack notice failed; retried next minute', {
        annexId: watch.annexId,
        error: (e as Error | undefined)?.name,
        detail: (e as Error | undefined)?.message,
      });
    }
  }
  return report;
};
