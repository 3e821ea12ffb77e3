"""The ``orch view`` web app: a read-only Starlette app over a project's ``.orch/``, on loopback.

Pages: ``/`` the runs (``?pipeline=NAME`` for one pipeline) with a pass-rate chart per
pipeline, ``/runs/<id>`` the run's ``builtin:html`` report (rendered as ``orch report`` renders
it), ``/runs/<id>/variants`` its variants side by side, ``/compare?a=ID&b=ID`` two runs
compared. Ids may be unique prefixes. Only GET is served; nothing under ``.orch`` is written.

Every response forbids remote loads (Content-Security-Policy ``default-src 'self'``): pages
carry no script but the report's own, allowed by its hash. Requests must name a loopback host
(``Host: 127.0.0.1`` or ``localhost``), so a web page cannot reach the viewer through DNS
rebinding.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import threading
import webbrowser
from pathlib import Path
from typing import Any

import jinja2
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from orch import templating
from orch.errors import OrchError, UsageError
from orch.project.model import Project
from orch.results.reports import write_report
from orch.results.viewer import pages
from orch.results.viewer.store import AMBIGUOUS, ReadOnlyHistory, RunNotFound

HOST = "127.0.0.1"
LOOPBACK_NAMES = ["127.0.0.1", "localhost"]
POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src {scripts}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_TEMPLATES = Path(__file__).parent / "templates"


def policy(html: str = "") -> str:
    """The Content-Security-Policy for a page: no remote loads; only its own inline scripts.

    The scripts allowed are those of ``html`` by hash: orch's report template writes them, and
    run data reaches the page escaped, so no reply can add one.
    """
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _SCRIPT.findall(html)
    ]
    return POLICY.format(scripts=" ".join(hashes) or "'none'")


class Viewer:
    """The pages of one project's history (``project`` loaded once, without its code)."""

    def __init__(self, project: Project):
        self.project = project
        self.history = ReadOnlyHistory(project.root)
        self.env = templating.environment(
            loader=jinja2.FileSystemLoader(_TEMPLATES),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def page(self, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        """``template`` rendered over ``context`` (autoescaped), with the no-remote policy."""
        html = self.env.get_template(template).render(
            project_name=self.project.name, **{"run_id": None, **context}
        )
        return HTMLResponse(html, status, headers=headers(html))

    def message(self, title: str, *lines: str, status: int = 200, command: str = "") -> Response:
        """A page that only says something (no runs yet, an unknown run, an error)."""
        return self.page(
            "message.html.j2", {"title": title, "lines": lines, "command": command}, status
        )

    def runs(self, request: Request) -> Response:
        """``/``: the runs list, or how to start one."""
        pipeline = request.query_params.get("pipeline") or None
        context = pages.runs_page(self.history, self.project, pipeline)
        if not context["rows"] and pipeline is None:
            return self.message(
                "No runs yet",
                f"Project {self.project.name} has no recorded runs. "
                "Run a pipeline and reload this page:",
                command="orch run pipelines/<name>.yml",
            )
        return self.page("runs.html.j2", context)

    def run(self, request: Request) -> Response:
        """``/runs/<id>``: the run's HTML report, as ``orch report -T builtin:html`` writes it."""
        data = self.history.load(request.path_params["run_id"])
        html, _ = write_report(self.project, data, "builtin:html", None)
        nav = self.env.get_template("nav.html.j2").render(run_id=data.record.run_id)
        html = re.sub("<body>", lambda _: "<body>\n" + nav.strip(), html, count=1)
        return HTMLResponse(html, headers=headers(html))

    def variants(self, request: Request) -> Response:
        """``/runs/<id>/variants``: the run's variants side by side."""
        data = self.history.load(request.path_params["run_id"])
        context = pages.variants_page(self.project, data)
        return self.page("variants.html.j2", {**context, "run_id": data.record.run_id})

    def compare(self, request: Request) -> Response:
        """``/compare?a=ID&b=ID``: what changed from run A to run B."""
        a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
        if not a or not b:
            return self.message(
                "Compare two runs",
                "Name the baseline and the new run: /compare?a=RUN_ID&b=RUN_ID "
                "(or pick them on the runs page).",
                status=400,
            )
        data = [self.history.load(run_id) for run_id in (a, b)]
        return self.page("compare.html.j2", pages.compare_page(self.project, *data))

    def not_found(self, request: Request, exc: Exception) -> Response:
        """An unknown run or page: a 404 page saying which."""
        if isinstance(exc, RunNotFound):
            if exc.why == AMBIGUOUS:
                return self.message(
                    "Ambiguous run id", f"Several runs start with {exc.run_id!r}.", status=404
                )
            return self.message("No such run", f"No run {exc.run_id!r} is recorded.", status=404)
        if isinstance(exc, HTTPException) and exc.status_code != 404:
            return self.message(f"HTTP {exc.status_code}", str(exc.detail), status=exc.status_code)
        return self.message("Not found", f"Nothing at {request.url.path}.", status=404)

    def failed(self, request: Request, exc: Exception) -> Response:
        """What orch could not read or render (a broken history, a report error): a 500 page."""
        return self.message("Cannot show this page", str(exc), status=500)


def headers(html: str = "") -> dict[str, str]:
    """Security headers for a page: its policy, no sniffing, no referrer."""
    return {
        "Content-Security-Policy": policy(html),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def favicon(request: Request) -> Response:
    """No icon (a browser asks for one; a 404 would show as a console error)."""
    return Response(status_code=204, headers=headers())


def create_app(project: Project, hosts: list[str] | None = None) -> Starlette:
    """The viewer's app for ``project``; requests must name one of ``hosts`` (loopback)."""
    viewer = Viewer(project)
    routes = [
        Route("/", viewer.runs),
        Route("/runs/{run_id}", viewer.run),
        Route("/runs/{run_id}/variants", viewer.variants),
        Route("/compare", viewer.compare),
        Route("/favicon.ico", favicon),
    ]
    handlers = {
        RunNotFound: viewer.not_found,
        HTTPException: viewer.not_found,
        OrchError: viewer.failed,
    }
    allowed = hosts or LOOPBACK_NAMES
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed)]
    return Starlette(routes=routes, exception_handlers=handlers, middleware=middleware)


def serve(project: Project, port: int, open_browser: bool, echo) -> None:
    """Serve ``project``'s history on 127.0.0.1:``port`` (0: a free one) until Ctrl-C.

    Prints the URL first; opens it in the local browser when ``open_browser``.
    """
    sock = bind(port)
    url = f"http://{HOST}:{sock.getsockname()[1]}/"
    config = uvicorn.Config(
        create_app(project), log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    echo(f"orch view: {url}  (read-only; Ctrl-C to stop)")
    if open_browser:  # aside: a browser that keeps its launcher waiting must not hold the server
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn stops cleanly, then raises the Ctrl-C it caught again
        pass
    finally:
        sock.close()


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port``; a port in use is a UsageError (exit 2)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
