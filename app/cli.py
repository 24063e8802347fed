"""Command line: flags -> services; progress and a summary; exit codes.

Exit codes: 0 ok, 1 some items failed, 2 usage, configuration or database error.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app import cli_persons
from app.config import Settings, default_sqlite_url, load_settings
from app.db import schema
from app.db.engine import make_engine, session_factory
from app.db.types import utcnow
from app.db.url import display, mask
from app.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, AppError, SettingsError, UsageError, first_line
from app.logs import setup_logging
from app.stopping import StopFlag
from app.text import EscapingStream, printable
from app.worker.sqlite_lock import single_worker
from app.worker.stop import stop_on_signals

log = logging.getLogger("app.cli")


@dataclass
class Context:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    stop: StopFlag


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="main.py",
        description="Face-grouping worker: finds faces in the photos registered in the "
        "database and groups them into persons.",
        epilog="Exit codes: 0 ok, 1 some items failed, 2 usage/configuration/database error. "
        "Settings come from the environment and .env (see .env.example).",
    )
    modes = p.add_mutually_exclusive_group()  # one of them, or --persons alone (see _mode)
    modes.add_argument("--test", metavar="IMAGE", type=Path,
                       help="detect faces in one image file, no database; print them and write an annotated copy")
    modes.add_argument("--db", action="store_true",
                       help="detect faces in every pending media item once, then exit")
    modes.add_argument("--watch", action="store_true",
                       help="detect faces continuously: poll for pending media items until stopped")
    modes.add_argument("--recognize", action="store_true",
                       help="embed new faces, match them to known persons, cluster the rest into new persons")
    modes.add_argument("--recluster", action="store_true",
                       help="rebuild all automatic person assignments from scratch (named persons kept)")
    modes.add_argument("--all", action="store_true",
                       help="run detection then recognition once")
    modes.add_argument("--automate", action="store_true",
                       help="run detection + recognition on a schedule until stopped")
    modes.add_argument("--ingest", metavar="DIR",  # text: Path("") would be the current folder
                       help="register every image and video file under DIR (recursively) that is not registered yet")
    p.add_argument("--follow-links", action="store_true",
                   help="with --ingest: also walk folders reached through symbolic links (each folder once)")
    modes.add_argument("--publish", action="store_true",
                       help="post every pending result event to PUBLISH_URL (retrying as configured), then exit")
    modes.add_argument("--status", action="store_true",
                       help="print counts of media, faces and persons")
    modes.add_argument("--migrate", action="store_true",
                       help="bring the database schema to the latest revision")
    modes.add_argument("--retry-failed", action="store_true",
                       help="hand the media items and faces given up after MAX_ATTEMPTS back to their queues, "
                       "attempts reset (the next run tries them again)")
    p.add_argument("--since", metavar="WHEN",
                   help="with --retry-failed: only items whose last attempt was at or after WHEN, an ISO date or "
                   "time in local time unless it has an offset (2026-12-01, 2026-12-01T10:00)")
    modes.add_argument("--evaluate", metavar="DIR", type=Path,
                       help="run the whole pipeline on a labelled folder (one sub-folder per identity) "
                       "in a fresh temporary database and print detection, embedding and clustering scores")
    cli_persons.add_arguments(p, modes)
    modes.add_argument("--export", metavar="DIR", type=Path,
                       help="write every visible person to DIR: face chips with metadata JSON, photos, best "
                       "photos, contact sheets, summary.json, index.html; again later updates only what changed")
    p.add_argument("--copy", action="store_true", help="with --export: copy the photos instead of linking them")
    p.add_argument("--link", action="store_true", help="with --export: link the photos (the default)")
    modes.add_argument("--serve", action="store_true",
                       help="serve the review page (persons, faces, history) on --host:--port until stopped")
    p.add_argument("--host", default="127.0.0.1",
                   help="with --serve: address to bind (default 127.0.0.1; any other needs WEB_TOKEN); the page "
                   "answers only to this name, the localhost forms and WEB_ALLOWED_HOSTS")
    p.add_argument("--port", type=int, default=8377, help="with --serve: port (default 8377)")
    p.add_argument("--sweep", action="store_true",
                   help="with --evaluate: also try a grid of HDBSCAN/DBSCAN settings and print the table")
    p.add_argument("--strangers", metavar="DIR", type=Path,
                   help="with --evaluate: also process every image in DIR, each one its own person (people "
                   "seen once), and count those that end in a person with someone else")
    p.add_argument("--folds", metavar="K", type=int, default=0,
                   help="with --evaluate: choose the clustering settings by K-fold cross-validation over "
                   "identities (chosen on K-1 folds, scored on the held-out one) and report each fold")
    p.add_argument("--database-url", metavar="URL",
                   help="SQLAlchemy URL; overrides DATABASE_URL / SQL_CONNECTION_STRING")
    p.add_argument("--output", metavar="PATH", type=Path,
                   help="with --test: where to write the annotated copy; with --evaluate: the JSON "
                   "report (default evaluation.json)")
    return p


def _connect(settings: Settings, check_schema: bool = True) -> Context:
    try:
        engine = make_engine(settings.database_url)
    except (ArgumentError, ImportError) as exc:
        raise SettingsError(f"DATABASE_URL {display(settings.database_url)!r}: {mask(str(exc))}") from None
    if check_schema:
        schema.ensure_current(engine, settings.database_url, auto_create=settings.is_sqlite)
    return Context(settings, engine, session_factory(engine), StopFlag())


@contextmanager
def _worker(settings: Settings) -> Iterator[Context]:
    """What every mode that processes the queue needs: the database (schema checked),
    the SQLite single-worker lock, and a stop flag set by SIGINT / SIGTERM."""
    ctx = _connect(settings)
    try:
        with single_worker(settings.database_url), stop_on_signals() as stop:
            ctx.stop = stop
            yield ctx
    finally:
        ctx.engine.dispose()


# --- modes ----------------------------------------------------------------------------

def run_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from app.services.ingest import ingest_folder

    if not args.ingest.strip():
        raise UsageError("--ingest: the folder name is empty; give the folder to register (\".\" for this one)")
    folder = Path(args.ingest).expanduser()
    if not folder.exists():
        raise UsageError(f"--ingest: folder does not exist: {folder}")
    if not folder.is_dir():
        raise UsageError(f"--ingest: not a folder: {folder}")
    ctx = _connect(settings)
    result = ingest_folder(ctx.sessions, folder, follow_links=args.follow_links)
    w = result.walk
    notes = [
        (result.changed, "changed, re-detection queued"),
        (result.too_long, "skipped (path too long)"),
        (w.file_links, "file links (registered under the link's name)"),
        (w.dir_links, "folder links not followed (use --follow-links)"),
        (w.loops, "folder links skipped (a loop, or a folder walked already)"),
        (w.broken_links, "broken links skipped"),
        (w.unreadable, "folders could not be read"),
    ]
    print(
        f"ingested {folder.resolve()}: {result.added} added, {result.skipped} skipped "
        f"(already registered), {result.ignored} ignored (not images or videos)"
        + "".join(f", {n} {what}" for n, what in notes if n)
    )
    return EXIT_OK


def run_status(settings: Settings, args: argparse.Namespace) -> int:
    from app.db.models import EVENT_FAILED, EVENT_PENDING, EVENT_QUEUED, EVENT_SENT
    from app.repositories import outbox
    from app.repositories.stats import counts, recent_failures

    ctx = _connect(settings)
    with ctx.sessions() as session:
        c = counts(session, utcnow(), settings.max_attempts)
        failures = recent_failures(session, settings.max_attempts)
        events = outbox.counts(session)
        failed_events = outbox.recent_failures(session)
    print(f"database: {display(settings.database_url)}")
    rows = [
        ("media", c.media_total),
        ("  done", c.media_done),
        ("  pending", c.media_pending),
        ("  in progress", c.media_in_progress),
        ("  failed, will retry", c.media_failed_retrying),
        ("  failed, gave up", c.media_failed_final),
        ("  files missing on disk", c.media_missing),  # as the last change checks found them
        ("faces", c.faces_total),
        ("  with embedding", c.faces_embedded),
        ("  without embedding", c.faces_without_embedding),
        ("  below quality gates", c.faces_unusable),
        ("  embedding failed, will retry", c.faces_embed_retrying),
        ("  could not be embedded", c.faces_embed_failed),
        ("  assigned to a person", c.faces_assigned),
        ("  unassigned", c.faces_unassigned),
        ("persons", c.persons_total),
        ("  named", c.persons_named),
        ("events to publish", events.get(EVENT_QUEUED, 0) + events.get(EVENT_PENDING, 0)),
        ("  events published", events.get(EVENT_SENT, 0)),
        ("  events failed, gave up", events.get(EVENT_FAILED, 0)),
    ]
    for label, value in rows:
        print(f"{label:<30}{value:>10}")
    if c.media_failed_final or c.faces_embed_failed:
        print(f"given up: {c.media_failed_final} media items, {c.faces_embed_failed} faces "
              "(main.py --retry-failed hands them back)")
    for kind in ("media", "face"):
        shown = [f for f in failures if f.kind == kind]
        if shown:
            print(f"latest failed {'media items' if kind == 'media' else 'faces (embedding)'}:")
        for f in shown:
            state = "gave up" if f.final else "will retry"
            print(f"  {kind} {f.row_id} ({printable(f.file_path)}), {f.attempts} attempt(s), {state}: "
                  f"{printable(f.reason)}")
    if failed_events:
        print("latest failed events (publishing):")
    for e in failed_events:
        print(f"  event {e.event_id} (media file {e.media_file_id}), {e.attempts} attempt(s): {printable(e.reason)}")
    return EXIT_OK


def _since(text: str) -> datetime:
    """--since: an ISO date or date and time; local time unless it says its offset."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since {text!r}: not an ISO date or time (e.g. 2026-12-01 or 2026-12-01T10:00)") from None
    try:
        when = when.astimezone() if when.tzinfo is None else when
        when.astimezone(timezone.utc)  # a time the database can hold, whatever its offset
    except (ValueError, OverflowError):
        when = None
    if when is None or not 1970 <= when.year <= 9998:
        raise UsageError(f"--since {text!r}: give a date from 1970 to 9998")
    return when


def run_retry_failed(settings: Settings, args: argparse.Namespace) -> int:
    from app.services.work_queue import retry_given_up

    since = _since(args.since) if args.since is not None else None
    ctx = _connect(settings)
    try:
        media, faces = retry_given_up(ctx.sessions, settings, since)
    finally:
        ctx.engine.dispose()
    print(f"handed back {media} media items and {faces} faces given up"
          + (f" since {since.isoformat(timespec='minutes')}" if since else "") + ": the next run tries them again")
    return EXIT_OK


def run_migrate(settings: Settings, args: argparse.Namespace) -> int:
    ctx = _connect(settings, check_schema=False)
    before = schema.current_revision(ctx.engine)
    schema.upgrade(settings.database_url)
    after = schema.current_revision(ctx.engine)
    if before == after:
        print(f"schema already at the latest revision ({after})")
    else:
        print(f"schema upgraded from {before or 'empty'} to {after}")
    return EXIT_OK


def _detector(settings: Settings):
    from app.inference.registry import make_detector

    detector = make_detector(settings.detector, settings.model_threads)
    detector.load()
    return detector


def run_test_image(settings: Settings, args: argparse.Namespace) -> int:
    from app.pipeline.decode import DecodeError
    from app.services.single_image import run_test

    image = args.test.expanduser()
    try:
        result = run_test(image, _detector(settings), settings, args.output)
    except DecodeError as exc:
        raise UsageError(f"--test {image}: {exc}") from None
    w, h = result.size
    print(f"{image}: {w}x{h}, {len(result.faces)} face(s)")
    for i, found in enumerate(result.faces):
        b = found.face.box
        points = " ".join(f"({x:.0f},{y:.0f})" for x, y in found.face.landmarks)
        print(
            f"  face {i}: box x={b.x:.0f} y={b.y:.0f} w={b.w:.0f} h={b.h:.0f}  "
            f"score={found.face.score:.3f}  blur={found.blur:.0f}  "
            f"{'usable' if found.usable else 'below quality gates'}  landmarks {points}"
        )
    print(f"annotated copy: {result.annotated}")
    return EXIT_OK


def _detection_summary(report) -> None:
    rate = report.images / report.seconds if report.seconds else 0.0
    print(
        f"detection: {report.images} images, {report.faces} faces, {report.failed} failed "
        f"in {report.seconds:.1f} s ({rate:.1f} images/s)"
        + (f"; {report.embedded} faces embedded on the way" if report.embedded else "")
    )
    for item_id, reason in report.failures[:20]:
        print(f"  failed item {item_id}: {printable(reason)}")
    if len(report.failures) > 20:
        print(f"  ... and {len(report.failures) - 20} more (see logs/face_detection.log)")


def run_db(settings: Settings, args: argparse.Namespace) -> int:
    from app.services.detect import detect_pending

    with _worker(settings) as ctx:
        report = detect_pending(ctx.sessions, _detector(settings), settings, ctx.stop)
    _detection_summary(report)
    return EXIT_FAILED if report.failed else EXIT_OK


def run_watch(settings: Settings, args: argparse.Namespace) -> int:
    from app.worker.watch import watch

    with _worker(settings) as ctx:
        report = watch(ctx.sessions, _detector(settings), settings, ctx.stop)
    _detection_summary(report)
    return EXIT_FAILED if report.failed else EXIT_OK


def _encoder(settings: Settings):
    from app.inference.registry import make_encoder

    return make_encoder(settings.embedder, settings.facenet, settings.model_threads, settings.embed_batch_size,
                        settings.embed_crop_margin, settings.embed_flip)


def _recognition_summary(report) -> None:
    e, a = report.embed, report.assign
    print(
        f"recognition: {e.faces} faces embedded ({e.failed} failed) in {e.seconds:.1f} s; "
        f"{a.faces} unassigned faces: {a.matched} matched, {a.joined} joined existing persons, "
        f"{a.clustered} in {a.persons_created} new persons"
        + (f", {a.persons_merged} persons merged into others" if a.persons_merged else "")
        + (f" ({a.persons_reused} person ids kept)" if a.persons_reused else "")
        + f", {a.unassigned} left unassigned; assignment in {a.seconds:.1f} s"
    )


def _run_recognition(settings: Settings, rebuild: bool) -> int:
    from app.services.recognize import recognize

    with _worker(settings) as ctx:
        report = recognize(ctx.sessions, _encoder(settings), settings, rebuild=rebuild, stop=ctx.stop)
    _recognition_summary(report)
    return EXIT_FAILED if report.embed.failed else EXIT_OK


def run_recognize(settings: Settings, args: argparse.Namespace) -> int:
    return _run_recognition(settings, rebuild=False)


def run_recluster(settings: Settings, args: argparse.Namespace) -> int:
    return _run_recognition(settings, rebuild=True)


def run_all(settings: Settings, args: argparse.Namespace) -> int:
    from app.services.run import detect_and_recognize

    with _worker(settings) as ctx:
        report = detect_and_recognize(ctx.sessions, _detector(settings), _encoder(settings), settings, ctx.stop)
    _detection_summary(report.detected)
    if report.recognized is not None:
        _recognition_summary(report.recognized)
    return EXIT_FAILED if report.failed else EXIT_OK


def run_automate(settings: Settings, args: argparse.Namespace) -> int:
    from app.services.run import automated_run
    from app.worker.automate import automate

    detector, encoder = _detector(settings), _encoder(settings)
    encoder.load()
    with _worker(settings) as ctx:
        automate(lambda flag: automated_run(ctx.sessions, detector, encoder, settings, flag),
                 settings.automate_interval_minutes, ctx.stop)
    return EXIT_OK


def run_publish(settings: Settings, args: argparse.Namespace) -> int:
    from app.services.publish import publish

    if not settings.publish_url:
        raise UsageError("--publish needs PUBLISH_URL (the receiver's http:// or https:// URL)")
    with _worker(settings) as ctx:  # on SQLite one worker at a time, as for every other stage
        report = publish(ctx.sessions, settings, ctx.stop)
    print(f"publishing: {report.sent} events sent, {report.failed} failed"
          + (f", {report.retried} failed tries retried" if report.retried else "")
          + f" in {report.seconds:.1f} s")
    return EXIT_FAILED if report.failed else EXIT_OK


def run_evaluate(settings: Settings, args: argparse.Namespace) -> int:
    from app.services.evaluate import evaluate, write_json
    from app.services.evaluate_report import print_report

    folder = args.evaluate.expanduser()
    if not folder.is_dir():
        raise UsageError(f"--evaluate: not a folder: {folder}")
    strangers = args.strangers.expanduser() if args.strangers else None
    if strangers is not None and not strangers.is_dir():
        raise UsageError(f"--strangers: not a folder: {strangers}")
    if args.folds and args.folds < 2:
        raise UsageError(f"--folds: needs at least 2 folds (got {args.folds})")
    try:
        result = evaluate(folder.resolve(), settings, _detector(settings), _encoder(settings),
                          database_url=args.database_url, do_sweep=args.sweep,
                          strangers=strangers.resolve() if strangers else None, folds=args.folds)
    except ValueError as exc:
        raise UsageError(f"--evaluate: {exc}") from None
    print_report(result)
    out = args.output or Path("evaluation.json")
    write_json(result, out)
    print(f"report written to {out}")
    return EXIT_OK


def run_serve(settings: Settings, args: argparse.Namespace) -> int:
    from app.web.security import is_loopback

    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: not a port number")
    if not is_loopback(args.host) and not settings.web_token:
        raise UsageError(f"--serve --host {args.host}: binding an address other than the loopback one "
                         "needs WEB_TOKEN (the page then asks for it once)")
    import uvicorn

    from app.web.server import create_app, listen

    ctx = _connect(settings)
    try:
        try:  # bound here, not by uvicorn, which logs a busy port and ends the process itself (exit 1 or 3)
            sock = listen(args.host, args.port)
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise UsageError(f"--serve: cannot listen on {args.host}:{args.port}: {reason}") from None
        with sock:
            app = create_app(settings, ctx.sessions, args.host)
            log.info("review page on http://%s:%d/ (database %s)%s", args.host, args.port,
                     display(settings.database_url), "; login with WEB_TOKEN" if settings.web_token else "")
            config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False)
            server = uvicorn.Server(config)
            try:
                server.run(sockets=[sock])
            except SystemExit as exc:  # uvicorn's own exit when its startup fails
                raise UsageError(f"--serve: the review page did not start (uvicorn exit {exc.code})") from None
        return EXIT_OK if server.started else EXIT_USAGE
    finally:
        ctx.engine.dispose()


def run_export(settings: Settings, args: argparse.Namespace) -> int:
    from app.services.export import export

    if args.copy and args.link:
        raise UsageError("--export: give --copy or --link, not both")
    ctx = _connect(settings)
    try:
        r = export(ctx.sessions, settings, args.export.expanduser(), args.persons or None, copy=args.copy)
    finally:
        ctx.engine.dispose()
    s = r.sync
    print(f"exported {r.persons} persons ({r.faces} faces) and {r.noise} faces without a person from "
          f"{r.photos} photos to {args.export}: {s.kept} files unchanged, {len(s.written)} written, "
          f"{len(s.moved)} moved, {len(s.deleted)} deleted, {len(s.failed)} failed in {r.seconds:.1f} s")
    for path, reason in s.failed[:10]:
        print(f"  not written: {path}: {reason}")
    return EXIT_FAILED if s.failed else EXIT_OK


MODES: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "ingest": run_ingest,
    "status": run_status,
    "migrate": run_migrate,
    "test": run_test_image,
    "db": run_db,
    "watch": run_watch,
    "recognize": run_recognize,
    "recluster": run_recluster,
    "all": run_all,
    "automate": run_automate,
    "evaluate": run_evaluate,
    "serve": run_serve,
    "export": run_export,
    "publish": run_publish,
    "retry_failed": run_retry_failed,
}
for _name in cli_persons.MODE_NAMES:
    MODES[_name] = (lambda name: lambda settings, args: cli_persons.run(_connect, settings, args, name))(_name)
READ_ONLY = ("status", "test", "persons", "person", "history")


def _mode(args: argparse.Namespace) -> str:
    """The one mode given. --persons is a mode alone and a filter with --export."""
    given = [name for name in MODES if name != "persons" and getattr(args, name) not in (None, False)]
    if given:  # argparse allows at most one of them
        if args.persons is not None and given[0] != "export":
            raise UsageError(f"--persons cannot be combined with --{given[0].replace('_', '-')}")
        if args.since is not None and given[0] != "retry_failed":
            raise UsageError("--since goes with --retry-failed")
        return given[0]
    if args.persons is not None:
        return "persons"
    raise UsageError("give one mode: --all, --db, --recognize, --persons, --export, --serve, ... (see --help)")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run one mode, return its exit code. What it prints goes through
    EscapingStream: no name, path or reason from outside can drive the terminal."""
    out, err = sys.stdout, sys.stderr
    # a stream closed by the caller (`main.py --status >&-`) is None: write to nothing
    sys.stdout, sys.stderr = (EscapingStream(s if s is not None else open(os.devnull, "w")) for s in (out, err))
    code = EXIT_OK
    try:
        code = _main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # `main.py --persons | head -2`: the reader has gone, not an error
        _silence(out)
        return code
    except OSError as exc:  # the output cannot be written (`> /dev/full`): say so where we can
        try:
            print(f"error: cannot write the output: {exc.strerror or exc}", file=err)
        except (OSError, ValueError, AttributeError):
            pass
        return EXIT_USAGE
    finally:
        sys.stdout, sys.stderr = out, err


def _silence(stream) -> None:
    """Point a closed pipe's file descriptor at /dev/null, so that the interpreter's last
    flush at exit does not fail again with a traceback."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
    except (OSError, ValueError, AttributeError):  # no file descriptor (a test's capture)
        pass


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on bad usage
    try:
        mode = _mode(args)
    except UsageError as exc:
        parser.error(str(exc))  # exits 2, like argparse's own errors
    if args.database_url is not None and not args.database_url.strip():
        return _error("error: --database-url is empty: give a database URL, or leave the flag out to use "
                      "DATABASE_URL or the embedded SQLite file", EXIT_USAGE)
    try:
        settings = load_settings(database_url=args.database_url)
        _check_sqlite_file(settings, mode)
    except SettingsError as exc:
        return _error(f"config error: {exc}", exc.exit_code)
    setup_logging(settings, to_files=mode not in READ_ONLY)
    try:
        return MODES[mode](settings, args)
    except AppError as exc:
        return _error(f"error: {mask(str(exc))}", exc.exit_code)
    except DBAPIError as exc:  # the database refused or dropped us outside the retried steps
        return _error(f"error: cannot use the database {display(settings.database_url)}: {mask(first_line(exc))}",
                      EXIT_USAGE)
    except KeyboardInterrupt:
        return _error("interrupted", 130)


def _error(line: str, code: int) -> int:
    """Print an error line and return its exit code, which a closed stderr (`2>&1 | true`)
    does not change."""
    try:
        print(line, file=sys.stderr)
    except BrokenPipeError:
        _silence(sys.__stderr__)
    return code


def _check_sqlite_file(settings: Settings, mode: str) -> None:
    """Only the default SQLite file (DATA_DIR/faces.db) is made with its folders: a SQLite
    URL given by hand must name an existing folder (a typo never creates a tree of
    folders), and a mode that only reads never creates a database it would then report
    empty."""
    from sqlalchemy.engine import make_url

    if mode == "test" or not settings.is_sqlite or settings.database_url == default_sqlite_url(settings.data_dir):
        return
    name = make_url(settings.database_url).database
    if not name or name == ":memory:":
        return
    path = Path(name)
    if not path.parent.is_dir():
        raise SettingsError(f"DATABASE_URL {display(settings.database_url)!r}: the folder {path.parent} "
                            "does not exist (only the default SQLite file's folder is made)")
    if mode in READ_ONLY and mode != "test" and not path.exists():
        raise SettingsError(f"DATABASE_URL {display(settings.database_url)!r}: no database file at {path} "
                            "(--" + mode + " reads an existing database; run --migrate or a worker mode to make one)")
