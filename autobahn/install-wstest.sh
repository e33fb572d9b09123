#!/usr/bin/env bash
# Installs the Autobahn TestSuite's `wstest` (Python 2.7 code) under a private cache
# directory, without touching the system's apt configuration, and prints the path of
# a launcher script. Idempotent: a second run only rewrites the launcher and prints
# its path. The launcher puts $WSTEST_PYTHONPATH (if set) after the install on
# Python's path: autobahn/run.sh uses it to load autobahn/loopback/sitecustomize.py.
#
# Python 2.7 comes from Debian bullseye's packages, fetched through the same mirror the
# system's apt already uses (read from its sources) into a private apt state, and
# unpacked with `dpkg -x` into a private prefix.
set -euo pipefail

CACHE="${WSTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rfc6455-wstest}"
CACHE="$(mkdir -p "$CACHE" && cd "$CACHE" && pwd)"   # absolute: pip's subprocesses need it
PREFIX="$CACHE/py27"
SITE="$CACHE/site"
LAUNCHER="$CACHE/wstest"

log() { echo "install-wstest: $*" >&2; }

# 1. Python 2.7 from bullseye into a private prefix, through the Debian mirror this
#    machine's apt uses (deb822 or one-line sources).
if [ ! -x "$PREFIX/usr/bin/python2.7" ]; then
  mirror=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    mirror=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
    [ -n "$mirror" ] && break
  done
  if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '/^deb / && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [ -n "$mirror" ] || { log "cannot find the Debian mirror in the apt sources"; exit 1; }
  log "Debian mirror: $mirror"
  apt_dir="$CACHE/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bullseye main" > "$apt_dir/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
            -o "Dir::Cache=$apt_dir" -o Debug::NoLocking=1)
  log "fetching bullseye package lists"
  apt-get "${apt_opts[@]}" update -qq >&2
  (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" download \
      python2.7 python2.7-minimal libpython2.7-minimal libpython2.7-stdlib libpython2.7 \
      libpython2.7-dev python2.7-dev libssl1.1 libffi7 >&2)
  mkdir -p "$PREFIX"
  for deb in "$apt_dir"/debs/*.deb; do dpkg -x "$deb" "$PREFIX"; done
fi

# Only the Python 2.7 interpreter gets these variables: python3 (used below to fetch
# pip's wheel) would break under a foreign PYTHONHOME.
PY="$PREFIX/usr/bin/python2.7"
py27() {
  PYTHONHOME="$PREFIX/usr" \
  LD_LIBRARY_PATH="$PREFIX/usr/lib/x86_64-linux-gnu:$PREFIX/lib/x86_64-linux-gnu" \
  "$PY" "$@"
}
py27 -c 'import sys; assert sys.version_info[:2] == (2, 7)'

# 2. pip 20.3.4 (the last for Python 2.7), fetched with python3's pip, run from its wheel.
wheel="$CACHE/pip-20.3.4-py2.py3-none-any.whl"
if [ ! -f "$wheel" ]; then
  env -u PYTHONHOME python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$CACHE" pip==20.3.4 >&2
fi

# 3. setuptools 44 and wheel 0.37 (the last for Python 2.7): some of the pinned
#    packages are sdists whose setup.py needs them; pip's build subprocesses see them
#    through PYTHONPATH.
BUILD="$CACHE/build-tools"
if [ ! -f "$BUILD/setuptools/__init__.py" ]; then
  env -u PYTHONHOME python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$CACHE" \
    setuptools==44.1.1 wheel==0.37.1 >&2
  py27 "$wheel/pip" install --quiet --disable-pip-version-check --no-warn-script-location \
    --no-index --target "$BUILD" "$CACHE/setuptools-44.1.1-py2.py3-none-any.whl" \
    "$CACHE/wheel-0.37.1-py2.py3-none-any.whl" >&2
fi

# 4. The pinned set that is known to install and run together.
if [ ! -f "$SITE/autobahntestsuite/wstest.py" ]; then
  log "installing autobahntestsuite into $SITE"
  PYTHONPATH="$BUILD" py27 "$wheel/pip" install --quiet --disable-pip-version-check \
    --no-warn-script-location --target "$SITE" \
    autobahntestsuite==25.10.1 txaio==2.1.0 incremental==16.10.1 pyOpenSSL==19.1.0 \
    cryptography==3.3.2 Twisted==19.10.0 zope.interface==4.6.0 jinja2==2.11.3 \
    markupsafe==1.1.1 Werkzeug==1.0.1 klein==17.10.0 service_identity==18.1.0 \
    unittest2==1.1.0 six==1.16.0 'autobahn[twisted]==0.10.9' >&2
  # zope is a namespace package whose .pth file is ignored under --target.
  touch "$SITE/zope/__init__.py"
fi

# 5. wsaccel: autobahn's C masking and UTF-8 validation. Without it wstest masks and
#    validates in pure Python, and the permessage-deflate cases (12.*, 13.*: thousands
#    of messages up to 128 KiB each) take about 20 minutes per agent instead of a few.
#    Built from its sdist against the private Python's headers.
if [ ! -f "$SITE/wsaccel/xormask.so" ]; then
  log "installing wsaccel into $SITE"
  CFLAGS="-I$PREFIX/usr/include/python2.7 -I$PREFIX/usr/include" PYTHONPATH="$BUILD" \
    py27 "$wheel/pip" install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$SITE" wsaccel==0.6.2 >&2
fi

cat > "$LAUNCHER" <<LAUNCH
#!/usr/bin/env bash
export PYTHONHOME="$PREFIX/usr"
export LD_LIBRARY_PATH="$PREFIX/usr/lib/x86_64-linux-gnu:$PREFIX/lib/x86_64-linux-gnu"
export PYTHONPATH="$SITE\${WSTEST_PYTHONPATH:+:\$WSTEST_PYTHONPATH}"
exec "$PY" -c "import sys; from autobahntestsuite.wstest import run; sys.argv[0]='wstest'; run()" "\$@"
LAUNCH
chmod +x "$LAUNCHER"
"$LAUNCHER" --help >/dev/null
echo "$LAUNCHER"
