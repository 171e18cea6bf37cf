"""The Python side of the itsdangerous and Flask differential tests (itsdangerous_test.go).

Reads one JSON request per line on stdin, {"op": ..., "cases": [...]}, and answers each with
one JSON line: a list of results, one per case. Secrets come as standard base64, oldest first
(itsdangerous's order: the last one signs). Byte strings in answers are standard base64, so
that nothing (lone surrogates, binary) is lost in JSON on the way to Go.

Ops:
  sign        itsdangerous URLSafe(Timed)Serializer.dumps(value)  -> {"token"}
  load        ... .loads(token, max_age=...)                       -> {"ok", "value"|"error"|"kind"}
  flask_sign  a named session through Flask's signing serializer   -> {"token", "expected"}
  flask_load  Flask's signing serializer .loads(token, max_age)    -> {"ok", "expected"|"error"|"kind"}
  flask_app   a real Flask app's Set-Cookie for a named session    -> {"token", "expected"}
"""

import base64
import datetime
import json
import sys
import uuid

import itsdangerous
from itsdangerous.timed import TimestampSigner

UTC = datetime.timezone.utc


def b64(b):
    return base64.b64encode(b).decode("ascii")


def secrets_of(case):
    keys = [base64.b64decode(s) for s in case["secrets"]]
    return keys if len(keys) > 1 else keys[0]


def at(now):
    """Fixes itsdangerous's clock: TimestampSigner.get_timestamp is int(time.time())."""
    TimestampSigner.get_timestamp = lambda self: now


def serializer(case):
    cls = itsdangerous.URLSafeTimedSerializer if case["timed"] else itsdangerous.URLSafeSerializer
    kwargs = {"ensure_ascii": True} if case.get("ascii") else None
    return cls(
        secrets_of(case),
        salt=case["salt"],
        serializer_kwargs=kwargs,
        signer_kwargs={"key_derivation": case["derivation"]},
    )


def text_result(v):
    if not isinstance(v, str):
        return {"ok": True, "kind": type(v).__name__}
    try:
        return {"ok": True, "value": b64(v.encode("utf-8"))}
    except UnicodeEncodeError:
        return {"ok": True, "kind": "lone surrogate"}


def op_sign(case):
    at(case.get("now", 0))
    return {"token": serializer(case).dumps(case["value"])}


def op_load(case):
    at(case.get("now", 0))
    s = serializer(case)
    try:
        if case["timed"]:
            v = s.loads(case["token"], max_age=case.get("max_age"))
        else:
            v = s.loads(case["token"])
    except Exception as e:  # BadSignature and its kinds, or anything else that refuses
        return {"ok": False, "error": type(e).__name__}
    return text_result(v)


# Flask.

def flask_app(secrets):
    import flask

    app = flask.Flask("oracle")
    app.secret_key = secrets
    return app


def sessions():
    from markupsafe import Markup

    u = uuid.UUID("12345678-9abc-def0-1234-56789abcdef0")
    when = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    return {
        "scalars": {
            "user_id": 42, "name": "Zoë", "admin": True, "off": False, "none": None,
            "pi": 3.14159, "big": 2**70, "neg": -7, "zero": 0, "empty": "",
            "huge": 1e300, "tiny": 1e-7, "third": 1 / 3, "str_null": "null",
        },
        "nested": {
            "prefs": {"theme": "dark", "z": [1, 2, {"a": None}], "é": "ü", "b": {"c": {}}},
            "list": [1, "two", 3.0, [True], []],
        },
        "tagged": {
            "tuple": (1, "a", (2, 3)),
            "bytes": b"\x00\xffbin\n",
            "empty_bytes": b"",
            "uuid": u,
            "when": when,
            "naive": datetime.datetime(2020, 5, 6, 7, 8, 9, 999),
            "offset": datetime.datetime(2020, 5, 6, 7, 8, 9, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
            "old": datetime.datetime(1901, 12, 13, 20, 45, 52),
            "markup": Markup("<b>hi</b> & bye"),
            "deep": {"t": (b"x", u), "d": [when], "m": [Markup("<i>")]},
        },
        # One-key dicts whose key is a tag are wrapped in " di".
        "tag_keys": {"x": {" t": "not a tuple"}, "y": {" di": {" u": 1}}, "z": [{" b": "no"}]},
        "only_tag_key": {" t": "the whole session is a one-key dict"},
        "specials": {
            "quote": '"', "backslash": "\\", "ctrl": "\x00\x01\x1f\x7f\n\t\r\b\f",
            "emoji": "😀 \U0010ffff", "seps": "\u2028\u2029", "json": '{"a":1}',
            "html": "<script>&amp;</script>", "slash": "a/b", "dot.key": ".", "": "empty key",
            "ключ": "значение",
        },
        "compressible": {"blob": "abc" * 500, "more": ["same"] * 50},
        "flashes": {"_flashes": [("message", "Welcome back"), ("error", "Bad input")], "_fresh": True},
        "empty": {},
    }


def render(v):
    """A top-level value as flaskDecodeSession renders it (see itsdangerous.go)."""
    if isinstance(v, bytes):
        return v
    p = plain(v)
    if isinstance(p, str):
        return p.encode("utf-8")
    return json.dumps(p, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


def plain(v):
    if isinstance(v, bytes):
        return b64(v)
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, datetime.datetime):
        v = v.astimezone(UTC)
        return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (v.year, v.month, v.day, v.hour, v.minute, v.second)
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    return v  # str (Markup too), int, float, bool, None


def expected(session):
    return {k: b64(render(v)) for k, v in session.items()}


def op_flask_sign(case):
    app = flask_app(secrets_of(case))
    at(case["now"])
    session = sessions()[case["session"]]
    s = app.session_interface.get_signing_serializer(app)
    if case.get("app_context"):
        # Inside an app context Flask's JSON is app.json: sort_keys, ensure_ascii.
        with app.app_context():
            token = s.dumps(session)
    else:
        token = s.dumps(session)
    # What Flask reads back (tuples stay tuples, naive datetimes come back in UTC...).
    return {"token": token, "expected": expected(s.loads(token))}


def op_flask_load(case):
    app = flask_app(secrets_of(case))
    at(case["now"])
    s = app.session_interface.get_signing_serializer(app)
    try:
        data = s.loads(case["token"], max_age=case["max_age"])
    except Exception as e:
        return {"ok": False, "error": type(e).__name__}
    if not isinstance(data, dict):
        return {"ok": True, "kind": type(data).__name__}
    try:
        return {"ok": True, "expected": expected(data)}
    except UnicodeEncodeError:
        return {"ok": True, "kind": "lone surrogate"}


def op_flask_app(case):
    """A real app: a view stores the named session; the test client returns its cookie."""
    import flask

    app = flask_app(secrets_of(case))
    at(case["now"])
    name = case["session"]

    @app.route("/set")
    def set_session():
        flask.session.clear()
        flask.session.update(sessions()[name])
        flask.session.permanent = True
        return "ok"

    @app.route("/get")
    def get_session():
        return {"keys": sorted(flask.session.keys())}

    client = app.test_client()
    r = client.get("/set")
    cookie = client.get_cookie("session") if hasattr(client, "get_cookie") else None
    if cookie is None:
        header = r.headers["Set-Cookie"]
        token = header.split(";", 1)[0].split("=", 1)[1]
    else:
        token = cookie.value
    # Round trip through the app itself: the cookie is what it reads.
    keys = client.get("/get").get_json()["keys"]
    s = app.session_interface.get_signing_serializer(app)
    data = s.loads(token)
    assert sorted(data.keys()) == keys, (sorted(data.keys()), keys)
    return {"token": token, "expected": expected(data)}


OPS = {
    "sign": op_sign,
    "load": op_load,
    "flask_sign": op_flask_sign,
    "flask_load": op_flask_load,
    "flask_app": op_flask_app,
}


def main():
    for line in sys.stdin:
        req = json.loads(line)
        out = [OPS[req["op"]](case) for case in req["cases"]]
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
