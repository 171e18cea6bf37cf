"""A small legacy Flask app that knows nothing of signatures.

On / it reads the cookie my_cookie: without it, it sets my_cookie=my_value and says so;
with it, it answers with the value. It logs the X-Visitor-Id header it receives (one line
per request on stdout) and shows it in the page. /visitor is an HTML page that shows the
X-Visitor-Id header and, through JavaScript, document.cookie.

    /usr/bin/python3 examples/flask/app.py 5000      # or PORT=5000; binds 127.0.0.1
"""

import logging
import os
import sys

from flask import Flask, make_response, request
from markupsafe import escape

app = Flask(__name__)
log = logging.getLogger("legacy")


def visitor_id():
    return request.headers.get("X-Visitor-Id", "")


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
        resp = make_response("set my_cookie\nX-Visitor-Id: %s\n" % visitor_id())
        resp.set_cookie("my_cookie", "my_value")
    else:
        resp = make_response("my_cookie is %s\nX-Visitor-Id: %s\n" % (value, visitor_id()))
    resp.mimetype = "text/plain"
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


def main():
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PORT", "5000"))
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app.run(host="127.0.0.1", port=port, debug=False, use_reloader=False)


if __name__ == "__main__":
    main()
