"""Sphinx configuration of genprior's documentation: the pages of ``docs/`` (Markdown, read by
MyST) are the narrative part, ``docs/reference/`` the API reference generated from the
docstrings (Google style, read by napoleon).

Build (offline; ``pip install -e ".[docs]"``)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

``tests/test_docs_build.py`` runs the same build with warnings as errors.
"""

project = "genprior"
author = "genprior contributors"
copyright = "genprior contributors"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]

#: the master table of contents; docs/index.md stays the front page (index.html)
root_doc = "reference/contents"
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "**/.*"]

# Markdown pages: anchors for links such as operators.md#writing-a-new-operator, $...$ math
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

# docstrings: Google style with the package's own "Shape:" section
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = ["Shape"]
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_mock_imports: list[str] = []

html_theme = "alabaster"
html_title = "genprior"


def _orphan_result_tables(app, docname, source):
    """Pages without a title are the result tables that the scripts write (``Command: ...`` and
    a table), linked from the narrative pages: mark them orphans, so that only a titled page
    missing from the table of contents fails the build."""
    if str(app.env.doc2path(docname)).endswith(".md") and not source[0].lstrip().startswith("#"):
        source[0] = "---\norphan: true\n---\n" + source[0]


def setup(app):
    app.connect("source-read", _orphan_result_tables)
