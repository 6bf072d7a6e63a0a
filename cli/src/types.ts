/**
 * The API's objects as the CLI reads them: the types of the response schemas the API's contract is
 * generated from (shared/http/responses.ts, docs/openapi.yaml). Type-only imports: no zod code
 * lands in the CLI. `--json` prints them unchanged.
 */
import type { AnnexView } from '../../shared/http/responses.ts';

export type {
  AnnexDetailView as AnnexDetail,
  AnnexEventView as AnnexEvent,
  AnnexView as Annex,
  InstanceView as Instance,
  PoolCheckView as PoolCheck,
  PoolView as Pool,
} from '../../shared/http/responses.ts';

export type AnnexState = AnnexView['state'];

export const isEnded = (state: AnnexState): boolean => state === 'TERMINATED' || state === 'FAILED';
