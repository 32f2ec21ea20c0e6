#!/usr/bin/env bash
# docker/entrypoint.sh: the two roles of the image, both thin wrappers over
# util/sophon-demo.  NOT exercised by CI (no Docker engine there).
#   init    wait for PostgreSQL, apply sql/schema.sql, load the demo events
#           if the table is empty (util/sophon-demo seed), then exit
#   serve   render util/demo-nginx.conf.in (util/sophon-demo config) and run
#           nginx in the foreground on 0.0.0.0:5555
# SOPHON_DB overrides the conninfo (default: the compose service "db").
set -euo pipefail

cd /src
conninfo=${SOPHON_DB:-host=db port=5432 dbname=sophon user=postgres}
prefix=/var/lib/sophon-demo

case ${1:-serve} in
    init)
        for i in $(seq 60); do
            /usr/lib/postgresql/15/bin/pg_isready -q -d "$conninfo" && break
            [ "$i" -lt 60 ] || { echo "entrypoint: no database" >&2; exit 1; }
            sleep 1
        done
        exec util/sophon-demo seed "$conninfo"
        ;;
    serve)
        util/sophon-demo config "$prefix" 0.0.0.0:5555 "$conninfo"
        exec nginx -p "$prefix/" -c nginx.conf \
            -g 'daemon off; error_log stderr notice;'
        ;;
    *)
        exec "$@"
        ;;
esac
