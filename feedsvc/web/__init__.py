"""HTTP: `create_app()` is the factory for gunicorn (`feedsvc.web:create_app()`), `flask --app
feedsvc.web run` and `feedsvc serve`."""

from feedsvc.web.app import create_app

__all__ = ["create_app"]
