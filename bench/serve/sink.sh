#!/usr/bin/env bash
# Starts nginx as a stand-in v2 cache server that stores each uploaded request body to a file
# (one write per byte, no hash, no fsync, no index) and answers the Twirp calls with fixed JSON,
# so that the bench can time the real client's save against the least work a storing server can
# do here: bench/serve/bench.mjs with SINK_URL=<the printed URL>. Stop it with
# `nginx -c DIR/sink.conf -s stop`; the stored bodies are under DIR/bodies (removed by the bench).
#
# Usage: bench/serve/sink.sh DIR [PORT (3998)]
set -euo pipefail
DIR=$(mkdir -p "$1" && cd "$1" && pwd)
PORT=${2:-3998}
command -v nginx >/dev/null || { echo "nginx is not on PATH (apt-get install nginx)" >&2; exit 1; }
mkdir -p "$DIR/bodies" "$DIR/temp"
# The worker may run as another user; it must be able to write the bodies.
chmod 777 "$DIR/bodies" "$DIR/temp"
TWIRP=/twirp/github.actions.results.api.v1.CacheService
cat > "$DIR/sink.conf" <<CONF
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_max_body_size 0;
  client_body_buffer_size 1m;
  client_body_temp_path $DIR/temp;
  proxy_temp_path $DIR/temp; fastcgi_temp_path $DIR/temp; uwsgi_temp_path $DIR/temp; scgi_temp_path $DIR/temp;
  server {
    listen 127.0.0.1:$PORT;
    default_type application/json;
    location = $TWIRP/CreateCacheEntry {
      return 200 '{"ok":true,"signed_upload_url":"http://127.0.0.1:$PORT/devstoreaccount1/sink/archive?sig=x"}';
    }
    location = $TWIRP/FinalizeCacheEntryUpload { return 200 '{"ok":true,"entry_id":"1"}'; }
    location = $TWIRP/GetCacheEntryDownloadURL { return 200 '{"ok":false}'; }
    # Every Put Blob, Put Block and Put Block List body is stored whole under a name of its own
    # (so each answers 201 Created, as Azure does); a plain 'return 201' would answer before the
    # body is read and the client would stop sending it.
    location /devstoreaccount1/ { rewrite ^ /bodies/\$request_id last; }
    location /bodies/ {
      internal;
      root $DIR;
      dav_methods PUT;
      add_header x-ms-request-id 00000000-0000-0000-0000-000000000000 always;
    }
  }
}
CONF
nginx -c "$DIR/sink.conf"
echo "http://127.0.0.1:$PORT"
