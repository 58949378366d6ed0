"""Installing as users do: an sdist, the wheel built from it, and that wheel installed, all
with no Node.js or npm on PATH (the JS bundle travels inside both archives)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DATA = (
    "saewidgets/static/widget.js",
    "saewidgets/static/widget.css",
    "saewidgets/export/assets/bootstrap.js",
    "saewidgets/model_organism/data/corpus.jsonl.gz",
    "saewidgets/model_organism/data/ground_truth.json",
    "saewidgets/model_organism/data/model/model.safetensors",
    "saewidgets/model_organism/data/model/tokenizer.json",
    "saewidgets/model_organism/data/sae/sae_weights.safetensors",
    "saewidgets/model_organism/data/sae/cfg.json",
)


def nodeless_env(tmp_path: Path) -> dict[str, str]:
    """The environment with a PATH that holds only this Python (no node, npm or npx)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python", "python3"):
        (bin_dir / name).symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = str(bin_dir)
    return env


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """``python -m build`` as a user runs it: the sdist from the checkout, the wheel from the sdist."""
    pytest.importorskip("build", reason="python -m build comes with the dev extra")
    if not (ROOT / "saewidgets/static/widget.js").is_file():
        pytest.skip("the JS bundle is not built in this checkout (pip install -e . builds it with npm)")
    tmp = tmp_path_factory.mktemp("dist")
    out = tmp / "out"
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        env=nodeless_env(tmp), capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = out.glob("saewidgets-*.whl")
    (sdist,) = out.glob("saewidgets-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.mark.slow
def test_wheel_holds_the_package_its_data_and_licence_but_not_the_build_tools(dist):
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        bundle = wheel.getinfo("saewidgets/static/widget.js").file_size
    for path in PACKAGE_DATA:
        assert path in names, path
    assert bundle > 100_000, f"widget.js is only {bundle} bytes"
    assert not [n for n in names if n.startswith(("tools/", "tests/", "js/", "benchmarks/", "notebooks/"))]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert ("saewidgets/py.typed" in names) == (ROOT / "saewidgets/py.typed").is_file()
    assert "License-Expression: MIT" in metadata
    for extra in ("saelens", "accelerate", "pos", "all", "dev"):
        assert f"Provides-Extra: {extra}" in metadata, extra
    assert dist["wheel"].stat().st_size < 15_000_000  # about 5 MB: the organism's weights and the JS bundle


@pytest.mark.slow
def test_sdist_holds_the_bundle_the_sources_and_the_licence(dist):
    with tarfile.open(dist["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for path in (*PACKAGE_DATA, "LICENSE", "pyproject.toml", "js/package.json", "js/src/index.js"):
        assert path in names, path
    assert not [n for n in names if n.startswith("js/node_modules")]


@pytest.mark.slow
def test_wheel_installs_imports_and_renders_without_node(dist, tmp_path):
    """Installed into a new environment (reusing this one's dependencies), the wheel imports from
    its own files, loads the organism offline and writes a standalone page with the bundle."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    python = env_dir / "bin" / "python"
    env = nodeless_env(tmp_path)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(dist["wheel"])],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    script = (
        "import saewidgets as sw, sys\n"
        "assert sw.__file__.startswith(sys.prefix), sw.__file__\n"
        "model, sae = sw.organism()\n"
        "explorer = sw.FeatureExplorer(model, sae, feature=3, prompt='The word')\n"
        "esm = str(explorer._esm)\n"
        "assert len(esm) > 100_000 and 'front end is not built' not in esm, esm[:200]\n"
        "page = explorer.save_html('feature3.html')\n"
        "print(sw.__file__, len(open(page).read()))\n"
    )
    run = subprocess.run([str(python), "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    where, size = run.stdout.split()[-2:]
    assert str(env_dir) in where
    assert int(size) > 200_000  # the page carries widget.js (0.9 MB, compressed) inline
