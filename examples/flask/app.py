"""A small legacy Flask app that knows nothing of signatures.

On / it reads the cookie my_cookie: without it, it sets my_cookie=my_value and says so;
with it, it answers with the value. It logs the X-Visitor-Id header it receives (one line
per request on stdout) and shows it in the page. /visitor is an HTML page that shows the
X-Visitor-Id header and, through JavaScript, document.cookie.

It also has a login, as most legacy apps do, kept in Flask's own session cookie:

    POST /login   username=alice|bob   session["user_id"], session["role"]; permanent session
    GET  /whoami  what the app reads from its session (and the X-Flask-Session-* headers
                  signed_cookies sent it)
    POST /logout  clears the session (Flask deletes the cookie)

The session is signed with FLASK_SECRET_KEY, the same variable the Caddyfile reads. Make one
with:  python3 -c 'import secrets; print(secrets.token_hex())'
FLASK_SECRET_KEY_OLD, when set, is the previous key (SECRET_KEY_FALLBACKS, Flask 3.1 and
later; older Flask ignores it). Without FLASK_SECRET_KEY the app makes a random key that
dies with the process (and says so).

    FLASK_SECRET_KEY=... /usr/bin/python3 examples/flask/app.py 5000   # or PORT=5000; binds 127.0.0.1
"""

import logging
import os
import secrets
import sys

from flask import Flask, make_response, request, session
from markupsafe import escape

app = Flask(__name__)
app.secret_key = os.environ.get("FLASK_SECRET_KEY") or secrets.token_hex()
if os.environ.get("FLASK_SECRET_KEY_OLD"):
    app.config["SECRET_KEY_FALLBACKS"] = [os.environ["FLASK_SECRET_KEY_OLD"]]
log = logging.getLogger("legacy")

# The app's users: user_id and role, what the session keeps.
USERS = {"alice": (42, "admin"), "bob": (7, "editor")}


def visitor_id():
    return request.headers.get("X-Visitor-Id", "")


def text(body, status=200):
    resp = make_response(body, status)
    resp.mimetype = "text/plain"
    return resp


@app.before_request
def log_visitor():
    # What an analytics pipeline reads: the visitor ID, next to what the app saw.
    log.info(
        "path=%s X-Visitor-Id=%s my_cookie=%s",
        request.path,
        visitor_id() or "-",
        request.cookies.get("my_cookie", "-"),
    )


@app.get("/")
def index():
    value = request.cookies.get("my_cookie")
    if value is None:
        resp = text("set my_cookie\nX-Visitor-Id: %s\n" % visitor_id())
        resp.set_cookie("my_cookie", "my_value")
    else:
        resp = text("my_cookie is %s\nX-Visitor-Id: %s\n" % (value, visitor_id()))
    return resp


@app.get("/visitor")
def visitor():
    return (
        '<!doctype html><title>visitor</title><link rel="icon" href="data:,">'
        '<p>X-Visitor-Id: <span id="visitor">%s</span></p>'
        '<p>document.cookie: <span id="cookies"></span></p>'
        '<script>document.getElementById("cookies").textContent = document.cookie;</script>\n'
        % escape(visitor_id())
    )


@app.post("/login")
def login():
    name = request.form.get("username", "")
    if name not in USERS:
        return text("unknown user\n", 403)
    session.clear()
    session["user_id"], session["role"] = USERS[name]
    session.permanent = True  # lives PERMANENT_SESSION_LIFETIME (31 days): Caddy's max_age
    return text("logged in as %s: user_id=%d role=%s\n" % (name, session["user_id"], session["role"]))


@app.get("/whoami")
def whoami():
    if "user_id" not in session:
        body = "not logged in\n"
    else:
        body = "user_id=%s role=%s\n" % (session["user_id"], session.get("role"))
    # What signed_cookies told the app about its own session (nothing when it sent none).
    for k, v in sorted(request.headers.items()):
        if k.lower().startswith("x-flask-session-"):
            body += "%s: %s\n" % (k, v)
    return text(body)


@app.post("/logout")
def logout():
    session.clear()
    return text("logged out\n")


def main():
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PORT", "5000"))
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not os.environ.get("FLASK_SECRET_KEY"):
        log.warning("FLASK_SECRET_KEY is not set: sessions are signed with a random key that dies with the process")
    app.run(host="127.0.0.1", port=port, debug=False, use_reloader=False)


if __name__ == "__main__":
    main()
