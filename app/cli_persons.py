"""Command line of the person operations: flags -> app/services/persons.py (and split,
history); a readable table or summary, or JSON with --json. Errors (RequestError) reach
main as one line with exit code 2, nothing changed."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from datetime import datetime

from app.config import Settings
from app.errors import EXIT_OK, UsageError
from app.text import printable

UNDO_LAST = "last"


def face_ids(text: str) -> list[int]:
    """argparse type of --move / --reject: FACE_ID[,FACE_ID...]."""
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"face ids must be whole numbers separated by commas, got {text!r}") from None
    if not ids:
        raise argparse.ArgumentTypeError("no face id given")
    return ids


def add_arguments(p: argparse.ArgumentParser, modes) -> None:
    p.add_argument("--persons", metavar="ID", type=int, nargs="*",
                   help="list persons, largest first (hidden ones only with --all-persons), or only the "
                   "ones given; with --export: export only these persons")
    modes.add_argument("--person", metavar="ID", type=int, help="show one person and its faces")
    modes.add_argument("--rename", metavar=("ID", "NAME"), nargs=2,
                       help="name a person (a named person is never changed by the worker)")
    modes.add_argument("--merge", metavar="ID", type=int, nargs="+",
                       help="merge persons into one (the named one if exactly one is named, else the first)")
    modes.add_argument("--move", metavar="FACE_ID[,FACE_ID...]", type=face_ids,
                       help="move faces to the person given by --to (an id, or 'new')")
    modes.add_argument("--split", metavar="ID", type=int,
                       help="propose how a person's faces fall apart under stricter bounds; --apply makes the persons")
    modes.add_argument("--reject", metavar="FACE_ID[,FACE_ID...]", type=face_ids,
                       help="'not this person': the faces leave their person and never get it again")
    modes.add_argument("--hide", metavar="ID", type=int, help="hide a person from lists (it still collects faces)")
    modes.add_argument("--unhide", metavar="ID", type=int, help="show a hidden person in lists again")
    modes.add_argument("--delete-person", metavar="ID", type=int,
                       help="delete a person; its faces stay without a person and later runs leave them so")
    modes.add_argument("--cover", metavar=("ID", "FACE_ID"), nargs=2,
                       help="make a face the person's cover (apps show it); FACE_ID 'auto': the best-scored face")
    modes.add_argument("--history", action="store_true", help="list the latest operations and worker runs")
    modes.add_argument("--undo", metavar="OPERATION_ID", nargs="?", const=UNDO_LAST,
                       help="undo the latest user operation, or the given one")
    p.add_argument("--all-persons", action="store_true", help="with --persons: include hidden persons")
    p.add_argument("--to", metavar="PERSON_ID|new", help="with --move: the person the faces go to")
    p.add_argument("--from", dest="from_person", metavar="PERSON_ID", type=int,
                   help="with --move / --reject: refuse unless every face is in this person now")
    p.add_argument("--apply", action="store_true", help="with --split: create the proposed persons")
    p.add_argument("--force", action="store_true",
                   help="with --merge: merge differently named persons; with --undo: undo despite later changes")
    # read here, not by argparse, so that a bad number is one line like every other bad id
    p.add_argument("--limit", metavar="N", default="20",
                   help="with --history: how many (default 20, at most 10,000)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


MODE_NAMES = ("persons", "person", "rename", "merge", "move", "split", "reject", "hide", "unhide",
              "delete_person", "history", "undo", "cover")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _json(value) -> None:
    print(json.dumps(value, indent=2, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v)))


def _table(headers: list[str], rows: list[list[str]]) -> None:
    rows = [[printable(c) for c in r] for r in rows]  # a name or path is one cell on one line
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _short(name: str | None, width: int = 32) -> str:
    if not name:
        return "-"
    return name if len(name) <= width else name[:width - 1] + "…"


def run(ctx_factory, settings: Settings, args: argparse.Namespace, mode: str) -> int:
    from app.services import history, person_split, persons

    ctx = ctx_factory(settings)
    sessions = ctx.sessions
    if mode == "persons":
        if args.persons:
            found = persons.persons_by_id(sessions, args.persons)
        else:
            found = persons.list_persons(sessions, include_hidden=args.all_persons)
        if args.json:
            _json([asdict(p) for p in found])
            return EXIT_OK
        _table(["id", "name", "faces", "photos", "hidden", "kind", "first", "last", "cover"],
               [[str(p.id), _short(p.name), str(p.faces), str(p.photos), "yes" if p.hidden else "",
                 "automatic" if p.automatic else "user", _when(p.first_seen), _when(p.last_seen), p.cover or "-"]
                for p in found])
        print(f"{len(found)} person(s)" + ("" if args.all_persons else " (hidden ones left out; --all-persons)"))
        return EXIT_OK
    if mode == "person":
        d = persons.get_person(sessions, args.person)
        if args.json:
            _json({"person": asdict(d.person), "faces": [asdict(f) for f in d.faces], "rejected_faces": d.rejected})
            return EXIT_OK
        p = d.person
        print(f"person {p.id}: {printable(p.name or '(no name)')}, {p.faces} faces in {p.photos} photos, "
              f"{'automatic' if p.automatic else 'user'}{', hidden' if p.hidden else ''}; "
              f"{d.rejected} face(s) rejected from it")
        _table(["face", "file", "confidence", "assigned by", "when"],
               [[str(f.face_id), f.file_path, f"{f.confidence:.3f}" if f.confidence is not None else "-",
                 f.assigned_by or "-", _when(f.assigned_at)] for f in d.faces])
        return EXIT_OK
    if mode == "history":
        ops = history.history(sessions, _id(args.limit, "--limit"))
        if args.json:
            _json([asdict(o) for o in ops])
            return EXIT_OK
        _table(["id", "when", "who", "what", "faces", "undone by", "summary"],
               [[str(o.id), _when(o.created_at), o.who, o.kind, str(o.faces),
                 str(o.undone_by) if o.undone_by else "", o.summary] for o in ops])
        return EXIT_OK
    if mode == "split":
        proposal = person_split.split(sessions, settings, args.split, apply=args.apply)
        if args.json:
            _json(asdict(proposal))
            return EXIT_OK
        t, pt = proposal.bounds
        print(f"person {proposal.person_id}: {len(proposal.groups)} group(s) at bounds {t:.3f} / {pt:.3f}")
        for i, group in enumerate(proposal.groups):
            where = "stays" if i == 0 else (f"-> person {proposal.created[i - 1]}" if proposal.created
                                            else "-> new person")
            print(f"  group {i + 1}: {len(group)} face(s) {where}: {', '.join(map(str, group))}")
        if proposal.without_vector:
            print(f"  {len(proposal.without_vector)} face(s) without a vector stay: "
                  f"{', '.join(map(str, proposal.without_vector))}")
        if proposal.operation_id:
            print(f"operation {proposal.operation_id}: applied")
        elif len(proposal.groups) > 1:
            print("nothing changed; add --apply to create the new persons")
        return EXIT_OK
    if mode == "cover":
        person_id, face = args.cover
        face_id = None if face.strip().lower() == "auto" else _id(face, "--cover")
        cover = persons.set_cover(sessions, _id(person_id, "--cover"), face_id)
        print(f"person {person_id}: cover face {cover if cover is not None else '-'}"
              + (" (chosen by you)" if face_id is not None else " (the best-scored face)"))
        return EXIT_OK
    result = _operate(sessions, args, mode)
    if args.json:
        _json(asdict(result))
    else:
        print(f"operation {result.operation_id}: {result.summary}")
    return EXIT_OK


def _operate(sessions, args: argparse.Namespace, mode: str):
    from app.services import history, persons

    if mode == "rename":
        person_id, name = args.rename
        return persons.rename(sessions, _id(person_id, "--rename"), name)
    if mode == "merge":
        return persons.merge(sessions, args.merge, force=args.force)
    if mode == "move":
        if not args.to:
            raise UsageError("--move needs --to PERSON_ID or --to new")
        to = None if args.to.strip().lower() == "new" else _id(args.to, "--to")
        return persons.move_faces(sessions, args.move, to, expect=args.from_person)
    if mode == "reject":
        return persons.reject_faces(sessions, args.reject, expect=args.from_person)
    if mode in ("hide", "unhide"):
        return persons.set_hidden(sessions, getattr(args, mode), hidden=mode == "hide")
    if mode == "delete_person":
        return persons.delete_person(sessions, args.delete_person)
    if mode == "undo":
        op = None if args.undo == UNDO_LAST else _id(args.undo, "--undo")
        return history.undo(sessions, op, force=args.force)
    raise AssertionError(mode)


def _id(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{flag}: expected a whole number, got {text!r}") from None
