"""One self-contained HTML deployment report from a model's bundles, training run and measurements.

``edgecnn report BUNDLE|RUN_DIR|RESULTS.json… --out report.html``: :func:`collect` sorts the inputs by what they
are, :func:`build_context` reads and verifies them (the bundle checks are the runtime's own), :func:`render_html`
fills the template and :func:`write_html` writes the page atomically.
"""

from edgecnn.report.inputs import Inputs, collect
from edgecnn.report.render import build_context, render_html, write_html

__all__ = ["Inputs", "build_context", "collect", "render_html", "write_html"]
