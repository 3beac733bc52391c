# gunicorn settings for the production profile (deploy/compose.yaml).
bind = "0.0.0.0:8000"
workers = 3
threads = 4
timeout = 60
accesslog = "-"
forwarded_allow_ips = "*"  # behind the hospital's reverse proxy only; it sets REMOTE_ADDR
