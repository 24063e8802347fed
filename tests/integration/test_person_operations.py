"""Person operations (rename, merge, move, split, reject, hide, delete, undo) on a library
the real pipeline filled from dev photos, on PostgreSQL and SQLite: each correction
survives --recognize and --recluster, and undo restores the exact earlier rows."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import insert, select, update

from app.db.models import ASSIGNED_USER, FaceRejections, Faces, Persons
from app.errors import RequestError
from app.repositories import history as hrepo
from app.services import history, person_split, persons
from tests.integration.persons_world import (
    IDENTITIES,
    changes,
    clone_sqlite,
    dump,
    face_person,
    faces_of_identity,
    fill,
    main_person,
    make_photos,
    open_world,
    persons_by_identity,
)

GUL, AGASSI, JOLIE, FLEISCHER = IDENTITIES


@pytest.fixture(scope="module")
def library(request, tmp_path_factory, models, faces_dev):
    """Filled once per module for each database kind; tests get a copy."""
    root = tmp_path_factory.mktemp("library")
    first, later = make_photos(faces_dev, root / "photos")
    thumbs = root / "thumbs"
    pg = request.getfixturevalue("pg_databases")
    name = pg.create(request.getfixturevalue("pg_template"))
    fill(pg.url(name), thumbs, models, first)
    sqlite_url = clone_sqlite(request.getfixturevalue("sqlite_template"), root)
    fill(sqlite_url, thumbs, models, first)
    return {"postgresql": name, "sqlite": root / "faces.db", "thumbs": thumbs, "later": later}


@pytest.fixture(params=["postgresql", "sqlite"])
def world(request, library, models, tmp_path):
    if request.param == "postgresql":
        pg = request.getfixturevalue("pg_databases")
        url = pg.url(pg.create(library["postgresql"]))
    else:
        url = clone_sqlite(library["sqlite"], tmp_path)
    w, close = open_world(url, library["thumbs"], models, library["later"])
    yield w
    close()


def later_of(w, identity):
    return [p for p in w.later if p.name.startswith(identity + "_")]


def test_library_is_four_pure_persons(world):
    by_identity = persons_by_identity(world.sessions)
    for identity in IDENTITIES:
        assert len(by_identity[identity]) == 1 and None not in by_identity[identity], by_identity
    listed = persons.list_persons(world.sessions)
    assert [p.faces for p in listed] == sorted((p.faces for p in listed), reverse=True)
    assert len(listed) == 4 and all(p.automatic and not p.hidden and p.cover for p in listed)
    detail = persons.get_person(world.sessions, listed[0].id)
    assert len(detail.faces) == listed[0].faces and all(f.assigned_by == "clustered" for f in detail.faces)


def test_rename_confirms_and_survives_recluster(world):
    gul = main_person(world.sessions, GUL)
    faces_before = faces_of_identity(world.sessions, GUL)
    result = persons.rename(world.sessions, gul, "  Abdullah   Gül ")
    with world.sessions() as s:
        row = s.get(Persons, gul)
        assert (row.Name, row.IsAutomatic) == ("Abdullah Gül", False)
    world.recognize(True)  # --recluster
    world.add(later_of(world, GUL))
    assert faces_of_identity(world.sessions, GUL)[:len(faces_before)] == faces_before
    assert {p for _, p in faces_of_identity(world.sessions, GUL)} == {gul}  # new photos joined the named person
    assert "renamed" in result.summary


def test_merge_moves_faces_deletes_others_and_undo_restores_exactly(world):
    gul, agassi = main_person(world.sessions, GUL), main_person(world.sessions, AGASSI)
    before = dump(world.sessions)
    persons.rename(world.sessions, agassi, "Andre")
    mid = dump(world.sessions)
    result = persons.merge(world.sessions, [gul, agassi])
    assert result.person_id == agassi  # the named one is kept
    faces, rows = dump(world.sessions)
    assert gul not in rows and rows[agassi][0] == "Andre"
    moved = [f for f, (p, _) in before[0].items() if p == gul]
    assert all(faces[f][0] == agassi and faces[f][1] == ASSIGNED_USER for f in moved)
    world.recognize(False)
    world.recognize(True)
    assert {p for _, p in faces_of_identity(world.sessions, GUL)} == {agassi}  # the merge survives --recluster
    undo = history.undo(world.sessions)  # the merge
    assert not changes(dump(world.sessions), mid) and "merge" in undo.summary
    history.undo(world.sessions)  # the rename
    assert not changes(dump(world.sessions), before)


def test_merge_refuses_two_names_without_force(world):
    gul, agassi = main_person(world.sessions, GUL), main_person(world.sessions, AGASSI)
    persons.rename(world.sessions, gul, "Gul")
    persons.rename(world.sessions, agassi, "Agassi")
    before = dump(world.sessions)
    with pytest.raises(RequestError, match="different names"):
        persons.merge(world.sessions, [gul, agassi])
    assert not changes(dump(world.sessions), before)
    assert persons.merge(world.sessions, [gul, agassi], force=True).person_id == gul


def _rejection_rows(w) -> set[tuple[int, int]]:
    with w.sessions() as s:
        return set(s.execute(select(FaceRejections.FaceId, FaceRejections.PersonId)).all())


@pytest.mark.parametrize("keep", ["rejecting", "holding"])
def test_merge_honours_the_rejections_of_every_merged_person(world, keep):
    """Issue 27: --reject F --from A, --move F --to B, --merge B A put F back into a person
    that rejected it (and rejecting it again failed on the unique key)."""
    gul, agassi = main_person(world.sessions, GUL), main_person(world.sessions, AGASSI)
    (face, _), *_ = faces_of_identity(world.sessions, GUL)
    persons.reject_faces(world.sessions, [face], expect=gul)
    persons.move_faces(world.sessions, [face], agassi)
    before, rejections_before = dump(world.sessions, at=True), _rejection_rows(world)
    ids = [gul, agassi] if keep == "rejecting" else [agassi, gul]
    kept = persons.merge(world.sessions, ids, force=True).person_id
    assert kept == ids[0]
    assert face_person(world.sessions, face) is None
    assert {(face, gul), (face, kept)} <= _rejection_rows(world)
    history.undo(world.sessions)
    assert not changes(dump(world.sessions, at=True), before)
    assert _rejection_rows(world) == rejections_before
    # merged again, the worker's runs never give the face to the merged person
    persons.merge(world.sessions, ids, force=True)
    world.recognize(False)
    world.recognize(True)
    assert face_person(world.sessions, face) != kept


def test_rejecting_a_face_its_person_rejects_already_is_no_error(world):
    gul = main_person(world.sessions, GUL)
    (face, _), *_ = faces_of_identity(world.sessions, GUL)
    with world.sessions.begin() as s:  # the state an older merge could leave behind
        s.execute(insert(FaceRejections).values(FaceId=face, PersonId=gul))
    before = dump(world.sessions, at=True)
    persons.reject_faces(world.sessions, [face], expect=gul)
    assert face_person(world.sessions, face) is None and _rejection_rows(world) == {(face, gul)}
    history.undo(world.sessions)
    assert not changes(dump(world.sessions, at=True), before) and _rejection_rows(world) == {(face, gul)}


def test_reject_survives_recognize_and_recluster(world):
    gul = main_person(world.sessions, GUL)
    (rejected, _), (control, _) = faces_of_identity(world.sessions, GUL)[:2]
    persons.reject_faces(world.sessions, [rejected], expect=gul)
    assert face_person(world.sessions, rejected) is None
    # the control face, merely unassigned, comes back to the person: what the rejection prevents
    with world.sessions.begin() as s:
        s.execute(update(Faces).where(Faces.Id == control).values(PersonId=None, AssignedBy=None, ConsideredAt=None))
    world.recognize(False)
    assert face_person(world.sessions, control) == gul
    assert face_person(world.sessions, rejected) != gul
    world.add(later_of(world, GUL))
    world.recognize(True)
    assert face_person(world.sessions, rejected) != gul
    assert {p for f, p in faces_of_identity(world.sessions, GUL) if f != rejected} == {gul}
    with world.sessions() as s:
        assert hrepo.rejections(s, [rejected]) == {rejected: {gul}}


def test_move_to_person_and_to_new_survive_recluster(world):
    gul, jolie = main_person(world.sessions, GUL), main_person(world.sessions, JOLIE)
    (a, _), (b, _), (c, _) = faces_of_identity(world.sessions, GUL)[:3]
    persons.move_faces(world.sessions, [a], jolie, expect=gul)
    to_new = persons.move_faces(world.sessions, [b, c], None)
    new = to_new.person_id
    assert to_new.created == [new]
    world.recognize(True)
    assert (face_person(world.sessions, a), face_person(world.sessions, b), face_person(world.sessions, c)) \
        == (jolie, new, new)
    with world.sessions() as s:
        assert {r for r in s.scalars(select(Faces.AssignedBy).where(Faces.Id.in_([a, b, c])))} == {ASSIGNED_USER}
        assert s.get(Persons, new).IsAutomatic is False
    with pytest.raises(RequestError, match="already in person"):
        persons.move_faces(world.sessions, [a], jolie)


def test_hidden_person_is_left_out_of_lists_and_still_collects_faces(world):
    fleischer = main_person(world.sessions, FLEISCHER)
    persons.set_hidden(world.sessions, fleischer, True)
    assert fleischer not in [p.id for p in persons.list_persons(world.sessions)]
    assert fleischer in [p.id for p in persons.list_persons(world.sessions, include_hidden=True)]
    world.add(later_of(world, FLEISCHER))
    world.recognize(True)
    assert {p for _, p in faces_of_identity(world.sessions, FLEISCHER)} == {fleischer}
    with world.sessions() as s:
        assert s.get(Persons, fleischer).IsHidden is True
    persons.set_hidden(world.sessions, fleischer, False)
    assert fleischer in [p.id for p in persons.list_persons(world.sessions)]


def test_deleted_person_faces_stay_unassigned_and_undo_brings_it_back(world):
    jolie = main_person(world.sessions, JOLIE)
    before = dump(world.sessions)
    persons.delete_person(world.sessions, jolie)
    faces = faces_of_identity(world.sessions, JOLIE)
    assert {p for _, p in faces} == {None}
    world.recognize(False)
    world.recognize(True)
    assert {p for _, p in faces_of_identity(world.sessions, JOLIE)} == {None}
    history.undo(world.sessions)
    assert not changes(dump(world.sessions), before)


def test_split_proposes_the_two_people_of_a_mixed_person(world):
    agassi, jolie = main_person(world.sessions, AGASSI), main_person(world.sessions, JOLIE)
    persons.merge(world.sessions, [agassi, jolie])  # a wrong merge, as a user might make
    before = dump(world.sessions)
    proposal = person_split.split(world.sessions, world.settings, agassi)
    assert dump(world.sessions) == before  # a proposal changes nothing
    agassi_faces = {f for f, _ in faces_of_identity(world.sessions, AGASSI)}
    jolie_faces = {f for f, _ in faces_of_identity(world.sessions, JOLIE)}
    assert sorted(map(set, proposal.groups), key=min) == sorted([agassi_faces, jolie_faces], key=min)
    applied = person_split.split(world.sessions, world.settings, agassi, apply=True)
    (new,) = applied.created
    assert {p for _, p in faces_of_identity(world.sessions, JOLIE)} | {p for _, p in faces_of_identity(
        world.sessions, AGASSI)} == {agassi, new}
    world.recognize(True)
    assert len({p for _, p in faces_of_identity(world.sessions, JOLIE)}) == 1
    assert {p for _, p in faces_of_identity(world.sessions, JOLIE)} != {p for _, p in faces_of_identity(
        world.sessions, AGASSI)}


def test_undo_restores_the_exact_rows(world):
    gul, jolie = main_person(world.sessions, GUL), main_person(world.sessions, JOLIE)
    before = dump(world.sessions, at=True)
    (a, _), (b, _), *_ = faces_of_identity(world.sessions, GUL)
    persons.reject_faces(world.sessions, [a])
    persons.move_faces(world.sessions, [b], None)
    persons.set_hidden(world.sessions, jolie, True)
    persons.rename(world.sessions, gul, "Gul")
    persons.merge(world.sessions, [gul, jolie])
    assert changes(dump(world.sessions, at=True), before)
    for _ in range(5):
        history.undo(world.sessions)
    assert not changes(dump(world.sessions, at=True), before)
    with world.sessions() as s:
        assert hrepo.rejections(s, [a]) == {}
    with pytest.raises(RequestError, match="nothing to undo"):
        history.undo(world.sessions)


def test_undo_refuses_when_a_later_operation_moved_the_same_face(world):
    gul, jolie, agassi = (main_person(world.sessions, i) for i in (GUL, JOLIE, AGASSI))
    (face, _), *_ = faces_of_identity(world.sessions, GUL)
    first = persons.move_faces(world.sessions, [face], jolie)
    persons.move_faces(world.sessions, [face], agassi)
    with pytest.raises(RequestError, match="changed the same faces"):
        history.undo(world.sessions, first.operation_id)
    history.undo(world.sessions, first.operation_id, force=True)
    assert face_person(world.sessions, face) == gul
    with pytest.raises(RequestError, match="already undone"):
        history.undo(world.sessions, first.operation_id)


def test_a_forced_undo_leaves_no_unnamed_person_without_faces(world, cli_factory):
    """Issue 27: the kept person of a merge, emptied and deleted by a later move, came back
    from a forced undo of the merge with no face, and --persons listed it."""
    gul, agassi, jolie = (main_person(world.sessions, i) for i in (GUL, AGASSI, JOLIE))
    gul_faces = [f for f, p in faces_of_identity(world.sessions, GUL) if p == gul]
    merged = persons.merge(world.sessions, [gul, agassi])
    with world.sessions() as s:
        held = list(s.scalars(select(Faces.Id).where(Faces.PersonId == gul)))
    persons.move_faces(world.sessions, held, jolie)  # gul, emptied, goes
    history.undo(world.sessions, merged.operation_id, force=True)
    with world.sessions() as s:
        assert s.get(Persons, gul) is None and s.get(Persons, agassi) is not None
    assert {face_person(world.sessions, f) for f in gul_faces} == {jolie}
    res = cli_factory(world.url)("--persons", "--all-persons", "--json")
    assert res.returncode == 0, res.stderr
    listed = json.loads(res.stdout)
    assert gul not in [p["id"] for p in listed] and all(p["faces"] > 0 for p in listed), listed


def test_a_forced_undo_keeps_a_named_person_without_faces(world):
    gul, agassi, jolie = (main_person(world.sessions, i) for i in (GUL, AGASSI, JOLIE))
    persons.rename(world.sessions, gul, "Gul")
    merged = persons.merge(world.sessions, [gul, agassi])
    with world.sessions() as s:
        held = list(s.scalars(select(Faces.Id).where(Faces.PersonId == gul)))
    persons.move_faces(world.sessions, held, jolie)  # a named person stays, emptied
    history.undo(world.sessions, merged.operation_id, force=True)
    (listed,) = persons.list_persons(world.sessions, person_ids=[gul])
    assert (listed.name, listed.faces) == ("Gul", 0)


def test_the_log_replays_to_every_face_person(world):
    gul, jolie, agassi = (main_person(world.sessions, i) for i in (GUL, JOLIE, AGASSI))
    (a, _), (b, _), *_ = faces_of_identity(world.sessions, GUL)
    persons.move_faces(world.sessions, [a], jolie)
    persons.reject_faces(world.sessions, [b])
    persons.merge(world.sessions, [agassi, jolie])
    world.add(world.later)
    world.recognize(True)
    history.undo(world.sessions)
    with world.sessions() as s:
        replayed = hrepo.replay(s)
        now = dict(s.execute(select(Faces.Id, Faces.PersonId)).all())
    assert replayed and all(now[f] == p for f, p in replayed.items())
    assert all(p is None for f, p in now.items() if f not in replayed)  # every assignment is logged


@pytest.mark.parametrize("args, message", [
    (["--rename", "999", "X"], "no person with id 999"),
    (["--rename", "{gul}", "  "], "the name is empty"),
    (["--rename", "{gul}", "x" * 256], "at most 255"),
    (["--merge", "{gul}", "{gul}"], "merged with itself"),
    (["--merge", "{gul}", "999"], "no person with id 999"),
    (["--move", "99999", "--to", "{gul}"], "no face with id 99999"),
    (["--reject", "{agassi_face}", "--from", "{gul}"], "not in person"),
    (["--undo", "999"], "no operation with id 999"),
    (["--persons", "{gul}", "99999"], "no person with id 99999"),
    (["--history", "--limit", "1e20"], "--limit: expected a whole number, got '1e20'"),
    (["--history", "--limit", "100000000000000000000"], "--limit must be from 1 to 10,000"),
    (["--history", "--limit", "0"], "--limit must be from 1 to 10,000"),
])
def test_bad_requests_exit_2_with_one_line_and_change_nothing(world, cli_factory, args, message):
    gul = main_person(world.sessions, GUL)
    agassi_face = faces_of_identity(world.sessions, AGASSI)[0][0]
    before = dump(world.sessions)
    res = cli_factory(world.url)(*[a.format(gul=gul, agassi_face=agassi_face) for a in args])
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert not changes(dump(world.sessions), before)


def test_command_line_prints_tables_and_json(world, cli_factory):
    cli = cli_factory(world.url)
    gul = main_person(world.sessions, GUL)
    res = cli("--rename", str(gul), "Abdullah Gul")
    assert res.returncode == 0 and "renamed person" in res.stdout, res.stderr
    res = cli("--persons", "--json")
    listed = json.loads(res.stdout)
    assert listed[0]["faces"] >= listed[-1]["faces"] and {p["name"] for p in listed} >= {"Abdullah Gul"}
    res = cli("--person", str(gul))
    assert res.returncode == 0 and "Abdullah Gul" in res.stdout and res.stdout.count("clustered") == 5
    res = cli("--history")
    assert res.returncode == 0 and "rename" in res.stdout and "recognize" in res.stdout
    res = cli("--undo", "--json")
    assert json.loads(res.stdout)["summary"].startswith("undid operation")
