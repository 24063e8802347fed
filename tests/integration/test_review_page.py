"""The review page (`--serve`) in a real headless Chromium, against PostgreSQL filled by the
real pipeline from dev photos: every change made in the browser is checked in the
database afterwards; names are text, files are served by id only, and a POST without
the CSRF token is refused."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from app.db.models import ASSIGNED_USER, FaceRejections, Faces, Persons
from app.services import persons as person_service
from tests.integration.persons_world import faces_of_identity, main_person
from tests.integration.review_world import browser_or_skip, fill, serve

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def filled(pg_databases, faces_dev, tmp_path_factory, models):
    """A database filled once by the pipeline (a template for each test) and its thumbnails."""
    name = pg_databases.create()
    thumbs = fill(pg_databases.url(name), faces_dev, tmp_path_factory.mktemp("review"), models)
    return name, thumbs


@pytest.fixture(scope="module")
def browser():
    playwright, browser = browser_or_skip()
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def site(pg_databases, filled):
    name, thumbs = filled
    served = serve(pg_databases.url(pg_databases.create(name)), thumbs)
    yield served
    served.stop()


@pytest.fixture
def page(browser, site):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.dialogs = []
    p.on("dialog", lambda d: (p.dialogs.append(d.message), d.accept()))
    yield p
    context.close()


def _person(site, person_id):
    with site.sessions() as s:
        return s.get(Persons, person_id)


def _face(site, face_id):
    with site.sessions() as s:
        return s.get(Faces, face_id)


def test_grid_lists_every_person_with_cover_and_count(site, page):
    page.goto(site.url + "/")
    listed = person_service.list_persons(site.sessions)
    assert len(listed) >= 5
    tiles = page.locator(".tile.person")
    assert tiles.count() == len(listed)
    first = tiles.first
    assert f"{listed[0].faces} faces" in first.inner_text()
    # the cover image loaded (served by face id from THUMBNAIL_SAVE_PATH)
    first.locator("img").scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=first.locator("img").element_handle())


def test_rename_in_place_with_the_keyboard_and_undo(site, page):
    pid = main_person(site.sessions, "Al_Gore")
    page.goto(f"{site.url}/persons/{pid}")
    page.keyboard.press("r")
    page.keyboard.type("Al Gore")
    page.keyboard.press("Enter")
    page.wait_for_selector("#flash.done")
    assert _person(site, pid).Name == "Al Gore"
    assert page.locator("#person-name").inner_text().startswith("Al Gore")
    page.locator("body").click(position={"x": 5, "y": 300})  # focus off the name field
    page.keyboard.press("u")
    page.wait_for_selector("#flash.done")
    assert _person(site, pid).Name is None


def test_a_script_name_shows_as_text(site, page):
    pid = main_person(site.sessions, "Andre_Agassi")
    name = "<script>alert(1)</script>"
    page.goto(f"{site.url}/persons/{pid}")
    page.fill("#rename-input", name)
    page.click("#rename-form button")
    page.wait_for_selector("#flash.done")
    assert _person(site, pid).Name == name
    page.goto(f"{site.url}/")
    page.goto(f"{site.url}/persons/{pid}")
    assert page.locator("#person-name").inner_text().startswith(name)
    page.goto(f"{site.url}/?show=named")
    assert name in page.locator(".tile.person").first.inner_text()
    assert page.dialogs == []
    assert "<script>alert(1)</script>" not in page.content()  # escaped in the HTML


def test_merge_persons_selected_on_the_grid(site, page):
    a, b = main_person(site.sessions, "Abdullah_Gul"), main_person(site.sessions, "Ari_Fleischer")
    faces = {f for f, _ in faces_of_identity(site.sessions, "Abdullah_Gul") + faces_of_identity(site.sessions,
                                                                                            "Ari_Fleischer")}
    page.goto(f"{site.url}/")
    ids = [int(x) for x in page.eval_on_selector_all(".tile.person", "ts => ts.map(t => t.dataset.id)")]
    page.focus(".tile.person")
    page.keyboard.press("ArrowRight")  # arrows move between tiles
    assert page.evaluate("document.activeElement.dataset.id") == str(ids[1])
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("document.activeElement.dataset.id") == str(ids[0])
    for pid in (a, b):
        page.focus(f".tile.person[data-id='{pid}']")
        page.keyboard.press(" ")
    assert page.locator(".tile.person.selected").count() == 2
    page.keyboard.press("m")
    page.wait_for_selector("#flash.done")
    with site.sessions() as s:
        left = set(s.scalars(select(Persons.Id).where(Persons.Id.in_((a, b)))).all())
        assert len(left) == 1
        kept = left.pop()
        assert set(s.scalars(select(Faces.PersonId).where(Faces.Id.in_(faces))).all()) == {kept}
    assert page.url.endswith(f"/persons/{kept}")


def test_move_faces_to_a_person_typed_ahead_by_name(site, page):
    target = main_person(site.sessions, "Ana_Palacio")
    person_service.rename(site.sessions, target, "Ana Palacio")
    source = main_person(site.sessions, "Al_Gore")
    moved = [f for f, p in faces_of_identity(site.sessions, "Al_Gore") if p == source][:2]
    page.goto(f"{site.url}/persons/{source}")
    for f in moved:
        page.check(f".tile.face[data-id='{f}'] input[type=checkbox]")
    assert page.inner_text("#selected-count") == "2 selected"
    page.fill("#move-to", "Palacio")
    page.locator("#person-names option").first.wait_for(state="attached")
    suggestion = page.eval_on_selector("#person-names option", "o => o.value")
    assert suggestion == f"{target} · Ana Palacio"
    page.fill("#move-to", suggestion)
    page.click("#move-button")
    page.wait_for_selector("#flash.done")
    for f in moved:
        face = _face(site, f)
        assert face.PersonId == target and face.AssignedBy == ASSIGNED_USER
    assert page.locator(".tile.face").count() == len(faces_of_identity(site.sessions, "Al_Gore")) - 2


def test_not_this_person_with_the_keyboard(site, page):
    pid = main_person(site.sessions, "Ari_Fleischer")
    face = [f for f, p in faces_of_identity(site.sessions, "Ari_Fleischer") if p == pid][0]
    page.goto(f"{site.url}/persons/{pid}")
    page.focus(f".tile.face[data-id='{face}']")
    page.keyboard.press(" ")
    page.keyboard.press("n")
    page.wait_for_selector("#flash.done")
    assert _face(site, face).PersonId is None
    with site.sessions() as s:
        assert s.scalar(select(FaceRejections.PersonId).where(FaceRejections.FaceId == face)) == pid


def test_make_a_face_the_cover_and_see_the_best_photos(site, page):
    pid = main_person(site.sessions, "Ari_Fleischer")
    before = _person(site, pid)
    assert before.CoverFaceId is not None and not before.CoverByUser  # the worker's choice: the best face
    face = [f for f, p in faces_of_identity(site.sessions, "Ari_Fleischer") if p == pid and f != before.CoverFaceId][0]
    page.goto(f"{site.url}/persons/{pid}")
    assert page.locator(f".tile.face[data-id='{before.CoverFaceId}'] .cover-mark").count() == 1
    assert page.locator(".tiles.best a").count() >= 2
    page.click(f".tile.face[data-id='{face}'] label.pick")
    page.click("#cover-button")
    page.wait_for_selector("#flash.done")
    after = _person(site, pid)
    assert (after.CoverFaceId, after.CoverByUser) == (face, True)
    page.goto(f"{site.url}/persons/{pid}")
    assert page.locator(f".tile.face[data-id='{face}'] .cover-mark").count() == 1


def test_hide_then_show_hidden(site, page):
    pid = main_person(site.sessions, "Abdullah_Gul")
    page.goto(f"{site.url}/persons/{pid}")
    page.click("#hide-button")
    page.wait_for_selector("#flash.done")
    assert _person(site, pid).IsHidden is True
    page.goto(f"{site.url}/")
    assert page.locator(f".tile.person[data-id='{pid}']").count() == 0
    page.goto(f"{site.url}/?show=hidden")
    assert page.locator(f".tile.person[data-id='{pid}']").count() == 1


def test_delete_asks_first_and_undo_from_history(site, page):
    pid = main_person(site.sessions, "Ana_Palacio")
    page.goto(f"{site.url}/persons/{pid}")
    page.click("#delete-form button")
    page.wait_for_selector("#flash.done")
    assert page.dialogs and "Delete this person" in page.dialogs[0]
    assert _person(site, pid) is None
    page.goto(f"{site.url}/history")
    row = page.locator("tr[data-op]").first
    assert "deleted" in row.inner_text().lower() or "delete" in row.inner_text().lower()
    row.locator("button").click()
    page.wait_for_selector("#flash.done")
    assert _person(site, pid) is not None


def test_split_proposal_accepted(site, page):
    a, b = main_person(site.sessions, "Al_Gore"), main_person(site.sessions, "Andre_Agassi")
    kept = person_service.merge(site.sessions, [a, b], force=True).person_id
    page.goto(f"{site.url}/persons/{kept}/split")
    assert page.locator(".split-group").count() >= 2
    page.click("#split-apply")
    page.wait_for_selector("#flash.done")
    gore = {p for _, p in faces_of_identity(site.sessions, "Al_Gore")}
    agassi = {p for _, p in faces_of_identity(site.sessions, "Andre_Agassi")}
    assert gore.isdisjoint(agassi)


def test_unassigned_faces_with_suggestions(site, page):
    page.goto(f"{site.url}/unassigned")
    tiles = page.locator(".tile.face")
    assert tiles.count() >= 1
    button = page.locator(".tile.face .suggest").first
    face = int(button.get_attribute("data-face"))
    to = int(button.get_attribute("value"))
    button.click()
    page.wait_for_selector("#flash.done")
    face_row = _face(site, face)
    assert face_row.PersonId == to and face_row.AssignedBy == ASSIGNED_USER


def test_status_and_changes_from_a_running_automate_worker_show_on_reload(site, page, faces_dev, tmp_path,
                                                                         cli_factory):
    """A real `--automate` worker on the same database: the page keeps working beside it
    (a rename while it runs) and shows the person it made on reload."""
    import time

    from app.services.ingest import register_files
    from tests.integration.helpers import assert_stopped_cleanly, copy_images, start_automate_workers, stop_workers

    page.goto(f"{site.url}/status")
    before = person_service.count_persons(site.sessions)
    assert page.locator("table.counts tr", has_text="persons").first.inner_text().split() == ["persons", str(before)]
    page.goto(f"{site.url}/")
    assert page.locator(".tile.person").count() == before
    workers = start_automate_workers(cli_factory(site.settings.database_url), {
        "THUMBNAIL_SAVE_PATH": str(site.settings.thumbnail_path), "AUTOMATE_INTERVAL_MINUTES": "0.05"}, count=1)
    try:
        register_files(site.sessions, copy_images(sorted((faces_dev / "Amelia_Vega").iterdir())[:4], tmp_path))
        pid = main_person(site.sessions, "Al_Gore")
        page.goto(f"{site.url}/persons/{pid}")
        page.fill("#rename-input", "Al Gore")
        page.click("#rename-form button")
        page.wait_for_selector("#flash.done")
        deadline = time.monotonic() + 240
        while person_service.count_persons(site.sessions) == before and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        assert_stopped_cleanly(stop_workers(workers))
    assert _person(site, pid).Name == "Al Gore"
    page.goto(f"{site.url}/")
    page.reload()
    assert page.locator(".tile.person").count() == before + 1
    new = page.locator(".tile.person").filter(has_text="unnamed").last
    assert "4 faces" in new.inner_text()


def test_path_traversal_and_unknown_ids_are_not_found(site, page, tmp_path):
    page.goto(site.url + "/")
    for url in ("/thumb/..%2F..%2Fetc%2Fpasswd", "/photo/..%2F..%2Fetc%2Fpasswd", "/static/..%2Fserver.py",
                "/static/../../config.py", "/thumb/999999", "/photo/999999", "/persons/999999"):
        assert page.request.get(site.url + url).status == 404, url
    # a thumbnail path outside THUMBNAIL_SAVE_PATH (written by someone else) is never opened
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"not for the page")
    with site.sessions() as s:
        face_id = s.scalar(select(Faces.Id).where(Faces.ThumbnailPath.is_not(None)).limit(1))
    assert page.request.get(f"{site.url}/thumb/{face_id}").status == 200
    for outside in (str(secret), str(site.settings.thumbnail_path / ".." / ".." / secret.name)):
        with site.sessions.begin() as s:
            s.get(Faces, face_id).ThumbnailPath = outside
        assert page.request.get(f"{site.url}/thumb/{face_id}").status == 404, outside


def test_post_without_csrf_token_is_refused(site, page):
    pid = main_person(site.sessions, "Al_Gore")
    page.goto(site.url + "/")
    refused = page.request.post(f"{site.url}/persons/{pid}/rename", form={"name": "Mallory"})
    assert refused.status == 403
    wrong = page.request.post(f"{site.url}/persons/{pid}/rename", form={"name": "Mallory", "csrf": "0" * 64})
    assert wrong.status == 403
    assert _person(site, pid).Name is None
    token = page.get_attribute("meta[name=csrf]", "content")
    ok = page.request.post(f"{site.url}/persons/{pid}/rename", form={"name": "Al Gore", "csrf": token})
    assert ok.ok and _person(site, pid).Name == "Al Gore"


def test_login_token_when_required(browser, pg_databases, filled):
    name, thumbs = filled
    served = serve(pg_databases.url(pg_databases.create(name)), thumbs, token="s3cret-token-0123456789")
    context = browser.new_context()
    try:
        p = context.new_page()
        p.goto(served.url + "/")
        assert p.url.startswith(served.url + "/login")
        p.fill("input[name=token]", "wrong")
        p.click("form[action='/login'] button")
        assert "Wrong token" in p.content()
        assert p.request.get(served.url + "/status", max_redirects=0).status == 303
        p.fill("input[name=token]", "s3cret-token-0123456789")
        p.click("form[action='/login'] button")
        p.wait_for_selector(".tile.person")
        assert p.request.get(served.url + "/status").ok
        p.click("#logout-form button")  # the layout's Log out ends the login
        p.wait_for_url(served.url + "/login")
        assert p.request.get(served.url + "/status", max_redirects=0).status == 303
    finally:
        context.close()
        served.stop()


def test_screenshots_of_the_grid_and_a_person_page(site, page, tmp_path):
    """Written to docs/ when FACEGROUP_SCREENSHOTS=1 (the README shows them)."""
    out = DOCS if os.environ.get("FACEGROUP_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(exist_ok=True)
    person_service.rename(site.sessions, main_person(site.sessions, "Al_Gore"), "Al Gore")
    page.goto(site.url + "/")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / "review-grid.png"), full_page=True)
    page.goto(f"{site.url}/persons/{main_person(site.sessions, 'Al_Gore')}")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out / "review-person.png"), full_page=True)
    for name in ("review-grid.png", "review-person.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    if out == tmp_path:
        shutil.rmtree(tmp_path, ignore_errors=True)
