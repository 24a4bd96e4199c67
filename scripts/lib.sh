# shellcheck shell=bash disable=SC2034
# Shared bash helpers for kafee's scripts. Source it; it defines functions and variables only.
#
#   KAFEE_CACHE    where installs live (Kafka jars, Maven repo, the Tansu venv); default ~/.cache/kafee.
#                  Outside the repo so a fresh clone on the same machine reuses them.
#   KAFEE_RUN_DIR  where running brokers keep their folder (config, data, log, pid, address);
#                  default $KAFEE_CACHE/run. scripts/test points it at a folder of its own.

KAFEE_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFEE_ROOT="$(cd "$KAFEE_SCRIPTS/.." && pwd)"
# shellcheck source=versions.env
. "$KAFEE_SCRIPTS/versions.env"

KAFEE_CACHE="${KAFEE_CACHE:-${HOME:-$(cd ~ && pwd)}/.cache/kafee}"
KAFEE_RUN_DIR="${KAFEE_RUN_DIR:-$KAFEE_CACHE/run}"

KAFKA_HOME="$KAFEE_CACHE/kafka-$KAFKA_VERSION"
# One Python venv for the Tansu wheel and the Python peer client (scripts/peers).
PY_VENV="$KAFEE_CACHE/venv"
TANSU_BIN="$PY_VENV/bin/tansu"

# Creates $PY_VENV if needed and pip-installs "$1" (name==version) into it, once. Call it with the
# venv lock held (see venv_install).
_venv_pip_install() {
    local spec="$1" marker="$PY_VENV/.installed-${1//[^A-Za-z0-9._-]/_}"
    [ -f "$marker" ] && return 0
    need_python
    if [ ! -x "$PY_VENV/bin/pip" ]; then
        rm -rf "$PY_VENV"
        python3 -m venv "$PY_VENV" >&2
    fi
    "$PY_VENV/bin/pip" install -q --disable-pip-version-check "$spec" >&2
    touch "$marker"
}

# pip-installs each name==version argument into $PY_VENV under a lock shared by all installers.
venv_install() {
    mkdir -p "$KAFEE_CACHE"
    (
        flock 9
        local spec
        for spec in "$@"; do _venv_pip_install "$spec"; done
    ) 9>"$KAFEE_CACHE/.install-venv.lock"
}

# Messages go to stderr: stdout of `scripts/broker up` carries only the address.
say() { printf '%s\n' "[kafee] $*" >&2; }
die() { say "error: $*"; exit 1; }

# Seconds since the epoch with millisecond precision, for timings.
now_ms() { date +%s%3N; }

# A TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Install missing Debian packages (as root, or through sudo when it exists).
apt_install() {
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || die "need root or sudo to install: $*"
        sudo="sudo"
    fi
    say "installing Debian packages: $*"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2
}

# Java 17 or newer on PATH (Kafka 4 needs it).
java_major() {
    java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1
}
need_java() {
    local major
    major="$(java_major 2>/dev/null || true)"
    if [ -z "$major" ] || [ "$major" -lt 17 ]; then
        apt_install openjdk-17-jre-headless
        major="$(java_major)"
        [ -n "$major" ] && [ "$major" -ge 17 ] || die "Kafka $KAFKA_VERSION needs Java 17+, found '${major:-none}'"
    fi
}
need_mvn() { command -v mvn >/dev/null || apt_install maven; }
need_python() {
    command -v python3 >/dev/null || apt_install python3 python3-venv
    python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
}
