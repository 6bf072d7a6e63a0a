/** Reading annexes: by name (the caller's own, or any for an admin), in detail, and as lists. */
import { notFound } from './errors.ts';
import type { Annex, AnnexEvent, Caller, InstanceRecord } from './model.ts';
import type { AnnexRef, ReadDeps } from './annex-deps.ts';

export const resolveAnnex = async (deps: ReadDeps, caller: Caller, ref: AnnexRef): Promise<Annex> => {
  const owner = ref.owner ?? caller.principalArn;
  // Another user's annex is reported exactly like a missing one: names are not disclosed.
  if (owner !== caller.principalArn && !caller.admin) throw notFound(`no annex named ${ref.name}`);
  const annex = await deps.store.findAnnexByName(owner, ref.name);
  if (annex === undefined) throw notFound(`no annex named ${ref.name}`);
  return annex;
};

export const getAnnexDetail = async (
  deps: ReadDeps,
  caller: Caller,
  ref: AnnexRef,
): Promise<{ annex: Annex; instances: InstanceRecord[]; events: AnnexEvent[] }> => {
  const annex = await resolveAnnex(deps, caller, ref);
  const [instances, events] = await Promise.all([
    deps.store.listInstances(annex.id),
    deps.store.listEvents(annex.id, 50),
  ]);
  return { annex, instances, events };
};

export const listAnnexes = async (deps: ReadDeps, caller: Caller, owner?: string): Promise<Annex[]> => {
  if (owner !== undefined && owner !== caller.principalArn) {
    if (!caller.admin) return [];
    return deps.store.listAnnexesByOwner(owner);
  }
  // An admin without ?owner= sees every live annex (read from the sparse live index).
  if (owner === undefined && caller.admin) return deps.store.listLiveAnnexes();
  return deps.store.listAnnexesByOwner(caller.principalArn);
};
