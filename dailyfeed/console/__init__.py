"""The dead-letter console (SPEC section 8a): the admin API under /api/admin/ (api.py) and the page at /admin
(views.py), both over service.py, which reads through dailyfeed.deadletters and repairs through the restore jobs
and the claim protocol the CLI uses, so a console action and a CLI restore never work on one dead letter at once.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import api, views

    app.register_blueprint(api.bp)
    app.register_blueprint(views.bp)
