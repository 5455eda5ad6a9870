"""gunicorn settings for the Procfile: `web: gunicorn --config config/gunicorn.conf.py "feedsvc.web:create_app()"`.

Every worker joins the builder election (an flock in the output directory): exactly one of
them builds, all of them serve the published bytes from memory. feedsvc settings come from
the same FEEDSVC_* variables as the CLI.
"""

import os

bind = [f"0.0.0.0:{os.environ.get('PORT', '8000')}"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Each worker must create its own app (and so its own election ticket): never preload.
preload_app = False
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("FEEDSVC_LOG_LEVEL", "info").lower()
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
control_socket_disable = True
