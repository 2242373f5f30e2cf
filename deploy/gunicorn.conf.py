"""gunicorn settings of the API: ``gunicorn -c deploy/gunicorn.conf.py`` serves ``APP_MODULE``
(tickonce's own app, ``services.api.main:app``, by default; or a team's app that includes it).

Everything comes from the one Settings class, so a bad variable stops the master at start
with one line, before any worker boots.
"""

from tickonce._config.logs import logging_config
from tickonce._config.settings import exit_with_config_error, get_settings
from tickonce._exceptions import ConfigError

try:
    _settings = get_settings()
except ConfigError as _error:
    exit_with_config_error(_error)

wsgi_app = _settings.app_module
worker_class = "uvicorn_worker.UvicornWorker"
workers = _settings.web_concurrency
bind = [f"0.0.0.0:{_settings.port}"]
# Workers in embedded mode drain running jobs for SHUTDOWN_GRACE_SECONDS before exiting.
graceful_timeout = int(_settings.shutdown_grace_seconds) + 5
timeout = 60
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
# LOG_FORMAT=json makes gunicorn's own lines JSON too.
logconfig_dict = logging_config(_settings)
# Only the load balancer reaches the api containers; trust its X-Forwarded-* headers.
forwarded_allow_ips = _settings.forwarded_allow_ips
# Heartbeat files in memory: the container's root filesystem is read-only.
worker_tmp_dir = "/dev/shm"
# gunicorn 27's control socket would be created under $HOME (read-only here) and log an error;
# nothing uses it.
control_socket_disable = True
