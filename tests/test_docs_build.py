"""The documentation builds offline with warnings as errors (Sphinx, ``docs/conf.py``), and its
API reference documents every public class and function of every subpackage."""

import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
SUBPACKAGES = ("operators", "priors", "optim", "reconstruct", "sampling", "metrics", "data",
               "training")

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("myst_parser") is None,
    reason="the docs tools are not installed: pip install -e '.[docs]' (the dev extra has them)",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
           "-d", str(out / "doctrees"), str(DOCS), str(out / "html")]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stdout[-3000:]}{proc.stderr[-6000:]}"
    return out / "html"


def test_every_guide_page_and_reference_page_is_built(site):
    for page in DOCS.glob("*.md"):
        assert (site / f"{page.stem}.html").is_file(), page.name
    contents = (DOCS / "reference" / "contents.md").read_text()
    titled = {p.stem for p in DOCS.glob("*.md") if p.read_text().startswith("# ")}
    listed = set(re.findall(r"^\.\./(\w+)$", contents, flags=re.MULTILINE))
    assert titled == listed  # the narrative pages are the guide, in the table of contents
    assert set(re.findall(r"^(\w+)$", contents, flags=re.MULTILINE)) == set(SUBPACKAGES)


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_reference_documents_the_public_api(site, name):
    module = importlib.import_module(f"genprior.{name}")
    html = (site / "reference" / f"{name}.html").read_text()
    public = [n for n in module.__all__ if callable(getattr(module, n))]
    missing = [n for n in public if f'id="genprior.{name}.{n}"' not in html]
    assert public and not missing
