"""Two `--automate` workers and a user operation every second for two minutes on one
PostgreSQL database: no deadlock, no lost operation, and the assignment log replays to
every face's final person."""
import random
import shutil
import time

from sqlalchemy import func, select

from app.db.engine import make_engine, session_factory
from app.db.models import WHO_USER, Faces, Operations, Persons
from app.errors import RequestError
from app.repositories import history as hrepo
from app.services import history, persons
from tests.integration.helpers import assert_stopped_cleanly, start_automate_workers, stop_workers

SECONDS = 120


def _pick(sessions, rng: random.Random):
    with sessions() as s:
        people = s.scalars(select(Persons.Id).order_by(Persons.Id)).all()
        faces = s.scalars(select(Faces.Id).where(Faces.PersonId.is_not(None)).order_by(Faces.Id)).all()
    return people, faces


def _one_operation(sessions, rng: random.Random, step: int):
    people, faces = _pick(sessions, rng)
    if len(people) < 3 or not faces:
        return None
    kind = step % 7
    if kind == 0:
        return persons.rename(sessions, rng.choice(people), f"Person {step}")
    if kind == 1:
        return persons.set_hidden(sessions, rng.choice(people), rng.random() < 0.5)
    if kind == 2:
        return persons.move_faces(sessions, rng.sample(faces, 2), rng.choice(people + [None]))
    if kind == 3:
        return persons.reject_faces(sessions, [rng.choice(faces)])
    if kind == 4:
        return persons.merge(sessions, rng.sample(people, 2), force=True)
    return history.undo(sessions)


def test_user_operations_beside_two_automate_workers(pg_databases, pg_template, cli_factory, faces_dev):
    folders = sorted(p for p in faces_dev.iterdir() if p.is_dir() and p.name != "group")
    url = pg_databases.url(pg_databases.create(pg_template))
    cli = cli_factory(url)
    env = {"AUTOMATE_INTERVAL_MINUTES": "0.02", "DETECT_BATCH_SIZE": "8", "MODEL_THREADS": "1"}
    staging = cli.cwd / "photos"
    batches = [folders[i:i + 8] for i in range(0, 48, 8)]

    def stage(batch):
        for folder in batch:
            shutil.copytree(folder, staging / folder.name)

    staging.mkdir()
    stage(batches[0])
    assert cli("--ingest", str(staging)).returncode == 0
    assert cli("--all", **env).returncode == 0

    engine = make_engine(url)
    sessions = session_factory(engine)
    workers = start_automate_workers(cli, env)
    rng = random.Random(7)
    done, refused, slowest = [], [], 0.0
    try:
        started = time.time()
        step = 0
        while time.time() - started < SECONDS:
            if step % 20 == 0 and step // 20 + 1 < len(batches):  # new photos for the workers
                stage(batches[step // 20 + 1])
                assert cli("--ingest", str(staging)).returncode == 0
            t0 = time.time()
            try:
                result = _one_operation(sessions, rng, step)
                if result is not None:
                    done.append(result.operation_id)
            except RequestError as exc:  # e.g. an undo refused because a worker run moved the face since
                refused.append(str(exc))
            slowest = max(slowest, time.time() - t0)
            step += 1
            time.sleep(max(0.0, 1.0 - (time.time() - t0)))
    finally:
        stopped = stop_workers(workers)
    assert_stopped_cleanly(stopped)
    assert len(done) >= SECONDS // 4, (len(done), refused[:5])
    assert slowest < 60, slowest

    with sessions() as s:
        logged = s.scalars(select(Operations.Id).where(Operations.Who == WHO_USER).order_by(Operations.Id)).all()
        runs = s.scalar(select(func.count()).select_from(Operations).where(Operations.Who != WHO_USER))
        replayed = hrepo.replay(s)
        now = dict(s.execute(select(Faces.Id, Faces.PersonId)).all())
    assert logged == sorted(done)  # every operation recorded once, none lost, none extra
    assert runs >= 2  # the workers' runs are logged too
    assert all(replayed[f] == p for f, p in now.items() if f in replayed)
    assert all(p is None for f, p in now.items() if f not in replayed)
    engine.dispose()
