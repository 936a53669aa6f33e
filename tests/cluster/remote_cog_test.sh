#!/usr/bin/env bash
# Imagery where it lives: rsi reads a Cloud-Optimised GeoTIFF over HTTP range requests.
#
#   tests/cluster/remote_cog_test.sh RSI_BINARY SHARED_DATA_DIR
#
# Makes a COG (256x256 blocks) of SHARED_DATA_DIR/spacenet/vegas_rgb.tif in a temp dir, serves it
# with a private nginx on 127.0.0.1 (non-daemon, config/logs/pid/temp files in the temp dir), then
#   - rsi buildings on /vsicurl/http://127.0.0.1:PORT/vegas_cog.tif and on the local COG must give
#     the same pixels, geotransform and CRS;
#   - the HTTP requests and bytes of the remote buildings run (from nginx's access log) are printed,
#     and there must be at least one and at most (256x256 blocks of the image + 20) requests;
#   - rsi info and rsi tile work on the URL and agree with the local file;
#   - a URL that does not exist (404) and a port nobody listens on fail with exit code 1, a one-line
#     error and no output file.
# Needs nginx (Debian: nginx-light), gdal-bin and python3-gdal; installs nothing.
#
# Environment:
#   RSI_REMOTE_GDAL_CONFIG   extra "KEY=VALUE KEY=VALUE" passed to every rsi run as --config KEY VALUE
#                            (to measure GDAL options; default none: what a user gets)
#   RSI_REMOTE_MAX_REQUESTS  override the request bound
#   RSI_REMOTE_KEEP=1        keep the temp dir (its path is printed)
set -euo pipefail

me=remote_cog_test
fail() {
  echo "$me: FAIL: $*" >&2
  exit 1
}
[ $# -eq 2 ] || {
  echo "usage: $0 RSI_BINARY SHARED_DATA_DIR" >&2
  exit 2
}
rsi=$(realpath "$1")
data=$(realpath "$2")
src=$data/spacenet/vegas_rgb.tif
py=/usr/bin/python3
[ -x "$rsi" ] || fail "$1 is not an executable"
[ -f "$src" ] || fail "$src not found"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || fail "nginx not found (install the Debian package nginx-light)"
nginx_bin=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
command -v gdal_translate >/dev/null 2>&1 || fail "gdal_translate not found (Debian package gdal-bin)"
"$py" -c 'from osgeo import gdal' 2>/dev/null || fail "$py cannot import osgeo.gdal (Debian package python3-gdal)"

extra=()
for kv in ${RSI_REMOTE_GDAL_CONFIG:-}; do extra+=(--config "${kv%%=*}" "${kv#*=}"); done

work=$(mktemp -d "${TMPDIR:-/tmp}/rsi-remote-cog.XXXXXX")
nginx_pid=""
cleanup() {
  if [ -n "$nginx_pid" ]; then
    kill "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
  fi
  if [ "${RSI_REMOTE_KEEP:-0}" = 1 ]; then echo "$me: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# nginx's workers run as nobody when the test runs as root: they must be able to read www/.
chmod 0755 "$work"
mkdir -p "$work/www" "$work/nginx" "$work/out"

# --- the COG -------------------------------------------------------------------------------------
cog=$work/www/vegas_cog.tif
gdal_translate -q -of COG -co BLOCKSIZE=256 "$src" "$cog" || fail "gdal_translate -of COG failed"
chmod 0644 "$cog"
read -r width height < <("$py" -c 'import sys
from osgeo import gdal
d = gdal.Open(sys.argv[1]); print(d.RasterXSize, d.RasterYSize)' "$cog")
# shellcheck disable=SC2017 # integer ceilings on purpose
blocks=$(((width + 255) / 256 * ((height + 255) / 256)))
max_requests=${RSI_REMOTE_MAX_REQUESTS:-$((blocks / 2 + 2))}

# --- nginx ---------------------------------------------------------------------------------------
free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
dead_port=$(free_port) # nothing listens here: bound and released at once
log=$work/nginx/access.log
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 64; }
http {
  log_format rsi '\$request_method \$uri \$status \$body_bytes_sent "\$http_range"';
  access_log $log rsi;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  types { image/tiff tif; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$port;
    root $work/www;
  }
}
EOF
# -e: error log before the config is read (the default is under /var/log). Runs in the foreground as
# a background job of this shell, so the trap can kill it.
"$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" -g 'daemon off;' \
  >"$work/nginx/stdout.log" 2>&1 &
nginx_pid=$!
up=0
for _ in $(seq 100); do
  kill -0 "$nginx_pid" 2>/dev/null || break
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    up=1
    break
  fi
  sleep 0.1
done
[ "$up" = 1 ] || fail "nginx did not start on 127.0.0.1:$port: $(tail -n 1 "$work/nginx/error.log" 2>/dev/null)"
url=/vsicurl/http://127.0.0.1:$port/vegas_cog.tif
echo "$me: serving $cog (${width}x${height}, $blocks blocks of 256x256) at ${url#/vsicurl/}"

# --- helpers -------------------------------------------------------------------------------------
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
count_requests() { # prints: requests GETs HEADs bytes
  awk '{n++; if ($1 == "GET") g++; else if ($1 == "HEAD") h++; b += $4} END {printf "%d %d %d %d\n", n, g, h, b}' "$log"
}
compare_rasters() { # compare_rasters A B: same size, bands, pixels, geotransform and CRS
  "$py" - "$1" "$2" <<'EOF'
import sys
from osgeo import gdal, osr
gdal.UseExceptions()
a, b = gdal.Open(sys.argv[1]), gdal.Open(sys.argv[2])
def crs(d):
    s = osr.SpatialReference()
    s.ImportFromWkt(d.GetProjection())
    return s
if (a.RasterXSize, a.RasterYSize, a.RasterCount) != (b.RasterXSize, b.RasterYSize, b.RasterCount):
    sys.exit("sizes or band counts differ")
if any(abs(x - y) > 1e-12 for x, y in zip(a.GetGeoTransform(), b.GetGeoTransform())):
    sys.exit(f"geotransforms differ: {a.GetGeoTransform()} vs {b.GetGeoTransform()}")
if not crs(a).IsSame(crs(b)):
    sys.exit("CRSs differ")
for i in range(1, a.RasterCount + 1):
    if a.GetRasterBand(i).ReadRaster() != b.GetRasterBand(i).ReadRaster():
        sys.exit(f"band {i} pixels differ")
EOF
}
# expect_failure LABEL IMAGE: rsi buildings must exit 1 with one line on stderr and write nothing.
expect_failure() {
  local label=$1 image=$2 out=$work/out/$1.tif rc=0
  "$rsi" buildings "$image" -o "$out" --quiet "${extra[@]}" >"$work/out/$label.stdout" 2>"$work/out/$label.stderr" || rc=$?
  local lines
  lines=$(grep -c . "$work/out/$label.stderr" || true)
  [ "$rc" = 1 ] || fail "$label: exit code $rc, expected 1 ($(head -n 1 "$work/out/$label.stderr"))"
  [ "$lines" = 1 ] || fail "$label: $lines lines on stderr, expected one: $(tr '\n' '|' <"$work/out/$label.stderr")"
  [ ! -e "$out" ] || fail "$label: $out was written"
  ! ls "$work/out/$label".tif.* >/dev/null 2>&1 || fail "$label: side files of $out were written"
  echo "$me: $label: exit 1: $(cat "$work/out/$label.stderr")"
}

# --- buildings: remote vs local -----------------------------------------------------------------
: >"$log"
t0=$(now)
"$rsi" buildings "$url" -o "$work/out/remote.tif" --quiet "${extra[@]}" ||
  fail "rsi buildings on $url failed"
t1=$(now)
read -r requests gets heads bytes < <(count_requests)
cp "$log" "$work/out/buildings_access.log"
"$rsi" buildings "$cog" -o "$work/out/local.tif" --quiet "${extra[@]}" || fail "rsi buildings on the local COG failed"
t2=$(now)
why=$(compare_rasters "$work/out/remote.tif" "$work/out/local.tif" 2>&1) ||
  fail "remote and local building maps differ: $(echo "$why" | tail -n 1)"
printf '%s: buildings: remote == local; remote run %s s, local run %s s\n' "$me" \
  "$(elapsed "$t0" "$t1")" "$(elapsed "$t1" "$t2")"
printf '%s: buildings over HTTP: %d requests (%d GET, %d HEAD), %d bytes (COG is %d bytes); bound %d\n' \
  "$me" "$requests" "$gets" "$heads" "$bytes" "$(stat -c %s "$cog")" "$max_requests"
[ "$heads" -le 5 ] || echo "$me: note: $heads HEAD requests are GDAL probing for side-car files; GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR avoids them"
[ "$requests" -gt 0 ] || fail "no HTTP requests logged for the remote buildings run"
[ "$requests" -le "$max_requests" ] ||
  fail "$requests HTTP requests for the remote buildings run, more than $max_requests (${RSI_REMOTE_GDAL_CONFIG:-no extra GDAL config})"

# --- info ----------------------------------------------------------------------------------------
: >"$log"
"$rsi" info "$url" --json "${extra[@]}" >"$work/out/remote_info.json" || fail "rsi info on $url failed"
info_requests=$(count_requests | cut -d' ' -f1)
"$rsi" info "$cog" --json "${extra[@]}" >"$work/out/local_info.json" || fail "rsi info on the local COG failed"
why=$("$py" - "$work/out/remote_info.json" "$work/out/local_info.json" <<'EOF' 2>&1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
a.pop("path", None); b.pop("path", None)
diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
if diff:
    sys.exit("fields differ: " + ", ".join(diff))
EOF
) || fail "rsi info: remote and local differ: $(echo "$why" | tail -n 1)"
echo "$me: info: remote == local (path aside); $info_requests requests"

# --- tile ----------------------------------------------------------------------------------------
: >"$log"
"$rsi" tile "$url" "$work/out/remote_tiles" --tile-size 512 --quiet "${extra[@]}" >"$work/out/remote_tile.stdout" || fail "rsi tile on $url failed"
tile_requests=$(count_requests | cut -d' ' -f1)
"$rsi" tile "$cog" "$work/out/local_tiles" --tile-size 512 --quiet "${extra[@]}" >"$work/out/local_tile.stdout" || fail "rsi tile on the local COG failed"
remote_list=$(cd "$work/out/remote_tiles" && find . -maxdepth 1 -name "*.tif" | sort)
local_list=$(cd "$work/out/local_tiles" && find . -maxdepth 1 -name "*.tif" | sort)
[ -n "$remote_list" ] || fail "rsi tile on $url wrote no tiles"
[ "$remote_list" = "$local_list" ] || fail "rsi tile: remote and local tile names differ"
for t in $remote_list; do
  why=$(compare_rasters "$work/out/remote_tiles/$t" "$work/out/local_tiles/$t" 2>&1) ||
    fail "rsi tile: tile $t differs: $(echo "$why" | tail -n 1)"
done
[ -s "$work/out/remote_tiles/index.geojson" ] || fail "rsi tile on $url wrote no index.geojson"
echo "$me: tile: $(echo "$remote_list" | wc -l) tiles, remote == local; $tile_requests requests"

# --- wrong URLs ----------------------------------------------------------------------------------
expect_failure missing "/vsicurl/http://127.0.0.1:$port/no_such_image.tif"
expect_failure refused "/vsicurl/http://127.0.0.1:$dead_port/vegas_cog.tif"

echo "$me: PASS"
