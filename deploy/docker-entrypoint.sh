#!/bin/sh
# The web views route /documents/{id} to the worker that owns the id, at the URL each worker
# advertises: this container's own address, not the 0.0.0.0 it binds to.
set -eu
if [ -z "${DOCSIGHT_WEB_ADVERTISED_URL:-}" ]; then
    address="$(python -c 'import socket; print(socket.gethostbyname(socket.gethostname()))')"
    DOCSIGHT_WEB_ADVERTISED_URL="http://${address}:${DOCSIGHT_WEB_PORT:-6066}"
    export DOCSIGHT_WEB_ADVERTISED_URL
fi
exec docsight "$@"
