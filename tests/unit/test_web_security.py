"""The review page's guards (app/web/security.py)."""
from app.web.security import Guard, is_loopback, local_path


def test_loopback_addresses():
    assert all(is_loopback(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "example.org", "::"))


def test_csrf_token_belongs_to_its_session_and_server():
    guard, other = Guard(None), Guard(None)
    token = guard.csrf_for("session-a")
    assert guard.csrf_ok("session-a", token)
    assert not guard.csrf_ok("session-b", token)
    assert not guard.csrf_ok("session-a", other.csrf_for("session-a"))  # another server's key
    assert not guard.csrf_ok(None, token) and not guard.csrf_ok("session-a", None) and not guard.csrf_ok("session-a", "")


def test_login_token_and_cookie():
    open_ = Guard(None)
    assert not open_.login_required and open_.authenticated(None)
    guard = Guard("tok")
    assert guard.login_required and not guard.authenticated(None) and not guard.authenticated("tok")
    assert guard.authenticated(guard.auth_value()) and Guard("tok").authenticated(guard.auth_value())
    assert guard.token_ok("tok") and not guard.token_ok("tok2") and not guard.token_ok(None)


def test_redirects_stay_on_this_server():
    assert local_path("/persons/3?x=1") == "/persons/3?x=1"
    for bad in ("//evil.example/", "https://evil.example/", "javascript:alert(1)", "/\\evil", "", None):
        assert local_path(bad) == "/"
