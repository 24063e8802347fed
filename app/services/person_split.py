"""--split: a person's faces clustered again on their own with stricter bounds, shown as a
proposal of groups; applied, the largest group stays with the person and every other
group (a single face included) becomes a new user person."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.errors import RequestError
from app.inference.names import FACENETS, model_name
from app.pipeline.linkage import LinkageParams, Seeds, cluster
from app.repositories import persons as prepo
from app.services.assign import linkage_params
from app.services.person_change import operation


@dataclass
class SplitProposal:
    person_id: int
    groups: list[list[int]]  # face ids; the first (largest) stays with the person
    without_vector: list[int]  # faces with no deciding vector (below the quality gates): they stay
    bounds: tuple[float, float]
    operation_id: int | None = None  # set when applied
    created: list[int] = field(default_factory=list)  # new person per group after the first


def _groups(session: Session, settings: Settings, person_id: int) -> tuple[list[list[int]], list[int], LinkageParams]:
    base = linkage_params(settings)
    params = LinkageParams(min(base.threshold + settings.split_margin, 1.0),
                           min(base.pair_threshold + settings.split_margin, 1.0), base.neighbours)
    second = settings.embedder not in FACENETS
    ids, media, vectors = prepo.person_vectors(session, person_id, model_name(settings.embedder), second)
    everyone = [f.face_id for f in prepo.faces_of_person(session, person_id)]
    labels, _ = cluster(vectors, media, Seeds.empty(vectors.shape[1] if ids.size else 0), params)
    groups: dict[int, list[int]] = {}
    for face, label in zip(ids.tolist(), labels.tolist()):
        groups.setdefault(label, []).append(face)
    ordered = sorted(groups.values(), key=lambda g: (-len(g), g[0]))
    with_vector = set(ids.tolist())
    return ordered, [f for f in everyone if f not in with_vector], params


def split(sessions: sessionmaker[Session], settings: Settings, person_id: int, apply: bool = False) -> SplitProposal:
    if not apply:
        with sessions() as session:
            if not prepo.person_rows(session, [person_id]):
                raise RequestError(f"no person with id {person_id}")
            groups, rest, params = _groups(session, settings, person_id)
            return SplitProposal(person_id, groups, rest, (params.threshold, params.pair_threshold))
    with operation(sessions) as change:
        change.person(person_id)
        groups, rest, params = _groups(change.session, settings, person_id)
        proposal = SplitProposal(person_id, groups, rest, (params.threshold, params.pair_threshold))
        if len(groups) < 2:
            raise RequestError(f"person {person_id}: its faces form one group even with the stricter bounds; "
                               "nothing to split")
        states = prepo.face_states(change.session, [f for g in groups[1:] for f in g])
        for group in groups[1:]:
            new = change.create()
            change.move([states[f] for f in group], new)
            proposal.created.append(new)
        change.confirm([person_id])
        result = change.finish("split", f"split person {person_id}: kept {len(groups[0]) + len(rest)} faces, "
                               f"{len(groups) - 1} new person(s) {', '.join(map(str, proposal.created))}",
                               person_id=person_id)
        proposal.operation_id = result.operation_id
        return proposal
