"""textfile collector: site-specific metrics from *.prom files in a directory, as
node_exporter's textfile collector reads them (written atomically by cron jobs)."""

from __future__ import annotations

import glob
import logging
import os

from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors.base import Collector, read_text
from exporter.metrics import Family, from_client

log = logging.getLogger(__name__)


class TextfileCollector(Collector):
    name = "textfile"
    description = "Metrics from *.prom files in a directory (site-specific metrics)."
    families = ("node_textfile_mtime_seconds", "node_textfile_scrape_error", "<your metrics>")
    options = {
        "directory": ("", str, "Directory to read *.prom files from (empty: collector yields only its error gauge)."),
    }

    def collect(self) -> list[Family]:
        directory = self.opts["directory"]
        error = 0
        out: list[Family] = []
        seen: dict[str, Family] = {}
        mtime = Family("node_textfile_mtime_seconds", "gauge", "Unixtime mtime of textfiles successfully read.",
                       ("file",))
        if directory:
            for path in sorted(glob.glob(os.path.join(glob.escape(directory), "*.prom"))):
                try:
                    st = os.stat(path)
                    fams = [from_client(m) for m in text_string_to_metric_families(read_text(path)) if m.samples]
                except Exception as exc:  # noqa: BLE001 - a bad file must not fail the scrape
                    log.warning("textfile %s: %s", path, exc)
                    error = 1
                    continue
                bad = [f.name for f in fams if f.name in seen and seen[f.name].type != f.type]
                if bad or any(f.name.startswith("node_textfile_") for f in fams):
                    log.warning("textfile %s: conflicting metric families %s", path, bad)
                    error = 1
                    continue
                for f in fams:
                    if f.name in seen:
                        seen[f.name].samples.extend(f.samples)
                    else:
                        seen[f.name] = f
                        out.append(f)
                mtime.add((os.path.basename(path),), st.st_mtime)
        if mtime.samples:
            out.append(mtime)
        out.append(Family("node_textfile_scrape_error", "gauge",
                          "1 if there was an error opening or reading a file, 0 otherwise").add((), error))
        return out
