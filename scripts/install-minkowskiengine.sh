#!/usr/bin/env bash
# Build MinkowskiEngine 0.5.4 from its PyPI source archive and install it into the active Python.
#
# Usage: bash scripts/install-minkowskiengine.sh        (PYTHON=/path/to/python to pick another)
#
# - Does nothing when MinkowskiEngine is already importable, so it is safe to re-run.
# - Builds with CUDA only when nvcc is on PATH and the installed torch is a CUDA build.
#   Otherwise it builds the CPU-only extension, even when nvcc is present.
# - Needs a C++ compiler and the OpenBLAS headers (Debian: g++, libopenblas-dev). When run as
#   root with apt-get available, it installs them; otherwise it stops and names the package.
# - Never changes torch: the build uses the installed torch (--no-build-isolation) and pip
#   installs no dependencies (--no-deps).
# - Keeps the built wheel in $MINKOWSKI_WHEEL_CACHE (default ~/.cache/sparsecodec/wheels),
#   keyed by Python, torch and CPU/CUDA, so a later run on the same setup installs in seconds.
#   pip's own wheel cache cannot be used for this: it keys a wheel by the source archive alone,
#   so it would hand a wheel built against one torch to another torch.
set -euo pipefail

ME_VERSION=0.5.4
PYTHON=${PYTHON:-python}

log() { printf 'install-minkowskiengine: %s\n' "$*" >&2; }
fail() { log "error: $*"; exit 1; }

# MinkowskiEngine 0.5.4 runs `from collections import Sequence`, removed in Python 3.10; the
# import check provides the name the same way the sparsecodec adapter does.
importable_version() {
    "$PYTHON" - <<'EOF' 2>/dev/null
import collections
import collections.abc
if not hasattr(collections, "Sequence"):
    collections.Sequence = collections.abc.Sequence
import MinkowskiEngine
print(MinkowskiEngine.__version__)
EOF
}

if version=$(importable_version); then
    log "MinkowskiEngine $version is already importable by $PYTHON; nothing to do"
    exit 0
fi

"$PYTHON" -c "import torch" 2>/dev/null \
    || fail "torch is not importable by $PYTHON; install torch first (e.g. pip install torch==2.13.0)"

# --- Debian build dependencies ---------------------------------------------------------------

missing=()
command -v g++ >/dev/null 2>&1 || missing+=(g++)
# The CPU kernels include cblas.h and link -lopenblas; libopenblas-dev provides both. Asking the
# compiler finds them wherever the distribution puts them.
if ! command -v g++ >/dev/null 2>&1 \
        || ! printf '#include <cblas.h>\nint main() { return 0; }\n' \
            | g++ -x c++ - -lopenblas -o /dev/null >/dev/null 2>&1; then
    missing+=(libopenblas-dev)
fi
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        fail "missing Debian packages: ${missing[*]}; install them (sudo apt-get install ${missing[*]}) and re-run"
    fi
fi

# --- Python build tools ----------------------------------------------------------------------

# --no-build-isolation builds with this environment's own tools. Setuptools older than 70.1
# needs `wheel` to make a wheel. Torch's extension builder compiles in parallel only when it
# finds ninja on PATH, so the environment's scripts folder is added to PATH for the build.
tools=()
"$PYTHON" -c "import setuptools.command.bdist_wheel" 2>/dev/null \
    || "$PYTHON" -c "import wheel" 2>/dev/null || tools+=(wheel)
scripts_dir=$("$PYTHON" -c "import sysconfig; print(sysconfig.get_path('scripts'))")
PATH="$scripts_dir:$PATH" command -v ninja >/dev/null 2>&1 || tools+=(ninja)
if [ ${#tools[@]} -gt 0 ]; then
    log "installing Python build tools: ${tools[*]}"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps "${tools[@]}"
fi

# --- CPU or CUDA build ------------------------------------------------------------------------

torch_cuda=$("$PYTHON" -c "import torch; print(torch.version.cuda or '')")
torch_version=$("$PYTHON" -c "import torch; print(torch.__version__)")
python_tag=$("$PYTHON" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
if command -v nvcc >/dev/null 2>&1 && [ -n "$torch_cuda" ]; then
    build_kind="cuda$torch_cuda"
    setup_flags="--force_cuda --blas=openblas"
else
    build_kind=cpu
    setup_flags="--cpu_only --blas=openblas"
    if command -v nvcc >/dev/null 2>&1; then
        log "nvcc found, but torch $torch_version is a CPU build: building the CPU-only extension"
    fi
fi

cache_root=${MINKOWSKI_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sparsecodec/wheels}
cache_dir="$cache_root/MinkowskiEngine-$ME_VERSION/$python_tag-torch$torch_version-$build_kind"

# --- Build (or reuse) the wheel and install it -------------------------------------------------

install_wheel() {
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps --no-index --force-reinstall "$1"
}

wheel=""
if [ -d "$cache_dir" ]; then
    wheel=$(find "$cache_dir" -maxdepth 1 -iname 'MinkowskiEngine-*.whl' | head -n 1)
fi
if [ -z "$wheel" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    # setup.py runs `pip uninstall MinkowskiEngine -y` with whatever pip is first on PATH; this
    # shim points that call at $PYTHON, so no other environment loses its copy.
    mkdir "$work/bin"
    printf '#!/bin/sh\nexec "%s" -m pip "$@"\n' "$(command -v "$PYTHON")" >"$work/bin/pip"
    chmod +x "$work/bin/pip"

    log "building MinkowskiEngine $ME_VERSION ($build_kind, torch $torch_version); this takes several minutes"
    # setup.py reads its own flags from argv; --global-option passes them to every setup.py call,
    # including the metadata step, whose BLAS probe fails under current setuptools without --blas.
    PATH="$work/bin:$scripts_dir:$PATH" MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PYTHON" -m pip wheel \
        --disable-pip-version-check --no-deps --no-build-isolation --use-pep517 \
        --no-binary MinkowskiEngine --no-cache-dir \
        --config-settings="--global-option=$setup_flags" \
        --wheel-dir "$work" "MinkowskiEngine==$ME_VERSION"
    built=$(find "$work" -maxdepth 1 -iname 'MinkowskiEngine-*.whl' | head -n 1)
    [ -n "$built" ] || fail "pip wheel finished without producing a MinkowskiEngine wheel"

    # Write to a temporary name first so that an interrupted copy never looks like a cached wheel.
    mkdir -p "$cache_dir"
    cp "$built" "$cache_dir/.partial"
    mv "$cache_dir/.partial" "$cache_dir/$(basename "$built")"
    wheel="$cache_dir/$(basename "$built")"
else
    log "reusing cached wheel $wheel"
fi

install_wheel "$wheel"
version=$(importable_version) || fail "MinkowskiEngine was installed from $wheel but does not import"
log "MinkowskiEngine $version installed ($build_kind)"
