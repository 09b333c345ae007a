"""A report page as a person sees it: laid out by a real headless browser (Debian's chromium).

``layout(html)`` loads the page in chromium at a given window width, waits for it (images included),
and returns what it measured in the page: the document's width against the window (nothing should
need a horizontal scroll), every table, image, figure caption and paragraph with its rendered size.
``screenshot(html, png)`` keeps a picture of the page. The measuring script runs in a copy of the page
beside the original (so relative image paths resolve); the original is not touched.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# Flags for a sandboxed, offline machine (root, no GPU, no network: background services would only fail).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=1"]

MEASURE = """
<script>
window.addEventListener("load", () => {
  const box = (e) => { const r = e.getBoundingClientRect(); return {left: r.left, right: r.right, width: r.width, height: r.height}; };
  const data = {
    window_width: window.innerWidth,
    document_width: document.documentElement.scrollWidth,
    tables: [...document.querySelectorAll("table")].map(t => ({...box(t), rows: t.rows.length,
             columns: t.rows.length ? t.rows[0].cells.length : 0,
             caption: (t.previousElementSibling || {}).textContent || ""})),
    pre_tables: [...document.querySelectorAll("pre")].filter(p => /\\|\\s*-{3}/.test(p.textContent)).length,
    images: [...document.querySelectorAll("img")].map(i => ({...box(i), src: i.getAttribute("src"),
             loaded: i.complete && i.naturalWidth > 0, natural_width: i.naturalWidth})),
    captions: [...document.querySelectorAll("figcaption")].map(c => c.textContent),
    headings: [...document.querySelectorAll("h1, h2, h3")].map(h => h.textContent),
    paragraphs: [...document.querySelectorAll("p, li, figcaption")].map(p => ({...box(p),
             font_px: parseFloat(getComputedStyle(p).fontSize), chars: p.textContent.length})),
  };
  const out = document.createElement("pre");
  out.id = "finecliper-layout";
  out.textContent = JSON.stringify(data);
  document.body.appendChild(out);
});
</script>
"""


def chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _probe_copy(html: Path) -> Path:
    probe = html.with_name(f".{html.stem}.layout-probe.html")
    text = html.read_text(encoding="utf-8")
    probe.write_text(text.replace("</body>", MEASURE + "</body>") if "</body>" in text else text + MEASURE,
                     encoding="utf-8")
    return probe


def layout(html: Path, width: int = 1280, height: int = 900) -> dict:
    """Measurements of ``html`` laid out in a ``width`` px window (see module doc)."""
    exe = chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed")
    probe = _probe_copy(Path(html))
    try:
        proc = subprocess.run([exe, *FLAGS, f"--window-size={width},{height}", "--virtual-time-budget=10000",
                               "--dump-dom", probe.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink(missing_ok=True)
    found = re.search(r'<pre id="finecliper-layout">(.*?)</pre>', proc.stdout, re.S)
    if not found:
        raise RuntimeError(f"chromium gave no layout for {html} (exit {proc.returncode}): {proc.stderr[-500:]}")
    return json.loads(found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 3000) -> Path:
    exe = chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed")
    subprocess.run([exe, *FLAGS, f"--window-size={width},{height}", "--virtual-time-budget=10000",
                    f"--screenshot={Path(png).resolve()}", Path(html).resolve().as_uri()],
                   capture_output=True, text=True, timeout=120, check=True)
    return Path(png)
