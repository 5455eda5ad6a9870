"""HTTP: the Flask app (`feedsvc.web.app.make_app`), the document responder, `/metrics`, and the
gunicorn options. It serves what is published and starts no builder: the factory that gunicorn,
`flask --app feedsvc.host run` and `feedsvc serve` load is `feedsvc.host:create_app()`, the
composition root, which wires the builder and hands this package a `BuilderHandle`."""

from feedsvc.web.app import BuilderHandle, WebProcess, make_app

__all__ = ["BuilderHandle", "WebProcess", "make_app"]
