#!/usr/bin/env bash
# One entry point for a fresh Debian/Ubuntu machine; safe to run again.
#   scripts/dev.sh run   install everything and launch the studio on the bundled dataset
#   scripts/dev.sh test  install everything including test extras and run the whole suite
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-run}"
shift || true

# Qt's system libraries (and Xvfb for a real window without a display).
packages=(libgl1 libegl1 libglib2.0-0 libxkbcommon0 libfontconfig1 libdbus-1-3
          xvfb xauth libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0
          python3-venv)
# The tests also check the bundled subset against the full Fashion-MNIST (about 30 MB).
[ "$mode" = "test" ] && packages+=(dataset-fashion-mnist)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
fi
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "Installing system packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
extras="export"
[ "$mode" = "test" ] && extras="test"
stamp=".venv/.installed-$extras-$(cat pyproject.toml | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
    echo "Installing CNN Studio and its Python packages into .venv (a few minutes the first time)..."
    # pip's own notes (an editable install's advice, say) are shown only if the installation fails.
    log="$(mktemp)"
    if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e ".[$extras]"; } \
            >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "Installation failed: the messages above say why." >&2
        exit 1
    fi
    rm -f "$log"
    touch "$stamp"
fi

case "$mode" in
    run)
        if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ] && [ -z "${QT_QPA_PLATFORM:-}" ]; then
            echo "No display found: starting the studio on a virtual screen (Xvfb)."
            exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/cnn-studio "$@"
        fi
        exec .venv/bin/cnn-studio "$@"
        ;;
    test)
        .venv/bin/ruff check .
        # Installed above: a test that needs a test extra (onnx, onnxruntime, safetensors, hypothesis)
        # or, on Debian and Ubuntu, the full Fashion-MNIST fails instead of skipping when it is missing.
        export CNN_STUDIO_REQUIRE_EXTRAS=1
        command -v dpkg-query >/dev/null 2>&1 && export CNN_STUDIO_REQUIRE_FASHION_MNIST=1
        set +e
        QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest "$@"
        status=$?
        set -e
        if [ "$status" -eq 5 ]; then
            echo "pytest collected no tests: failing on purpose." >&2
            exit 1
        fi
        exit "$status"
        ;;
    *)
        echo "usage: scripts/dev.sh run|test" >&2
        exit 2
        ;;
esac
